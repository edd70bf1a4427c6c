"""Feed health on a simulated feed with each defect injected: empty, below/above the band,
an extract identical to another day's, one timestamp on every row; warn and fail modes."""

from __future__ import annotations

import csv
import datetime as dt
import io
import shutil

import pytest

from cvas.core.freshness import FLAGGED, Freshness
from cvas.core.layout import Layout
from cvas.core.schemas import KINDS, spec
from cvas.simulator.simulate import simulate
from cvas.sources.simulated import SimulatedSource
from cvas.steps import feed_health as fh
from cvas.steps.fetch import fetch_transactions
from cvas.ops.status import SYMBOL, format_grid, grid, plan
from cvas.steps.load import load_into_layout
from tests.cli_runs import run_cvas, write_cfg

pytestmark = pytest.mark.slow   # see pyproject: make test-fast leaves it out

START = dt.date(2025, 9, 1)          # a Monday
DAYS = 36
D34, D35 = START + dt.timedelta(days=34), START + dt.timedelta(days=35)
CLEAN_DAYS = 34                      # 0..33 loaded as simulated


def _rewrite(path, change) -> None:
    """Apply `change(header, rows) -> rows` to a landing copy."""
    with open(path, newline="", encoding="utf-8") as fh_:
        reader = csv.reader(fh_)
        header = next(reader)
        rows = list(reader)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(change(header, rows))
    path.write_text(out.getvalue(), encoding="utf-8")


@pytest.fixture(scope="module")
def feed(tmp_path_factory):
    """34 clean days loaded and checked; the landing copies of days 34 and 35 fetched, then damaged."""
    base = tmp_path_factory.mktemp("feed")
    nova = simulate(base / "nova", START, DAYS, new_per_day=50, seed=11)
    lay = Layout(base / "data")
    source = SimulatedSource(nova.database)
    for i in range(DAYS):
        day = START + dt.timedelta(days=i)
        for kind in KINDS:
            fetch_transactions(source, kind, day, lay.raw(kind, day), lay.staging)
            if i < CLEAN_DAYS:
                load_into_layout(lay, kind, day)
                fh.check_feed(lay, kind, day)
    # day 34: act rows all at one timestamp; cnr re-delivers day 33's extract
    column = spec("act").date_column
    _rewrite(lay.raw("act", D34), lambda h, rows: [r[:h.index(column)] + [f"{D34} 09:00:00"]
                                                   + r[h.index(column) + 1:] for r in rows])
    shutil.copyfile(lay.raw("cnr", D34 - dt.timedelta(days=1)), lay.raw("cnr", D34))
    # day 35: a tenth of the renewals, three times the activations, no deactivations
    _rewrite(lay.raw("reno", D35), lambda h, rows: rows[::10])
    _rewrite(lay.raw("act", D35), lambda h, rows: rows * 3)
    _rewrite(lay.raw("dct", D35), lambda h, rows: [])
    return base, nova, lay


def flagged_between(lay, start: dt.date, end: dt.date) -> list:
    """Every flagged verdict of [start, end]: only flagged days have a verdict file."""
    found = [fh.read_health(lay, kind, start + dt.timedelta(days=i)) for kind in KINDS
             for i in range((end - start).days + 1)]
    return [h for h in found if h is not None and h.flagged]


def test_volume_band_needs_history_and_ignores_noise():
    assert fh.volume_flags(0, [40, 50]) == (None, None, {})                   # too little history
    expected, band, flags = fh.volume_flags(45, [40, 50, 60, 44])
    assert expected == 47 and not flags and band[0] < 45 < band[1]
    assert set(fh.volume_flags(5, [4000, 4100, 3900])[2]) == {fh.BELOW}
    assert set(fh.volume_flags(9000, [4000, 4100, 3900])[2]) == {fh.ABOVE}
    assert set(fh.volume_flags(0, [4000, 4100, 3900])[2]) == {fh.EMPTY}
    assert fh.volume_flags(1, [3, 5, 2])[2] == {}                            # a small feed's noise
    assert fh.volume_flags(0, [3, 5, 2])[2] == {}                            # empty is its norm


def test_clean_simulated_days_are_not_flagged(feed):
    _, _, lay = feed
    assert flagged_between(lay, START, START + dt.timedelta(days=CLEAN_DAYS - 1)) == []
    assert not (lay.root / "health").exists() or not any((lay.root / "health").rglob("*.json"))


def test_each_defect_is_flagged_with_its_reason_and_the_day_stays_published(feed, tmp_path):
    base, nova, lay = feed
    cfg = write_cfg(tmp_path / "warn.cfg", lay.root, nova=nova, log_dir=tmp_path / "logs", user_base="false")

    # warn (the default): day 34's act is published and flagged; cnr's re-delivered extract fails its load
    run = run_cvas(cfg, "daily", "--date", str(D34))
    assert run.returncode == 30, run.stdout + run.stderr
    assert lay.transactions("act", D34).exists()
    assert f"feed health: {D34} act flagged: one_timestamp: all " in run.stderr
    assert f"feed health: {D34} cnr flagged: identical_extract: the landing copy is byte-identical to " \
           f"{D34 - dt.timedelta(days=1)}'s" in run.stderr
    assert f"LoadTransactions   {D34} cnr" in run.stderr          # and the failure summary names the load
    # the operator has the cnr extract re-delivered: the view as of a later day needs every day
    fetch_transactions(SimulatedSource(nova.database), "cnr", D34, lay.raw("cnr", D34), lay.staging)
    load_into_layout(lay, "cnr", D34)

    # fail: day 35's flagged loads are published, printed, and the run exits 8
    fail = write_cfg(tmp_path / "fail.cfg", lay.root, nova=nova, log_dir=tmp_path / "logs", user_base="false",
                     feed_check="fail")
    run = run_cvas(fail, "daily", "--date", str(D35))
    assert run.returncode == 8, run.stdout + run.stderr
    for kind, reason in (("reno", "below_band"), ("act", "above_band"), ("dct", "empty")):
        assert f"feed health: {D35} {kind} flagged: {reason}: " in run.stderr, kind
        assert lay.transactions(kind, D35).exists(), kind
    assert "[cvas] feed_check = fail: exit 8" in run.stderr

    flagged = {(h.date, h.kind): set(h.flags) for h in flagged_between(lay, START, D35)}
    assert flagged == {(str(D34), "act"): {fh.ONE_TIMESTAMP}, (str(D34), "cnr"): {fh.IDENTICAL},
                       (str(D35), "reno"): {fh.BELOW}, (str(D35), "act"): {fh.ABOVE},
                       (str(D35), "dct"): {fh.EMPTY}}
    reno = fh.read_health(lay, "reno", D35)
    assert len(reno.history) == 4 and reno.expected and reno.rows < reno.band[0]

    # in `cvas status`: a state of its own, published and complete, nothing to rebuild for it
    cells = grid(lay, D35, D35, nova.exclusions, [("transactions", k) for k in KINDS])
    row = cells[D35]
    assert {label for label, c in row.items() if c.state == FLAGGED} == {"transactions:reno", "transactions:act",
                                                                         "transactions:dct"}
    assert row["transactions:reno"].reason.startswith("below_band: ")
    assert Freshness(lay).state("transactions", D35, "reno").fresh
    assert plan(cells) == []
    assert f"{SYMBOL[FLAGGED]} flagged" in format_grid(cells)
    page = lay.report(D35).read_text(encoding="utf-8")           # the report's data-health panel
    assert "flagged" in page and "below_band: " in page and "transactions:dct" in page
    status = run_cvas(fail, "status", "--start", str(D35), "--end", str(D35))
    assert status.returncode == 0 and f"{D35} " in status.stdout and "!" in status.stdout, status.stdout


def test_a_reload_that_looks_normal_clears_the_flag(feed):
    _, nova, lay = feed
    source = SimulatedSource(nova.database)
    day = START + dt.timedelta(days=CLEAN_DAYS - 1)
    _rewrite(lay.raw("reno", day), lambda h, rows: rows[:5])
    load_into_layout(lay, "reno", day)
    assert fh.check_feed(lay, "reno", day).flagged and lay.health("reno", day).exists()
    fetch_transactions(source, "reno", day, lay.raw("reno", day), lay.staging)
    load_into_layout(lay, "reno", day)
    assert not fh.check_feed(lay, "reno", day).flagged and not lay.health("reno", day).exists()

