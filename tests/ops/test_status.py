"""Coverage grid, explained plan and invalidation on a real simulated pipeline."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from cvas.core.layout import PART_FILE, Layout
from tests.tasks.test_pipeline import simulated, nova, snapshot  # noqa: F401 - fixtures

pytestmark = pytest.mark.slow   # see pyproject: make test-fast leaves it out

START = dt.date(2026, 3, 1)
END = START + dt.timedelta(days=2)
D1, D2, D3 = START, START + dt.timedelta(days=1), END


@pytest.fixture
def built(simulated):  # noqa: F811
    from tasks.pipeline import run_backfill

    assert run_backfill(START, END, progress=lambda _: None) == 0
    return simulated


def cli(*args):
    from tasks.cli import main

    return main(list(args))


def test_status_and_plan_show_missing_stale_and_failed_days(built, luigi_config, tmp_path, capsys):
    from cvas.ops.status import grid
    from tasks.config import exclusions_path
    from tasks.pipeline import planned_steps

    lay: Layout = built
    # D1: a missing partition
    lay.transactions("dct", D1).unlink()
    # D2: the exclusion list changed since its counters were computed (all days become stale)
    excl = exclusions_path()
    excl.write_text(excl.read_text() + "34699999999,\n")
    # D3: a reload of cnr that fails quality: every data row of the raw copy is from another day
    raw = lay.raw("cnr", D3)
    lines = raw.read_text().splitlines()
    raw.write_text("\n".join([lines[0]] + [line.replace(f"{D3}", "2020-01-01") for line in lines[1:]]) + "\n")
    assert len(lines) > 1
    assert cli("invalidate", "--start", str(D3), "--end", str(D3), "--dataset", "transactions", "--kind", "cnr") == 0
    from tasks.pipeline import run_backfill

    assert run_backfill(D3, D3, only_missing=True, progress=lambda _: None) != 0   # the reload fails quality

    cells = grid(lay, START, END, excl)
    assert cells[D1]["transactions:dct"].state == "missing"
    assert cells[D1]["raw:dct"].state == "present"
    assert cells[D2]["daily_counters"].state == "stale" and "exclusions" in cells[D2]["daily_counters"].reason
    assert cells[D3]["transactions:cnr"].state == "failed"
    assert cells[D2]["transactions:act"].state == "present"

    capsys.readouterr()
    assert cli("status", "--start", str(START), "--end", str(END)) == 0
    out = capsys.readouterr().out
    assert "2026-03-01" in out and "legend:" in out and "S stale" in out
    assert cli("status", "--start", str(START), "--end", str(END), "--json") == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["2026-03-01"]["transactions:dct"]["state"] == "missing"

    steps = {(d, label): why for d, label, why in planned_steps(START, END)}
    assert steps[(D1, "transactions:dct")] == "missing"
    assert steps[(D1, "daily_counters")] == "stale: dct, exclusions changed"  # its own reasons come first
    assert steps[(D2, "daily_counters")].startswith("stale: exclusions changed")
    assert (D2, "transactions:act") not in steps
    assert steps[(D3, "transactions:cnr")].startswith("failed quality")
    only_missing = {(d, label) for d, label, _ in planned_steps(START, END, only_missing=True)}
    assert (D2, "daily_counters") not in only_missing and (D1, "transactions:dct") in only_missing
    assert cli("plan", "--start", str(START), "--end", str(END)) == 0
    assert "stale: exclusions changed" in capsys.readouterr().out


def test_invalidate_then_backfill_rebuilds_only_that_day_and_downstream(built):
    from cvas.ops.status import invalidate
    from tasks.pipeline import run_backfill

    lay: Layout = built
    before = snapshot(lay.root)
    mtimes = {p: p.stat().st_mtime_ns for p in lay.root.rglob("*.parquet")}
    marked = invalidate(lay, D2, D2, dataset="transactions", kinds=["reno"])
    assert set(marked) == {lay.transactions("reno", D2), lay.daily_counters(D2)}
    assert lay.transactions("reno", D2).exists(), "an invalidated partition stays readable until replaced"
    assert run_backfill(START, END, progress=lambda _: None) == 0
    # a part file of the view or its state counts as its folder (the output)
    rebuilt = {p.parent if PART_FILE.match(p.name) and p.parent.suffix == ".parquet" else p
               for p, m in mtimes.items() if p.exists() and p.stat().st_mtime_ns != m}
    assert {lay.transactions("reno", D2), lay.daily_counters(D2)} <= rebuilt
    allowed = {lay.transactions("reno", D2), lay.daily_counters(D2), lay.counters_cpc, lay.subscriptions(END),
               lay.subscriptions_latest, lay.subscription_state(END)}  # the view and the state it is folded from
    assert rebuilt <= allowed, rebuilt - allowed
    after = snapshot(lay.root)
    assert after[f"Parquet_Data/transactions/reno/year_month=2026-03/{D2}.parquet"] == \
        before[f"Parquet_Data/transactions/reno/year_month=2026-03/{D2}.parquet"]
    assert not list((lay.root / "_invalid").rglob("*.*")), "marks are cleared by the rebuild"
    assert run_backfill(START, END, progress=lambda _: None) == 0
