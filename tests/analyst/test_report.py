"""The daily report: built by Luigi on a small simulated pipeline, rendered in headless Chromium,
its KPIs checked against the day's counter file, and its data-health panel on gaps."""

from __future__ import annotations

import csv
import datetime as dt
import re
import shutil
import struct
import subprocess
import tempfile
import zlib
from html.parser import HTMLParser
from pathlib import Path

import luigi
import luigi.configuration
import numpy as np
import pyarrow.parquet as pq
import pytest
from luigi.execution_summary import LuigiStatusCode

from cvas.core.layout import Layout
from tests.conftest import luigi_settings, simulated_settings
from cvas.core.schemas import DEFAULT_EXCLUDED_SERVICES

pytestmark = pytest.mark.slow   # see pyproject: make test-fast leaves it out

REPO = Path(__file__).resolve().parents[2]
START = dt.date(2025, 10, 6)
DAYS = 5
END = START + dt.timedelta(days=DAYS - 1)
KEYWORDS = DEFAULT_EXCLUDED_SERVICES
TAB_BLUE = (0x1F, 0x77, 0xB4)


# -- a small pipeline, built once for the module -----------------------------------------------

@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """Five simulated days through the real pipeline (counters, user base, view), then DailyReport."""
    from cvas.simulator.simulate import simulate
    from tasks.pipeline import run_backfill
    from tasks.analyst.report import DailyReport

    root = tmp_path_factory.mktemp("report")
    nova = simulate(root / "nova", START, DAYS, new_per_day=20, seed=7)
    with luigi_settings(simulated_settings(root / "data", nova)):
        assert run_backfill(START, END, progress=lambda _: None) == 0
        result = luigi.build([DailyReport(date=END)], local_scheduler=True, workers=1, log_level="WARNING",
                             detailed_summary=True)
        assert result.status == LuigiStatusCode.SUCCESS, result.summary_text
        assert DailyReport(date=END).complete()
        yield Layout(root / "data")


# -- independent expectations (pyarrow and csv, not cvas.analyst.report) --------------------------------

def master_names(layout: Layout) -> dict[int, str]:
    with open(layout.master_cpc, newline="", encoding="utf-8") as fh:
        return {int(r["cpc"]): r["service_name"] for r in csv.DictReader(fh)}


def excluded(name: str) -> bool:
    return any(k in name.lower() for k in KEYWORDS)


def kept_counter_rows(layout: Layout, day: dt.date) -> list[dict]:
    names = master_names(layout)
    rows = pq.read_table(layout.daily_counters(day)).to_pylist()
    return [r for r in rows if not excluded(names.get(r["cpc"]) or "UNKNOWN")]


def user_base_total(layout: Layout, day: dt.date) -> int | None:
    path = layout.user_base_daily(day)
    if not path.exists():
        return None
    return sum(r["user_base"] for r in pq.read_table(path).to_pylist() if not excluded(r["service_name"]))


def expected_kpis(layout: Layout, day: dt.date) -> dict[str, float]:
    rows = kept_counter_rows(layout, day)

    def total(column):
        return sum(r[column] for r in rows)

    act, dct, rev = total("act_count"), total("dct_count"), round(total("rev"), 2)
    base, base_before = user_base_total(layout, day), user_base_total(layout, day - dt.timedelta(days=1))
    days = [day - dt.timedelta(days=i) for i in range(30)]
    revenue_30 = sum(sum(r["rev"] for r in kept_counter_rows(layout, d)) for d in days
                     if layout.daily_counters(d).exists())
    bases = [b for b in (user_base_total(layout, d) for d in days) if b is not None]
    return {
        "activations": act, "activations_free": total("act_free"), "activations_paid": total("act_pay"),
        "upgrades": total("upg_count"), "renewals": total("reno_count"), "deactivations": dct,
        "cancellations": total("cnr_count"), "refunds": total("rfnd_count"),
        "refund_amount": round(total("rfnd_amount"), 2), "revenue": rev, "net_adds": act - dct,
        "user_base": base, "churn": dct / (base_before + act),
        "arpu": rev / ((base_before + base) / 2), "arpu_30d": revenue_30 / (sum(bases) / len(bases)),
    }


# -- reading what Chromium gives back -----------------------------------------------------------

class Dom(HTMLParser):
    """What the tests look at in a page: KPI tiles, charts, health checks, category rows."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.kpis: dict[str, dict] = {}
        self.svgs = 0
        self.charts: list[str] = []
        self.health: dict[str, list[dict]] = {}
        self.categories: dict[str, dict] = {}
        self.text: list[str] = []
        self._kpi: str | None = None
        self._in_value = False
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "svg":
            self.svgs += 1
            if "data-chart" in a:
                self.charts.append(a["data-chart"])
        if "data-kpi" in a:
            self._kpi = a["data-kpi"]
            self.kpis[self._kpi] = {"value": a.get("data-value"), "text": ""}
        elif self._kpi and a.get("class") == "value":
            self._in_value = True
        if "data-health" in a:
            self.health.setdefault(a["data-health"], []).append(a)
        if "data-category" in a:
            self.categories[a["data-category"]] = a

    def handle_endtag(self, tag):
        if tag == "div" and self._in_value:
            self._in_value = False
            self._kpi = None

    def handle_data(self, data):
        self.text.append(data)
        if self._in_value and self._kpi:
            self.kpis[self._kpi]["text"] += data


def chromium_exe() -> str:
    exe = shutil.which("chromium")
    if exe is None:  # a fresh machine: install it the way `make test` does
        subprocess.run(["bash", str(REPO / "scripts" / "ensure_test_deps.sh")], check=True)
        exe = shutil.which("chromium")
    assert exe, "Debian's chromium is needed: run scripts/ensure_test_deps.sh as root"
    return exe


def chromium(page: Path, workdir: Path, *action: str) -> subprocess.CompletedProcess:
    """Headless Chromium on `page` with a fresh profile; the proxy is a closed port, so any
    attempt to reach the network fails instead of succeeding quietly."""
    profile = tempfile.mkdtemp(prefix="chromium-profile-", dir=workdir)
    cmd = [chromium_exe(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync",
           f"--user-data-dir={profile}", "--proxy-server=http://127.0.0.1:9", *action, page.as_uri()]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=90, check=True)


def read_png(path: Path) -> np.ndarray:
    """An 8-bit RGB/RGBA non-interlaced PNG as a (height, width, channels) array: zlib + struct."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat = 8, []
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        chunk = data[pos + 8:pos + 8 + length]
        pos += 12 + length
        if kind == b"IHDR":
            width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", chunk)
        elif kind == b"IDAT":
            idat.append(chunk)
        elif kind == b"IEND":
            break
    assert depth == 8 and interlace == 0 and colour in (2, 6), (depth, colour, interlace)
    bpp = 3 if colour == 2 else 4
    stride = width * bpp
    raw = zlib.decompress(b"".join(idat))
    out = np.zeros((height, stride), dtype=np.uint8)
    prev = np.zeros(stride, dtype=np.int64)
    for y in range(height):
        base = y * (stride + 1)
        filt = raw[base]
        line = np.frombuffer(raw, dtype=np.uint8, count=stride, offset=base + 1).astype(np.int64)
        if filt == 0:
            cur = line
        elif filt == 1:  # Sub: a running sum per channel
            cur = np.cumsum(line.reshape(-1, bpp), axis=0).reshape(-1) % 256
        elif filt == 2:  # Up
            cur = (line + prev) % 256
        else:  # Average and Paeth depend on the pixel just decoded: byte by byte
            rec = bytearray(stride)
            up, ln = prev.tolist(), line.tolist()
            for x in range(stride):
                a = rec[x - bpp] if x >= bpp else 0
                b = up[x]
                if filt == 3:
                    rec[x] = (ln[x] + ((a + b) >> 1)) & 255
                else:
                    c = up[x - bpp] if x >= bpp else 0
                    p = a + b - c
                    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                    rec[x] = (ln[x] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
            cur = np.frombuffer(bytes(rec), dtype=np.uint8).astype(np.int64)
        out[y] = cur
        prev = cur
    return out.reshape(height, width, bpp)[:, :, :3]


# -- tests ---------------------------------------------------------------------------------------

def test_daily_report_task_publishes_one_page_per_day(built):
    from cvas.core.catalogue import days_of
    from cvas.core.freshness import Settings, state

    page = built.report(END)
    assert page == built.root / "reports" / "2025-10-10.html"
    assert days_of(built, "report") == {END}
    assert state(built, "report", END, settings=Settings(excluded_services=KEYWORDS)).fresh
    assert not any(p.name.startswith(".") or "tmp" in p.name for p in page.parent.iterdir())

    # a day of the window filled or rebuilt later makes the page stale; a copy keeps the module's data intact
    copy = Layout(built.root.parent / "copy-stale")
    shutil.copytree(built.root, copy.root)
    assert state(copy, "report", END, settings=Settings(excluded_services=KEYWORDS)).fresh
    copy.daily_counters(START).unlink()
    assert not state(copy, "report", END, settings=Settings(excluded_services=KEYWORDS)).fresh
    assert not state(built, "report", END, settings=Settings(excluded_services=KEYWORDS + ("top video",))).fresh, "another keyword list is another report"


def test_report_renders_in_chromium_with_charts_and_the_days_counters(built, tmp_path):
    from cvas.analyst.report import _CSS
    from cvas.analyst.report_charts import PALETTE

    page = built.report(END)
    dom = Dom(chromium(page, tmp_path, "--dump-dom").stdout)
    expected = expected_kpis(built, END)

    # KPI tiles: machine values equal the counters of the day, the text is formatted for people
    assert set(dom.kpis) == set(expected)
    for key, want in expected.items():
        got = dom.kpis[key]["value"]
        if key in ("revenue", "refund_amount"):
            assert abs(float(got) - want) < 0.005, key
        elif key in ("churn", "arpu", "arpu_30d"):
            assert float(got) == pytest.approx(want, rel=1e-6), key
        else:
            assert int(got) == want, key
    assert dom.kpis["revenue"]["text"] == f"€{expected['revenue']:,.2f}"
    assert dom.kpis["renewals"]["text"] == f"{expected['renewals']:,}"
    assert dom.kpis["churn"]["text"] == f"{expected['churn'] * 100:.2f}%"
    assert re.fullmatch(r"[+\u2212]?[\d,]+", dom.kpis["net_adds"]["text"])
    # the words of docs/data.md: rfnd_count sums rfnd_cnt (charges, not refund records); the
    # report's categories are the user base's names for the master's
    html = page.read_text(encoding="utf-8")
    assert re.search(r'data-kpi="refunds"[^>]*><div class="label">Charges refunded</div>', html)
    assert ("Education and Images as Edu_Ima; News and Sports as News_Sport (Counters_Service.csv keeps the "
            "master's own names)") in html

    # categories: every kept counter row of the day lands in exactly one category row
    rows = kept_counter_rows(built, END)
    assert sum(float(a["data-revenue"]) for a in dom.categories.values()) == pytest.approx(
        sum(r["rev"] for r in rows), abs=0.01 * len(dom.categories))
    assert sum(int(a["data-activations"]) for a in dom.categories.values()) == expected["activations"]

    # charts: inline SVG, all of them, drawn in the page
    assert dom.svgs >= 12
    assert {"revenue", "activations", "renewals", "terminations", "net_adds", "refunds", "user_base", "churn_arpu",
            "revenue_by_category", "categories_day", "services_day", "user_base_by_category"} <= set(dom.charts)

    # health: nothing missing, no rejects, exports and view current; unmapped CPCs named
    for key in ("missing_days", "user_base", "rejected_rows", "stale_outputs"):
        assert [a["class"] for a in dom.health[key]] == ["ok"], key
    assert all(a["class"] == "ok" for a in dom.health["output"])
    names = master_names(built)
    unmapped = {r["cpc"] for r in pq.read_table(built.daily_counters(END)).to_pylist() if r["cpc"] not in names}
    assert int(dom.health["unmapped_cpcs"][0]["data-count"]) == len(unmapped)

    # the screenshot: a real page with the charts' colours across it (the page's CSS uses none of them)
    shot = tmp_path / "report.png"
    chromium(page, tmp_path, f"--screenshot={shot}", "--window-size=1400,3000")
    assert shot.stat().st_size > 50_000
    image = read_png(shot)
    assert image.shape == (3000, 1400, 3)
    assert not any(c.lower() in _CSS.lower() for c in PALETTE)
    ink = (image.min(axis=2) < 200).mean()
    assert ink > 0.03, f"only {ink:.1%} of the page is drawn"
    blue = (np.abs(image.astype(int) - TAB_BLUE).max(axis=2) <= 12)
    assert blue.sum() > 20_000, "the revenue and activation bars are not drawn"
    coloured = (image.max(axis=2).astype(int) - image.min(axis=2)) > 80
    bands = [coloured[y:y + 500].sum() for y in range(500, 3000, 500)]
    assert sum(n > 2_000 for n in bands) >= 4, f"charts missing from parts of the page: {bands}"


def test_report_is_self_contained_and_deterministic(built, tmp_path):
    from cvas.analyst.report import build_report

    a, b = tmp_path / "a.html", tmp_path / "b.html"
    for out in (a, b):
        build_report(built, END, excluded_services=KEYWORDS, out=out)
    text = a.read_text(encoding="utf-8")
    assert a.read_bytes() == b.read_bytes(), "the same inputs give the same bytes"
    assert not re.search(r"<(script|link|img|iframe|object)\b", text, re.I)
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:|//)""", text, re.I)
    assert not re.search(r"url\(\s*['\"]?(https?:|//)", text, re.I)
    ids = re.findall(r'\bid="([^"]+)"', text)
    assert len(ids) == len(set(ids)), "element ids are unique across the inlined charts"
    assert not list(tmp_path.glob("*/")), "no staging leftovers beside the output"


def test_report_renders_with_missing_days_and_without_user_base(built, tmp_path):
    from cvas.analyst.report import build_report

    copy = Layout(tmp_path / "data")
    shutil.copytree(built.root, copy.root)
    gap = START + dt.timedelta(days=2)
    copy.daily_counters(gap).unlink()
    shutil.rmtree(copy.root / "user_base")
    shutil.rmtree(copy.root / "User_Base")
    out = tmp_path / "gaps.html"
    build_report(copy, END, excluded_services=KEYWORDS, out=out)
    dom = Dom(out.read_text(encoding="utf-8"))

    missing = dom.health["missing_days"][0]
    assert (missing["class"], missing["data-count"]) == ("warn", "1")
    assert "2025-10-08" in "".join(dom.text)
    assert dom.health["user_base"][0]["class"] == "warn"
    assert "no user-base files in the window" in "".join(dom.text)
    for key in ("user_base", "churn", "arpu", "arpu_30d"):
        assert dom.kpis[key]["value"] == "" and dom.kpis[key]["text"] == "n/a", key
    expected = expected_kpis(built, END)
    assert int(dom.kpis["renewals"]["value"]) == expected["renewals"]
    assert {"revenue", "activations", "refunds", "revenue_by_category"} <= set(dom.charts)
    assert "user_base" not in dom.charts


def test_cli_report(built, tmp_path, capsys):
    from tasks.cli import main

    out = tmp_path / "mine.html"
    assert main(["report", "--date", str(END), "--out", str(out)]) == 0
    assert out.exists() and "data-kpi=\"revenue\"" in out.read_text(encoding="utf-8")
    assert str(out) in capsys.readouterr().out
    assert main(["report", "--date", str(END + dt.timedelta(days=1))]) == 1
    assert "no counters for 2025-10-11" in capsys.readouterr().err


def test_numbers_are_formatted_for_people():
    from cvas.analyst.report_data import fmt_count, fmt_eur, fmt_pct, fmt_signed, machine_value

    assert fmt_count(1234567) == "1,234,567"
    assert fmt_eur(1234.5) == "€1,234.50"
    assert fmt_eur(-3) == "\u2212€3.00"
    assert fmt_eur(float("nan")) == "n/a"
    assert fmt_pct(0.01234) == "1.23%"
    assert (fmt_signed(12), fmt_signed(-1234), fmt_signed(0)) == ("+12", "\u22121,234", "0")
    assert (machine_value(2.5, "eur"), machine_value(7.0, "count"), machine_value(None, "pct")) == ("2.50", "7", "")


def test_a_day_without_transactions_reports_zeros_not_gaps(layout, tmp_path):
    from cvas.analyst.report import build_report
    from cvas.core.schemas import COUNTER_SCHEMA

    day = dt.date(2026, 1, 5)
    layout.daily_counters(day).parent.mkdir(parents=True)
    pq.write_table(COUNTER_SCHEMA.empty_table(), layout.daily_counters(day))
    layout.master_cpc.parent.mkdir(parents=True, exist_ok=True)
    layout.master_cpc.write_text("cpc,service_name,tme_category,cpc_period,cpc_price\n1,Alpha,Games,7,1.0\n",
                                 encoding="utf-8")
    out = tmp_path / "empty.html"
    build_report(layout, day, excluded_services=KEYWORDS, out=out)
    dom = Dom(out.read_text(encoding="utf-8"))
    assert (dom.kpis["revenue"]["value"], dom.kpis["revenue"]["text"]) == ("0.00", "€0.00")
    assert dom.kpis["activations"]["value"] == "0" and dom.kpis["user_base"]["value"] == ""
    assert dom.health["missing_days"][0]["data-count"] == "0"
    assert {"revenue", "activations", "categories_day"} <= set(dom.charts)


def test_the_report_day_must_have_counters(layout):
    from cvas.analyst.report import build_report
    from cvas.analyst.report_data import ReportInputError

    with pytest.raises(ReportInputError, match="no counters for 2026-01-05"):
        build_report(layout, dt.date(2026, 1, 5), excluded_services=KEYWORDS)


def _chart_shot(page: Path, name: str, workdir: Path) -> np.ndarray:
    """A screenshot of one chart of the page, alone on a white page 800 px wide."""
    svg = re.search(rf'<svg [^>]*data-chart="{name}".*?</svg>', page.read_text(encoding="utf-8"), flags=re.S)
    assert svg, name
    alone = workdir / f"{name}.html"
    alone.write_text(f'<!doctype html><body style="margin:0;background:#fff"><div style="width:800px">'
                     f'{svg.group(0)}</div></body>', encoding="utf-8")
    shot = workdir / f"{name}.png"
    chromium(alone, workdir, f"--screenshot={shot}", "--window-size=800,900")
    return read_png(shot).astype(int)


def _rows_of(image: np.ndarray, colour: str, tolerance: int = 10, width: int = 1) -> np.ndarray:
    """Rows of the image with at least `width` pixels of `colour` (a gridline: hundreds)."""
    rgb = [int(colour[i:i + 2], 16) for i in (1, 3, 5)]
    return np.nonzero((np.abs(image - rgb).max(axis=2) <= tolerance).sum(axis=1) >= width)[0]


def _gridline_rows(image: np.ndarray) -> np.ndarray:
    """Rows holding a light grey horizontal line across the plot (a tick's gridline, anti-aliased)."""
    grey = (image.min(axis=2) >= 200) & (image.max(axis=2) <= 250) & (np.ptp(image, axis=2) <= 12)
    return np.nonzero(grey.sum(axis=1) >= 200)[0]


def test_charts_tell_the_truth_in_chromium(built, tmp_path):
    """Screenshots of single charts: no bar above the top gridline, the user base drawn on an
    axis from zero, churn and ARPU in separate panels, one name for the unknown category."""
    from cvas.analyst.report_charts import PALETTE

    page = built.report(END)
    for name, colour in (("renewals", PALETTE[2]), ("revenue", PALETTE[0])):   # bars, no legend above
        image = _chart_shot(page, name, tmp_path)
        bars, lines = _rows_of(image, colour), _gridline_rows(image)
        assert len(bars) and len(lines), name
        assert bars.min() >= lines.min() - 1, f"{name}: a bar rises above the top tick's gridline"

    # the user base (steady, in the tens of thousands at most) on an axis from zero: a flat line near
    # the top, not a zoom that spreads a 0.1% change over the whole plot
    image = _chart_shot(page, "user_base", tmp_path)
    line, lines = _rows_of(image, PALETTE[0], width=20), _gridline_rows(image)
    plot = lines.max() - lines.min()
    assert plot > 100 and (line.max() - line.min()) < 0.2 * plot, (line.min(), line.max(), lines.min(), lines.max())

    # churn (red) and ARPU (green) in two panels, one above the other, not on one plot with two axes
    image = _chart_shot(page, "churn_arpu", tmp_path)
    churn, arpu = _rows_of(image, PALETTE[3]), _rows_of(image, PALETTE[2])
    assert len(churn) and len(arpu) and churn.max() < arpu.min(), (churn.min(), churn.max(), arpu.min(), arpu.max())

    text = page.read_text(encoding="utf-8")
    assert "(none)" not in text and ">Other<" not in text and "LEGACY" not in text



def check_cpcs_missing_from_the_master(layout: Layout, out: Path) -> dict:
    """Render the END report of `layout` to `out` and check, from the files (pyarrow and csv), that
    it flags exactly the CPCs missing from its MASTERCPC.csv that its data holds (counters or
    user base; the day, and the window) and counts them in the UNKNOWN category, revenue and
    users alike. Returns what it found: {"day": CPCs, "window": CPCs, "counters": rows of END}."""
    from cvas.analyst.report import build_report

    names = master_names(layout)
    with open(layout.master_cpc, newline="", encoding="utf-8") as fh:
        category = {int(r["cpc"]): r["tme_category"].strip() for r in csv.DictReader(fh)}
    days = [START + dt.timedelta(days=i) for i in range(DAYS)]
    counters = {d: pq.read_table(layout.daily_counters(d)).to_pylist() for d in days}
    snapshot = {d: [r for r in pq.read_table(layout.user_base_daily(d)).to_pylist() if not excluded(r["service_name"])]
                for d in days}
    missing = {d: {r["cpc"] for r in counters[d] + snapshot[d] if r["cpc"] not in names} for d in days}
    in_window = set().union(*missing.values())

    build_report(layout, END, excluded_services=KEYWORDS, out=out)
    dom = Dom(out.read_text(encoding="utf-8"))
    (check,) = dom.health["unmapped_cpcs"]
    assert check["class"] == ("warn" if in_window else "ok")
    assert {int(c) for c in check["data-cpcs"].split()} == in_window
    assert {int(c) for c in check["data-cpcs-day"].split()} == missing[END]
    assert int(check["data-count"]) == len(missing[END])

    # one category for them, revenue and users alike (with the master's CPCs of a blank category)
    unknown = dom.categories["UNKNOWN"]
    assert float(unknown["data-revenue"]) == pytest.approx(
        sum(r["rev"] for r in kept_counter_rows(layout, END) if not category.get(r["cpc"])), abs=0.005)
    assert int(unknown["data-user-base"]) == sum(r["user_base"] for r in snapshot[END] if not category.get(r["cpc"]))
    assert int(unknown["data-user-base"]) > 0
    return {"day": missing[END], "window": in_window, "counters": counters[END], "snapshot": snapshot[END]}


def test_cpcs_missing_from_the_master_are_flagged_and_unknown_everywhere(built, tmp_path):
    """A CPC of the transactions or the NBS snapshot that MASTERCPC.csv lacks: the report flags
    exactly those its data holds and counts them as UNKNOWN, service and category, for revenue
    and users alike, as Counters_Service.csv does; Counters_CPC and user_base_by_cpc.csv keep
    them by CPC (user_base_by_service/category keep the snapshot's names, the legacy contract)."""
    found = check_cpcs_missing_from_the_master(built, tmp_path / "report.html")
    assert {99200, 47311} <= found["day"], "the simulated catalogue's CPCs without a master row are in the data"
    names = master_names(built)
    with open(built.counters_service, newline="", encoding="utf-8") as fh:
        service = [r for r in csv.DictReader(fh) if r["date"] == str(END)]
    assert {int(r["cpc"]) for r in service if int(r["cpc"]) not in names} == {
        r["cpc"] for r in found["counters"] if r["cpc"] not in names}
    assert all((r["service_name"], r["tme_category"]) == ("UNKNOWN", "") for r in service if int(r["cpc"]) not in names)
    dom = Dom((tmp_path / "report.html").read_text(encoding="utf-8"))
    assert float(dom.categories["UNKNOWN"]["data-revenue"]) == pytest.approx(
        sum(float(r["rev"]) for r in service if not r["tme_category"]), abs=0.005)

    cpc_export = pq.read_table(built.counters_cpc, filters=[("date", "=", END)]).column("cpc").to_pylist()
    assert {r["cpc"] for r in found["counters"] if r["cpc"] not in names} <= set(cpc_export)
    with open(built.user_base_export("cpc"), encoding="utf-8") as fh:
        by_cpc = {int(line.split("|")[1]) for line in fh if line.startswith(f"{END}|")}
    assert {r["cpc"] for r in found["snapshot"] if r["cpc"] not in names} <= by_cpc


def test_the_flag_covers_user_base_only_and_earlier_cpcs_missing_from_the_master(built, tmp_path):
    """With a master that also lacks a CPC of the day's user base that has no counters that day,
    and a CPC seen only on an earlier day of the window, both are flagged and counted UNKNOWN."""
    names = master_names(built)
    days = [START + dt.timedelta(days=i) for i in range(DAYS)]
    counters = {d: {r["cpc"] for r in pq.read_table(built.daily_counters(d)).to_pylist()} for d in days}
    snapshot = {d: {r["cpc"] for r in pq.read_table(built.user_base_daily(d)).to_pylist()
                    if not excluded(r["service_name"])} for d in days}
    users_only = min(c for c in snapshot[END] - counters[END] if c in names and not excluded(names[c]))
    earlier = min(c for d in days[:-1] for c in counters[d] - counters[END] - snapshot[END] if c in names)
    copy = Layout(tmp_path / "data")
    shutil.copytree(built.root, copy.root)
    lines = copy.master_cpc.read_text(encoding="utf-8").splitlines(keepends=True)
    copy.master_cpc.write_text("".join(line for line in lines if line.split(",", 1)[0] not in
                                       (str(users_only), str(earlier))), encoding="utf-8")
    found = check_cpcs_missing_from_the_master(copy, tmp_path / "report.html")
    assert users_only in found["day"] and earlier in found["window"] - found["day"]
