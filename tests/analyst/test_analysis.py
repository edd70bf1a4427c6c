"""The analysis commands on a simulated pipeline spanning two months, each against values computed
here with plain pyarrow and python over the Parquet files (never through cvas.analyst.analysis)."""

from __future__ import annotations

import csv
import datetime as dt
from collections import defaultdict
from pathlib import Path

import luigi
import pyarrow.parquet as pq
import pytest
from luigi.execution_summary import LuigiStatusCode

from cvas.core.layout import Layout
from cvas.core.schemas import DEFAULT_EXCLUDED_SERVICES
from tests.conftest import luigi_settings, simulated_settings

pytestmark = pytest.mark.slow   # see pyproject: make test-fast leaves it out

START = dt.date(2025, 9, 29)  # Monday; the five days cross into October
DAYS = 5
END = START + dt.timedelta(days=DAYS - 1)
MONTHS = ["2025-10", "2025-09"]


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """Five simulated days through the real pipeline (counters, user base, view) and an earlier as-of view."""
    from cvas.simulator.simulate import simulate
    from tasks.pipeline import run_backfill
    from tasks.steps.subscriptions import SubscriptionView

    root = tmp_path_factory.mktemp("analysis")
    nova = simulate(root / "nova", START, DAYS, new_per_day=20, seed=3)
    with luigi_settings(simulated_settings(root / "data", nova)):
        assert run_backfill(START, END, progress=lambda _: None) == 0
        result = luigi.build([SubscriptionView(date=END - dt.timedelta(days=1))], local_scheduler=True, workers=1,
                             log_level="WARNING", detailed_summary=True)
        assert result.status == LuigiStatusCode.SUCCESS, result.summary_text
        lay = Layout(root / "data")
        for path in (lay.counters_service, lay.user_base_export("service"), lay.subscriptions_latest):
            assert path.exists(), path
        yield lay


def master_rows(layout: Layout) -> list[dict]:
    with open(layout.master_cpc, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def excluded(name: str) -> bool:
    return any(k in name.lower() for k in DEFAULT_EXCLUDED_SERVICES)


def read_csv(path: Path) -> list[list[str]]:
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.reader(fh))


# -- revenue -------------------------------------------------------------------------------------

def expected_revenue(layout: Layout) -> dict[tuple[str, str], float]:
    """Σ rev per (stripped master name, month) from the per-day counter files."""
    names = {int(r["cpc"]): r["service_name"] for r in master_rows(layout)}
    sums: dict[tuple[str, str], float] = defaultdict(float)
    for day in (START + dt.timedelta(days=i) for i in range(DAYS)):
        for r in pq.read_table(layout.daily_counters(day)).to_pylist():
            name = names.get(r["cpc"]) or "UNKNOWN"
            if not excluded(name):
                sums[(name.strip(), f"{day:%Y-%m}")] += r["rev"]
    return sums


def test_revenue_by_service_and_month(built, tmp_path, capsys):
    from tasks.cli import main

    sums = expected_revenue(built)
    by_name = defaultdict(float)
    for (name, _), v in sums.items():
        by_name[name] += v
    raw_names = {r["service_name"] for r in master_rows(built)}
    with_comma = [n for n in by_name if "," in n and by_name[n] > 0]
    padded = [n.strip() for n in raw_names if n != n.strip() and by_name.get(n.strip(), 0) > 0]
    assert with_comma and padded, "the simulation has quoted and padded service names with revenue"
    plain = max((n for n in by_name if "," not in n and n not in padded), key=lambda n: (by_name[n], n))
    services = [with_comma[0], padded[0], plain, "No Such Service"]

    out = tmp_path / "revenue.csv"
    assert main(["revenue", "--service", *services, "--month", *MONTHS, "--csv", str(out)]) == 0
    printed = capsys.readouterr()
    rows = read_csv(out)
    assert rows[0] == ["service", "2025-09", "2025-10", "TOTAL"]
    assert [r[0] for r in rows[1:]] == services, "services in the order given"
    for row in rows[1:]:
        want = [sums.get((row[0], m), 0.0) for m in ("2025-09", "2025-10")]
        assert [float(v) for v in row[1:]] == pytest.approx(want + [sum(want)], abs=0.006), row[0]
    assert float(rows[1][3]) > 0, "a service whose name holds a comma is read whole"
    assert rows[4][1:] == ["0.00", "0.00", "0.00"]
    assert "No Such Service" in printed.err
    first = next(line for line in printed.out.splitlines() if line.startswith(with_comma[0]))
    assert f"{sum(sums.get((with_comma[0], m), 0.0) for m in MONTHS):,.2f}" in first


# -- refunds ------------------------------------------------------------------------------------

def expected_refunds(layout: Layout) -> list[list]:
    names = {int(r["cpc"]): (r["service_name"], r["tme_category"]) for r in master_rows(layout)}
    groups: dict[tuple[str, int], dict] = {}
    for month_dir in sorted(layout.transactions_root("rfnd").glob("year_month=*")):
        month = month_dir.name.split("=", 1)[1]
        for f in sorted(month_dir.glob("*.parquet")):
            for r in pq.read_table(f).to_pylist():
                g = groups.setdefault((month, r["cpc"]), {"amount": 0.0, "count": 0, "all": set(), "f": set(),
                                                          "t": set()})
                g["amount"] += r["rfnd_amount"] or 0.0
                g["count"] += r["rfnd_cnt"] or 0
                if r["tmuserid"] is not None:
                    g["all"].add(r["tmuserid"])
                    if r["instant_rfnd"] in ("f", "t"):
                        g[r["instant_rfnd"]].add(r["tmuserid"])
    rows = []
    for (month, cpc), g in groups.items():
        name, category = names.get(cpc, ("", ""))
        rows.append([month, cpc, name, category, round(g["amount"], 2), g["count"], len(g["all"]), len(g["f"]),
                     len(g["t"])])
    rows.sort(key=lambda r: (r[0], -r[5], r[1]))
    return rows


def test_refunds_per_month_and_cpc(built, tmp_path, capsys):
    from tasks.cli import main

    out = tmp_path / "refunds.csv"
    assert main(["refunds", "--month", "2025-10", "2025-08", "2025-09", "--csv", str(out)]) == 0
    assert "no RFND partition for 2025-08" in capsys.readouterr().err
    rows = read_csv(out)
    assert rows[0] == ["year_month", "cpc", "service_name", "tme_category", "cpcTotalRfdsAmount", "cpcTotalRfdsCount",
                       "cpcTotalRfdsCountUU", "RegularRfdsUU", "AutomaticRfdsUU"]
    expected = expected_refunds(built)
    assert {r[0] for r in expected} == {"2025-09", "2025-10"}
    assert any(r[8] > 0 for r in expected) and any(r[7] > 0 for r in expected), "both refund kinds occur"
    got = [[r[0], int(r[1]), r[2], r[3], float(r[4]), int(r[5]), int(r[6]), int(r[7]), int(r[8])] for r in rows[1:]]
    assert [r[:2] for r in got] == [r[:2] for r in expected], "month asc, count desc, cpc asc"
    for g, e in zip(got, expected):
        assert g[2:4] == e[2:4] and g[5:] == e[5:], g[:2]
        assert g[4] == pytest.approx(e[4], abs=0.006), g[:2]


# -- ltv ----------------------------------------------------------------------------------------

def expected_ltv(view: Path, cpcs: set[int], month: str) -> tuple[int, float | None, float | None]:
    rows = [r for r in pq.read_table(view, columns=["activation_month", "cpc_list", "lifetime_days",
                                                     "total_revenue_with_upgrade"]).to_pylist()
            if r["activation_month"] == month and cpcs & set(r["cpc_list"] or [])]
    lifetimes = [r["lifetime_days"] for r in rows if r["lifetime_days"] is not None]
    ltvs = [r["total_revenue_with_upgrade"] for r in rows if r["total_revenue_with_upgrade"] is not None]
    return (len(rows), sum(lifetimes) / len(lifetimes) if lifetimes else None,
            sum(ltvs) / len(ltvs) if ltvs else None)


def test_lifetime_and_ltv_of_a_service(built, tmp_path, capsys):
    from tasks.cli import main

    view = built.subscriptions_latest
    table = pq.read_table(view, columns=["activation_month", "cpc_list"]).to_pylist()
    service_of: dict[int, str] = {int(r["cpc"]): r["service_name"].strip() for r in master_rows(built)}
    counts: dict[str, int] = defaultdict(int)
    for r in table:
        if r["activation_month"] == "2025-09":
            for name in {service_of.get(c) for c in r["cpc_list"] or []} - {None}:
                counts[name] += 1
    service = max(counts, key=lambda n: (counts[n], n))
    cpcs = {c for c, n in service_of.items() if n.lower() == service.lower()}

    out = tmp_path / "ltv.csv"
    assert main(["ltv", "--service", f"  {service.upper()} ", "--month", "2025-09", "2025-10", "--csv", str(out)]) == 0
    rows = read_csv(out)
    assert rows[0] == ["service", "activation_month", "subscriptions", "avg_lifetime_days", "avg_ltv_eur"]
    for row in rows[1:]:
        count, lifetime, ltv = expected_ltv(view, cpcs, row[1])
        assert row[0] == service and int(row[2]) == count
        assert float(row[3]) == pytest.approx(lifetime, abs=0.006)
        assert float(row[4]) == pytest.approx(ltv, abs=0.006)
    assert int(rows[1][2]) == counts[service] > 0
    assert "CPCs " in capsys.readouterr().err

    earlier = END - dt.timedelta(days=1)
    assert main(["ltv", "--service", service, "--month", "2025-10", "--as-of", str(earlier), "--csv", str(out)]) == 0
    count, lifetime, ltv = expected_ltv(built.subscriptions(earlier), cpcs, "2025-10")
    row = read_csv(out)[1]
    assert int(row[2]) == count
    assert (row[3], row[4]) == ((f"{lifetime:.2f}", f"{ltv:.2f}") if count else ("", ""))

    assert main(["ltv", "--service", service[:-1] + "#", "--month", "2025-10"]) == 1
    assert "did you mean" in capsys.readouterr().err


# -- check-userbase -----------------------------------------------------------------------------

def test_check_userbase_on_the_pipeline_output(built, tmp_path, capsys):
    from tasks.cli import main

    cpcs_of: dict[str, set[int]] = defaultdict(set)
    for r in master_rows(built):
        cpcs_of[r["service_name"].strip()].add(int(r["cpc"]))
    rows = [r for r in pq.read_table(built.user_base_daily(END)).to_pylist() if not excluded(r["service_name"])]
    per_service: dict[str, int] = defaultdict(int)
    per_cpc: dict[int, int] = defaultdict(int)
    for r in rows:
        per_service[r["service_name"].strip()] += r["user_base"]
        per_cpc[r["cpc"]] += r["user_base"]
    expected = {s: (v, sum(per_cpc.get(c, 0) for c in cpcs_of.get(s, ()))) for s, v in per_service.items()}
    bad = sorted(s for s, (a, b) in expected.items() if a != b)
    assert bad, "the simulation has snapshot services the master does not know"

    out = tmp_path / "check.csv"
    assert main(["check-userbase", "--date", str(END), "--csv", str(out)]) == 1
    printed = capsys.readouterr().out
    assert f"{len(expected)} service(s) checked, {len(bad)} mismatch(es)" in printed
    got = {r[0]: (int(r[1]), int(r[2]), r[5]) for r in read_csv(out)[1:]}
    assert got == {s: (a, b, "ok" if a == b else "MISMATCH") for s, (a, b) in expected.items()}
    assert all(s in printed for s in bad)

    good = sorted(s for s in expected if s not in bad)[:3]
    assert main(["check-userbase", "--date", str(END), "--service", *good]) == 0
    assert "0 mismatch(es)" in capsys.readouterr().out


def test_check_userbase_on_hand_made_files(luigi_config, layout, capsys):
    from tasks.cli import main

    layout.master_cpc.parent.mkdir(parents=True)
    layout.master_cpc.write_text('cpc,service_name,tme_category,cpc_period,cpc_price\n'
                                 '1,Alpha,Games,7,1.0\n2,Alpha ,Games,30,4.0\n3," Beta, Inc",Music,7,2.0\n'
                                 '4,Gamma,Kids,7,1.0\n', encoding="utf-8")
    export = layout.user_base_export("service").parent
    export.mkdir(parents=True)
    layout.user_base_export("service").write_text(
        "date|service_name|tme_category|User_Base\n"
        "2026-01-01|Alpha|Games|30\n2026-01-01|Beta, Inc|Music|5\n2026-01-01|Gamma|Kids|7\n"
        "2026-01-02|Alpha|Games|31\n2026-01-02|Beta, Inc|Music|4\n", encoding="utf-8")
    layout.user_base_export("cpc").write_text(
        "date|cpc|User_Base\n2026-01-01|1|10\n2026-01-01|2|20\n2026-01-01|3|4\n2026-01-01|4|7\n"
        "2026-01-02|1|11\n2026-01-02|2|20\n2026-01-02|3|4\n", encoding="utf-8")
    layout.user_base_export("category").write_text("date|tme_category|User_Base\n", encoding="utf-8")

    assert main(["check-userbase", "--date", "2026-01-01"]) == 1
    out = capsys.readouterr().out
    assert "3 service(s) checked, 1 mismatch(es)" in out
    line = next(x for x in out.splitlines() if x.startswith("Beta, Inc"))
    assert line.split()[-4:] == ["4", "1", "1", "MISMATCH"]
    assert main(["check-userbase", "--date", "2026-01-02"]) == 0
    assert main(["check-userbase", "--date", "2026-01-01", "--service", "Alpha", "Gamma"]) == 0
    assert main(["check-userbase", "--date", "2026-01-03"]) == 1
    assert "no user base for 2026-01-03" in capsys.readouterr().err


def test_bad_arguments_fail_with_a_message(built, capsys):
    from tasks.cli import main

    assert main(["refunds", "--month", "2025-13"]) == 1
    assert "'2025-13' are not YYYY-MM" in capsys.readouterr().err
    assert main(["revenue", "--service", "Abaco", "--month", "10-2025"]) == 1
    assert main(["ltv", "--service", "Abaco", "--month", "2025-10", "--as-of", "2024-01-01"]) == 1
    assert "no subscription view" in capsys.readouterr().err


def test_format_table_aligns_for_people():
    from cvas.analyst.analysis import Table, csv_text, format_table

    table = Table(("service", "2025-10", "TOTAL"), ("text", "eur", "eur"), [("A, b", 1234.5, 1234.5), ("Cc", None, 0)])
    assert format_table(table).splitlines() == [
        "service   2025-10     TOTAL",
        "-------  --------  --------",
        "A, b     1,234.50  1,234.50",
        "Cc            n/a      0.00",
    ]
    assert csv_text(table) == 'service,2025-10,TOTAL\n"A, b",1234.50,1234.50\nCc,,0.00\n'
