"""The incremental view under real accidents (issue 19): an analyst's in-place edit, a truncation,
a run killed between two publishes, a late or re-delivered day, a day missing at the source and
stray files. Each test performs the accident on a built data root and checks that no wrong
number is published with exit 0.

In-process over one small simulated Nova (built once by a backfill and copied per test); the
kills run `cvas daily` in a child process with a fault injected at a function boundary.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import subprocess
import sys
import textwrap
from decimal import Decimal
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from cvas.core import provenance
from cvas.core.freshness import DAMAGED, Freshness
from cvas.core.layout import Layout, parts
from tests.cli_runs import REPO, env_for, run_cvas, write_cfg
from tests.conftest import backfilled_root, luigi_settings, simulated_settings

pytestmark = pytest.mark.slow   # see pyproject: make test-fast leaves it out

START = dt.date(2025, 10, 27)   # deactivations of October are carried in November
DAYS = 9
BUILT = START + dt.timedelta(days=5)          # the backfill builds START..BUILT
NEXT = BUILT + dt.timedelta(days=1)


def day(i: int) -> dt.date:
    return START + dt.timedelta(days=i)


@pytest.fixture(scope="module")
def nova(tmp_path_factory):
    from cvas.simulator.simulate import simulate

    return simulate(tmp_path_factory.mktemp("nova"), START, DAYS, new_per_day=25, seed=11)


@pytest.fixture(scope="module")
def built(nova, tmp_path_factory) -> Path:
    return backfilled_root(tmp_path_factory, nova, START, BUILT)


@pytest.fixture(scope="module")
def drops(nova, tmp_path_factory) -> Path:
    """Legacy CSV drops (`Daily_Data/<day>/<kind>_atlas_day.csv`) of every simulated day: the
    landing copies of a root built from the simulated Nova, which are the extracts byte for byte."""
    from cvas.core.schemas import KINDS
    from cvas.sources.directory import DirectorySource

    full = Layout(backfilled_root(tmp_path_factory, nova, START, day(DAYS - 1)))
    out = tmp_path_factory.mktemp("drops")
    source = DirectorySource(out)
    for i in range(DAYS):
        for kind in KINDS:
            source.daily_file(kind, day(i)).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(full.raw(kind, day(i)), source.daily_file(kind, day(i)))
    return out


def directory_cfg(tmp_path: Path, root: Path, drops: Path, nova, without: dt.date) -> Path:
    """A configuration reading `drops` less the folder of the day `without` (missing at the source)."""
    here = tmp_path / "drops"
    shutil.copytree(drops, here)
    shutil.rmtree(here / "Daily_Data" / f"{without}")
    return write_cfg(tmp_path / "luigi.cfg", root, source="directory", nova=nova, user_base="false",
                     extra=f"[directory_source]\nroot = {here}\n")


@pytest.fixture
def root(built, nova, tmp_path):
    copy = tmp_path / "data"
    shutil.copytree(built, copy)
    with luigi_settings(simulated_settings(copy, nova)):
        yield copy


def cell(lay: Layout, name: str, day_: dt.date | None = None):
    from tasks import datasets

    return Freshness(lay, datasets.settings()).state(name, day_)


def full_build_hash(lay: Layout, as_of: dt.date, tmp_path: Path) -> str:
    from cvas.steps.subscriptions import write_full_view

    dest = tmp_path / f"full-{as_of}"
    write_full_view(lay, as_of, dest / "subscriptions.parquet")
    return provenance.file_hash(dest / "subscriptions.parquet")


def daily(day_: dt.date) -> int:
    from tasks.pipeline import run_daily

    return run_daily(day_)


def verify_clean(lay: Layout, start: dt.date, end: dt.date) -> list[str]:
    from cvas.ops.verify import verify_range

    return [f"{f.path}: {f.problem}" for f in verify_range(lay, start, end).findings]


def shared_carried_part(lay: Layout, a: dt.date, b: dt.date) -> str:
    """A part the views as of `a` and `b` share by hard link (a deactivation month carried forward)."""
    first, second = parts(lay.subscriptions(a)), parts(lay.subscriptions(b))
    shared = [n for n in first if n in second and os.path.samefile(first[n], second[n])]
    assert shared, "the fold carries unchanged months by hard link"
    return shared[0]


# -- 1. a damaged file never travels --------------------------------------------------------------

def test_an_analyst_rewriting_the_newest_view_in_place_damages_no_snapshot_and_the_next_daily_repairs_it(root, nova,
                                                                                                       tmp_path):
    lay = Layout(root)
    part = parts(lay.subscriptions_latest)["open-0"]
    frame = pd.read_parquet(part)
    frame["renewal_revenue"] = frame["renewal_revenue"] * 2        # a "what if" written back in place
    frame.to_parquet(part, index=False)
    assert cell(lay, "subscriptions_latest").state == DAMAGED
    assert cell(lay, "subscriptions", BUILT).fresh, "the newest view is a copy: no snapshot shares its files"
    cfg = write_cfg(tmp_path / "luigi.cfg", root, nova=nova)
    status = run_cvas(cfg, "status", "--start", str(BUILT), "--end", str(BUILT))
    assert "subscriptions_latest" in status.stdout and "damaged" in status.stdout, status.stdout
    assert daily(NEXT) == 0
    meta = provenance.read(lay, lay.subscriptions_latest)
    assert meta["as_of"] == str(NEXT)
    assert provenance.file_hash(lay.subscriptions_latest) == full_build_hash(lay, NEXT, tmp_path)
    assert verify_clean(lay, START, NEXT) == []


def test_a_damaged_newest_copy_is_repaired_by_the_rerun_of_the_same_day(root):
    lay = Layout(root)
    part = parts(lay.subscriptions_latest)["open-1"]
    with open(part, "r+b") as fh:                                   # truncated in place
        fh.truncate(100)
    assert cell(lay, "subscriptions_latest").state == DAMAGED
    assert daily(BUILT) == 0
    assert cell(lay, "subscriptions_latest").fresh
    assert provenance.file_hash(lay.subscriptions_latest) == provenance.file_hash(lay.subscriptions(BUILT))


def test_a_shared_snapshot_part_truncated_in_place_is_never_linked_forward_and_one_backfill_repairs_every_snapshot(
        root, tmp_path):
    from cvas.ops.verify import format_report, mark_findings, repair_range, verify_range
    from tasks.pipeline import run_backfill

    lay = Layout(root)
    assert daily(NEXT) == 0                                          # a snapshot folded from BUILT's
    after = NEXT + dt.timedelta(days=1)
    name = shared_carried_part(lay, BUILT, NEXT)
    damaged = parts(lay.subscriptions(NEXT))[name]
    with open(damaged, "r+b") as fh:
        fh.truncate(damaged.stat().st_size // 2)
    assert cell(lay, "subscriptions", NEXT).state == DAMAGED
    assert cell(lay, "subscriptions", BUILT).state == DAMAGED, "every holder of the inode"

    assert daily(after) == 0                                         # folds from the state, rewrites the part
    new = parts(lay.subscriptions(after))[name]
    assert not os.path.samefile(new, damaged)
    assert provenance.file_hash(lay.subscriptions(after)) == full_build_hash(lay, after, tmp_path)

    report = verify_range(lay, after, after)                         # the damaged snapshots are found
    damaged_views = {f.path for f in report.findings if "damaged" in f.problem}
    assert {lay.subscriptions(BUILT), lay.subscriptions(NEXT)} <= damaged_views
    marked = mark_findings(lay, report)
    start, end = repair_range(lay, report, marked)
    assert (start, end) == (BUILT, after)
    assert f"`cvas backfill --start {start} --end {end}`" in format_report(lay, report, marked)
    assert run_backfill(start, end, progress=lambda _: None) == 0
    assert verify_clean(lay, start, end) == []
    for as_of in (BUILT, NEXT, after):
        assert cell(lay, "subscriptions", as_of).fresh, as_of


def test_a_state_part_edited_in_place_with_the_same_rows_is_never_folded_from(root, tmp_path):
    lay = Layout(root)
    part = parts(lay.subscription_state(BUILT))["open-2"]
    table = pq.read_table(part)
    frame = table.to_pandas()
    frame["renewal_revenue"] = [v if v is None else v + Decimal("1.00") for v in frame["renewal_revenue"]]
    table = pa.Table.from_pandas(frame, schema=table.schema, preserve_index=False)
    pq.write_table(table, part)                                      # same rows, other money
    assert pq.read_metadata(part).num_rows == table.num_rows
    assert cell(lay, "subscriptions", BUILT).state == DAMAGED
    assert daily(NEXT) == 0
    assert provenance.read(lay, lay.subscriptions(NEXT))["folded_from"] != str(BUILT)
    assert provenance.file_hash(lay.subscriptions(NEXT)) == full_build_hash(lay, NEXT, tmp_path)


# -- 2. the newest view is a dataset like the others: a kill between two publishes --------------------

_KILLED_DAILY = textwrap.dedent("""
    import os, sys
    from pathlib import Path
    import cvas.steps.subscriptions as subs
    from tasks.cli import main

    where = sys.argv[1]
    if where == "latest":      # after the as-of view and its state, before the newest copy
        subs.copy_latest = lambda layout: os._exit(9)
    else:                      # after the view, before the state's sidecar
        import cvas.steps.subscription_publish as publishing
        record = publishing.record_parts
        def killed(layout, output, *args, **kwargs):
            if Path(output).is_relative_to(layout.subscription_state_root):
                os._exit(9)
            return record(layout, output, *args, **kwargs)
        publishing.record_parts = killed
    sys.exit(main(["daily", "--date", sys.argv[2]]))
""")


@pytest.mark.parametrize("where", ["latest", "state-sidecar"])
def test_a_daily_killed_between_the_view_and_the_newest_copy_is_repaired_by_the_rerun(root, nova, tmp_path, where):
    lay = Layout(root)
    cfg = write_cfg(tmp_path / "luigi.cfg", root, nova=nova)
    killed = subprocess.run([sys.executable, "-c", _KILLED_DAILY, where, str(NEXT)], cwd=REPO, env=env_for(cfg),
                            capture_output=True, text=True, timeout=300)
    assert killed.returncode != 0, killed.stderr[-2000:]
    assert provenance.read(lay, lay.subscriptions_latest)["as_of"] == str(BUILT)
    assert not cell(lay, "subscriptions_latest").fresh or not cell(lay, "subscriptions", NEXT).fresh
    plan = run_cvas(cfg, "plan", "--start", str(NEXT), "--end", str(NEXT))
    assert "nothing to build" not in plan.stdout, plan.stdout
    rerun = run_cvas(cfg, "daily", "--date", str(NEXT))
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert provenance.read(lay, lay.subscriptions_latest)["as_of"] == str(NEXT)
    assert provenance.file_hash(lay.subscriptions_latest) == full_build_hash(lay, NEXT, tmp_path)
    assert verify_clean(lay, START, NEXT) == []


# -- 3. a change to day D reaches the newest view, the exports and the report ------------------------

def test_a_redelivered_day_refreshes_the_newest_view_and_report_in_one_backfill(root, nova, tmp_path):
    lay = Layout(root)
    redelivered = day(2)
    cfg = write_cfg(tmp_path / "luigi.cfg", root, nova=nova)
    before = provenance.read(lay, lay.subscriptions(BUILT))["transactions"]
    assert run_cvas(cfg, "invalidate", "--dataset", "raw", "--start", str(redelivered), "--end",
                    str(redelivered)).returncode == 0
    done = run_cvas(cfg, "backfill", "--start", str(redelivered), "--end", str(redelivered))
    assert done.returncode == 0, done.stdout + done.stderr
    assert provenance.read(lay, lay.subscriptions(BUILT))["transactions"] != before, "the newest view is rebuilt"
    for name, as_of in (("subscriptions", BUILT), ("subscriptions_latest", None), ("report", BUILT),
                        ("counters_export", BUILT)):
        assert cell(lay, name, as_of).fresh, name
    assert "nothing to build" in run_cvas(cfg, "plan", "--start", str(START), "--end", str(BUILT)).stdout
    assert provenance.file_hash(lay.subscriptions_latest) == full_build_hash(lay, BUILT, tmp_path)


def test_a_late_day_built_alone_refreshes_the_newest_view_and_report(root, nova, drops, tmp_path):
    """A day missing at the source blocks the later views; once delivered, built by `cvas daily
    --date D`, it refreshes the newest view and report too."""
    lay = Layout(root)
    late = day(3)
    for kind_dir in lay.transactions_root().iterdir():               # the day never arrived
        (kind_dir / f"year_month={late:%Y-%m}" / f"{late}.parquet").unlink()
        lay.raw(kind_dir.name, late).unlink()
    cfg = directory_cfg(tmp_path, root, drops, nova, without=late)
    assert not cell(lay, "subscriptions", BUILT).fresh, "a view over a hole is not fresh"
    run = run_cvas(cfg, "daily", "--date", str(NEXT))
    assert run.returncode != 0, "no view over the missing day"
    assert str(late) in run.stdout + run.stderr
    assert not lay.subscriptions(NEXT).exists() and not lay.report(NEXT).exists()
    assert lay.daily_counters(NEXT).exists(), "the day's own outputs are published"
    shutil.copytree(drops / "Daily_Data" / f"{late}", tmp_path / "drops" / "Daily_Data" / f"{late}")   # delivered
    run = run_cvas(cfg, "daily", "--date", str(late))
    assert run.returncode == 0, run.stdout + run.stderr
    assert provenance.read(lay, lay.subscriptions_latest)["as_of"] == str(NEXT)
    for name, as_of in (("subscriptions", NEXT), ("subscriptions_latest", None), ("report", NEXT)):
        assert cell(lay, name, as_of).fresh, name
    assert provenance.file_hash(lay.subscriptions_latest) == full_build_hash(lay, NEXT, tmp_path)


# -- 4. no view over a hole ---------------------------------------------------------------------

def test_a_daily_after_a_day_missing_at_the_source_fails_naming_it(root, nova, drops, tmp_path):
    lay = Layout(root)
    skipped, today = NEXT, NEXT + dt.timedelta(days=1)
    cfg = directory_cfg(tmp_path, root, drops, nova, without=skipped)
    run = run_cvas(cfg, "daily", "--date", str(today))
    assert run.returncode != 0
    text = run.stdout + run.stderr
    assert f"needs every day up to it: {skipped} has no act, reno, dct, cnr, rfnd transactions loaded" in text, \
        text[-3000:]
    assert f"cvas backfill --start {skipped} --end {skipped}" in text
    assert lay.daily_counters(today).exists() and lay.transactions("act", today).exists()
    assert not lay.subscriptions(today).exists() and not lay.report(today).exists()
    assert provenance.read(lay, lay.subscriptions_latest)["as_of"] == str(BUILT)
    assert cell(lay, "subscriptions_latest").fresh, "the newest copy is still the newest view"


def test_a_view_is_never_built_over_a_missing_day(root):
    """The build itself refuses (the last guard, whoever calls it)."""
    from cvas.steps.subscriptions import ViewGapError, build_subscription_view

    lay = Layout(root)
    gap = day(2)
    for kind_dir in lay.transactions_root().iterdir():
        (kind_dir / f"year_month={gap:%Y-%m}" / f"{gap}.parquet").unlink()
    before = provenance.file_hash(lay.subscriptions(BUILT))
    with pytest.raises(ViewGapError, match=f"needs every day up to it: {gap} has no act, reno, dct, cnr, rfnd "
                                           f"transactions loaded.*cvas backfill --start {gap} --end {gap}"):
        build_subscription_view(lay, BUILT, full=True)
    assert provenance.file_hash(lay.subscriptions(BUILT)) == before, "nothing published"


# -- 5. strays in view folders ------------------------------------------------------------------

def test_strays_in_view_folders_are_listed_never_read_and_set_aside_when_the_folder_is_replaced(root, caplog):
    from cvas.analyst.analysis import lifetime_value
    from cvas.core.catalogue import strays
    from cvas.ops.verify import verify_range
    from cvas.steps.master import read_master_csv

    lay = Layout(root)
    master = read_master_csv(lay.master_cpc)
    service = master["service_name"].to_pylist()[0]
    months = [f"{START:%Y-%m}"]
    before = lifetime_value(lay.subscriptions_latest, master, service, months)
    copy = lay.subscriptions_latest / "open-0 (copy).parquet"       # the analyst's duplicate rows
    shutil.copyfile(parts(lay.subscriptions_latest)["open-0"], copy)
    mine = lay.subscriptions(BUILT) / "notes.parquet"
    shutil.copyfile(parts(lay.subscriptions(BUILT))["open-1"], mine)
    assert {copy, mine} <= set(strays(lay))
    findings = {f.path for f in verify_range(lay, BUILT, BUILT).findings}
    assert {copy, mine} <= findings
    assert lifetime_value(lay.subscriptions_latest, master, service, months).rows == before.rows
    assert cell(lay, "subscriptions_latest").fresh, "a stray is not part of the output"
    data = copy.read_bytes()
    assert daily(NEXT) == 0
    assert not copy.exists()
    kept = list((lay.set_aside / copy.parent.relative_to(root)).rglob(copy.name))
    assert len(kept) == 1 and kept[0].read_bytes() == data
    assert "moved to _set_aside" in caplog.text
