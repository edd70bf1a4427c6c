"""The rerun after a fix at the source picks up the fixed data: a load that failed on its landing
copy has that copy fetched again; for a bad NBS snapshot the summary names the exact command."""

from __future__ import annotations

import pyarrow.parquet as pq
import pytest

from cvas.core.layout import Layout
from tests.cli_runs import run_cvas
from tests.golden_scenario import DAY, NBS_SNAPSHOT, ROWS, write_golden_directory_cfg

pytestmark = pytest.mark.slow   # see pyproject: make test-fast leaves it out


@pytest.fixture
def drops(tmp_path):
    """(drops folder, luigi.cfg) of the golden day under the directory source."""
    return write_golden_directory_cfg(tmp_path)


def test_a_load_over_its_reject_limit_is_refetched_by_the_same_command_after_the_drop_is_fixed(drops, tmp_path):
    drops, cfg = drops
    drop = drops / "Daily_Data" / f"{DAY}" / "act_atlas_day.csv"
    fixed = drop.read_text()
    drop.write_text(fixed.replace(f"{DAY}", "2026-02-09"))   # yesterday's extract delivered again
    lay = Layout(tmp_path / "data")

    failed = run_cvas(cfg, "daily", "--date", f"{DAY}")
    assert failed.returncode == 30, failed.stdout + failed.stderr
    assert "RejectRatioExceeded" in failed.stderr and "4 of 4 rows rejected" in failed.stderr
    assert f"run the same command again (cvas daily --date {DAY})" in failed.stderr
    assert "the landing copy of a failed load is fetched again" in failed.stderr
    assert lay.raw("act", DAY).exists() and not lay.transactions("act", DAY).exists()
    status = run_cvas(cfg, "status", "--start", f"{DAY}", "--end", f"{DAY}", "--json")
    assert '"invalidated"' in status.stdout, status.stdout   # the landing copy is marked, and shows it

    again = run_cvas(cfg, "daily", "--date", f"{DAY}")      # unchanged drop: fetched again, the same failure
    assert again.returncode == 30 and "4 of 4 rows rejected" in again.stderr, again.stdout + again.stderr

    drop.write_text(fixed)                                    # the source is fixed
    rerun = run_cvas(cfg, "daily", "--date", f"{DAY}")        # the same command, no invalidate
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert lay.raw("act", DAY).read_text() == fixed
    loaded = pq.read_table(lay.transactions("act", DAY))["tmuserid"].to_pylist()
    assert sorted(loaded) == sorted(r["tmuserid"] for r in ROWS["act"])
    assert lay.daily_counters(DAY).exists() and lay.counters_service.exists()


def test_a_bad_snapshot_names_the_invalidate_after_which_the_same_command_takes_the_fixed_one(drops, tmp_path):
    drops, cfg = drops
    nbs = drops / "User_Base" / "NBS_BASE" / f"{DAY:%Y%m%d}_NBS_Base.csv"
    nbs.write_text(NBS_SNAPSHOT + "38687,cp,Extra\n")         # cut mid-row
    lay = Layout(tmp_path / "data")

    failed = run_cvas(cfg, "daily", "--date", f"{DAY}")
    assert failed.returncode == 30, failed.stdout + failed.stderr
    command = f"cvas invalidate --dataset user_base_snapshot --start {DAY} --end {DAY}"
    assert "SnapshotFormatError" in failed.stderr and command in failed.stderr, failed.stderr

    nbs.write_text(NBS_SNAPSHOT)
    assert run_cvas(cfg, *command.split()[1:]).returncode == 0
    rerun = run_cvas(cfg, "daily", "--date", f"{DAY}")
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert pq.read_table(lay.user_base_daily(DAY))["user_base"].to_pylist() == [80, 120]
