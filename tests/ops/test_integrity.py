"""Integrity under concurrency, stray files, bad re-deliveries and leftovers (issue 11).

In-process over one small simulated Nova (3 days, built once by a backfill and copied per
test); the concurrent `cvas daily`/`cvas backfill` processes are in tests/tasks/test_faults.py.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import random
import shutil
import threading
import time
from pathlib import Path

import luigi
import pyarrow.parquet as pq
import pytest
from luigi.execution_summary import LuigiStatusCode

from cvas.core import provenance
from cvas.core.layout import Layout, sidecar
from cvas.core.locking import registered_run
from cvas.core.publish import staged
from tests.conftest import backfilled_root, luigi_settings, simulated_settings

pytestmark = pytest.mark.slow   # see pyproject: make test-fast leaves it out

START = dt.date(2025, 11, 3)
DAYS = 3
END = START + dt.timedelta(days=DAYS - 1)
DAYS_LIST = [START + dt.timedelta(days=i) for i in range(DAYS)]


@pytest.fixture(scope="module")
def nova(tmp_path_factory):
    from cvas.simulator.simulate import simulate

    return simulate(tmp_path_factory.mktemp("nova"), START, DAYS, new_per_day=15, seed=5)


@pytest.fixture(scope="module")
def built(nova, tmp_path_factory) -> Path:
    """A data root with the whole range built (the reference every test copies)."""
    return backfilled_root(tmp_path_factory, nova, START, END)


@pytest.fixture
def root(built, nova, tmp_path):
    """A private copy of the built root, with cvas's settings pointing at it."""
    copy = tmp_path / "data"
    shutil.copytree(built, copy)
    with luigi_settings(simulated_settings(copy, nova)):
        yield copy


def _excluded():
    from tasks.config import excluded_services

    return excluded_services()


def _export_fresh(lay: Layout, day: dt.date) -> bool:
    from cvas.core.freshness import state
    from tasks import datasets

    return state(lay, "counters_export", day, settings=datasets.settings()).fresh


# -- 1. whole-dataset writers are serialised and record what they read ----------------------


def test_concurrent_counter_exports_count_every_day_once_and_record_exactly_what_they_read(root, built):
    """Days published while other workers export (the race of two `cvas daily` runs): each day
    is in the exports once, and the sidecar's listing is the files the last export read."""
    from cvas.core.freshness import Freshness, Settings
    from cvas.steps.exports import publish_counter_exports

    lay = Layout(root)
    aside = root.parent / "aside"
    aside.mkdir()
    for day in DAYS_LIST:
        shutil.move(lay.daily_counters(day), aside / lay.daily_counters(day).name)
    for output in (lay.counters_cpc, lay.counters_service):
        output.unlink()
    sidecar(lay, lay.counters_cpc).unlink()
    errors: list[BaseException] = []
    order = DAYS_LIST[:]
    random.Random(3).shuffle(order)

    def daily(day: dt.date) -> None:   # what DailyCounters then ExportCounters do
        try:
            with staged(lay.staging, lay.daily_counters(day)) as tmp:
                shutil.copyfile(aside / lay.daily_counters(day).name, tmp)
            publish_counter_exports(lay, _excluded(), day)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=daily, args=(day,)) for day in order]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    exported = pq.read_table(lay.counters_cpc)
    reference = pq.read_table(Layout(built).counters_cpc)
    assert exported.equals(reference), "every day exactly once"
    assert lay.counters_service.read_bytes() == Layout(built).counters_service.read_bytes()
    assert Freshness(lay, Settings(excluded_services=_excluded())).extension("counters_export").days == [], \
        "the sidecar lists every day read"
    assert all(_export_fresh(lay, day) for day in DAYS_LIST)


def test_a_day_file_replaced_while_the_export_runs_leaves_the_export_stale(root):
    """The export records the listing taken before reading: a day file replaced after that is a
    change (a later run rebuilds), never recorded as read."""
    from cvas.steps.exports import publish_counter_exports

    lay = Layout(root)
    before = provenance.fingerprints({"master": lay.master_cpc})
    publish_counter_exports(lay, _excluded(), END)
    meta = provenance.read(lay, lay.counters_cpc)
    assert meta["inputs"] == before
    time.sleep(0.01)
    with staged(lay.staging, lay.daily_counters(START)) as tmp:   # republished after the export read it
        shutil.copyfile(lay.daily_counters(START), tmp)
    assert not _export_fresh(lay, END)


def test_a_task_finished_by_another_run_is_not_run_again(root, caplog):
    """Luigi's local scheduler does not know other processes: a task it planned may be complete
    by the time it runs. It is then skipped, not rebuilt under the reader that saw it complete."""
    from tasks.steps.counters import DailyCounters

    lay = Layout(root)
    before = lay.daily_counters(START).stat().st_mtime_ns
    caplog.set_level(logging.INFO, logger="cvas.tasks")
    DailyCounters(date=START).run()  # planned, then found built: skipped under its lock
    assert lay.daily_counters(START).stat().st_mtime_ns == before
    assert "built by another run meanwhile" in caplog.text


class _OtherRun(luigi.Task):
    """Stands for another process that marks an input for rebuild after this run planned its work."""

    priority = 100
    path = luigi.Parameter()

    def run(self):
        from cvas.ops.status import mark_for_rebuild
        from tasks.config import layout

        mark_for_rebuild(layout(), Path(self.path))
        self.done = True

    def complete(self):
        return getattr(self, "done", False)


def test_an_input_taken_away_by_another_run_fails_with_a_clear_message(root, caplog):
    from tasks.analyst.report import DailyReport

    lay = Layout(root)
    lay.report(END).unlink()
    caplog.set_level(logging.ERROR, logger="cvas.tasks")
    result = luigi.build([_OtherRun(path=str(lay.counters_cpc)), DailyReport(date=END)], local_scheduler=True,
                         detailed_summary=True, workers=1)
    assert result.status != LuigiStatusCode.SUCCESS
    messages = {r.getMessage() for r in caplog.records if r.name == "cvas.tasks"}
    assert len(messages) == 1, messages
    message = messages.pop()
    assert message.startswith(f"DailyReport(date={END}) did not run: its input(s) ExportCounters(date={END}) "
                              "were complete when this run planned its work and are not any more.")
    assert "Another run on the same data root is rebuilding them" in message
    assert "Nothing was published by this task" in message
    assert not lay.report(END).exists()


# -- 2. readers read exactly the files the layout names --------------------------------------


def _strays(directory: Path, like: Path) -> list[Path]:
    strays = [directory / f"{like.stem} - Copy{like.suffix}", directory / f"junk{like.suffix}",
              directory / f"{like.stem.replace('-0', '-')}{like.suffix}"]   # 2025-11-3.parquet
    for stray in strays:
        shutil.copyfile(like, stray)
    return strays


def test_stray_files_in_the_counters_folder_are_not_exported(root, built):
    from cvas.steps.exports import publish_counter_exports

    lay = Layout(root)
    _strays(lay.daily_counters_root, lay.daily_counters(START))
    lay.counters_cpc.unlink()                       # a rebuild from every day file
    stats = publish_counter_exports(lay, _excluded(), END)
    assert stats["mode"] == "rebuild" and stats["days"] == DAYS
    assert pq.read_table(lay.counters_cpc).equals(pq.read_table(Layout(built).counters_cpc))
    assert lay.counters_service.read_bytes() == Layout(built).counters_service.read_bytes()


def test_stray_files_in_a_transaction_month_do_not_enter_the_view(root, built):
    from cvas.steps.subscriptions import build_subscription_view

    lay = Layout(root)
    for kind in ("act", "reno"):
        _strays(lay.transactions(kind, START).parent, lay.transactions(kind, START))
    build_subscription_view(lay, END)
    assert pq.read_table(lay.subscriptions(END)).equals(pq.read_table(Layout(built).subscriptions(END)))


def test_stray_files_in_the_user_base_folder_do_not_break_its_exports(root, built):
    from cvas.steps.user_base import export_user_base

    lay = Layout(root)
    _strays(lay.user_base_daily_root, lay.user_base_daily(START))
    for by in ("service", "category", "cpc"):
        lay.user_base_export(by).unlink()
    stats = export_user_base(lay, _excluded())
    assert stats["mode"] == "rebuild" and stats["days"] == DAYS
    for by in ("service", "category", "cpc"):
        assert lay.user_base_export(by).read_bytes() == Layout(built).user_base_export(by).read_bytes()


# -- 6. a bad re-delivery never replaces a good landing copy -----------------------------------


def test_a_bad_redelivery_keeps_the_landing_copy_and_the_next_backfill_fetches_again(luigi_config, tmp_path):
    from cvas.ops.status import invalidate
    from tests.golden_scenario import DAY, write_golden_drops, write_golden_master
    from tasks.pipeline import run_backfill

    drops = tmp_path / "drops"
    write_golden_drops(drops)
    write_golden_master(tmp_path / "master.xlsx")
    (tmp_path / "excl.csv").write_text("msisdn,tmuserid\n")
    for key, value in (("source", "directory"), ("master_xlsx", tmp_path / "master.xlsx"),
                       ("exclusions", tmp_path / "excl.csv")):
        luigi_config("cvas", key, value)
    luigi_config("directory_source", "root", drops)
    assert run_backfill(DAY, DAY, progress=lambda _: None) == 0
    lay = Layout(tmp_path / "data")
    good = lay.raw("act", DAY).read_bytes()
    drop = drops / "Daily_Data" / f"{DAY}" / "act_atlas_day.csv"
    fixed = drop.read_bytes()

    for bad in (b"", b"not,the,header\n1,2,3\n"):
        assert invalidate(lay, DAY, DAY, "raw", ["act"])
        drop.write_bytes(bad)
        assert run_backfill(DAY, DAY, progress=lambda _: None) != 0
        assert lay.raw("act", DAY).read_bytes() == good, "the landing copy is kept"
        assert lay.transactions("act", DAY).exists()

    drop.write_bytes(fixed.replace(b"\n", b"\r\n"))   # the drop repaired (another line end): fetched again
    assert run_backfill(DAY, DAY, progress=lambda _: None) == 0
    assert lay.raw("act", DAY).read_bytes() == fixed.replace(b"\n", b"\r\n")


def test_check_delivery_names_what_is_wrong(tmp_path):
    from cvas.core.schemas import spec
    from cvas.steps.fetch import DeliveryError, check_delivery

    path = tmp_path / "x.csv"
    header = ",".join(spec("cnr").names)
    cases = [(b"", "x.csv: empty file, no header"),
             (b"a,b\n", "x.csv: line 1: wrong header: none of the 5 expected columns"),
             (f"{header}\n2026-02-10,1,8341,4,m\n".encode(), "x.csv: holds 1 records, the source reported 2")]
    for data, expected in cases:
        path.write_bytes(data)
        with pytest.raises(DeliveryError, match=expected):
            check_delivery("cnr", path, 2)
    path.write_bytes(f"{header}\n2026-02-10,1,8341,4,\"a\nb\"\n2026-02-10,2,8341,4,m\n".encode())
    check_delivery("cnr", path, 2)     # a quoted line break is one record


# -- 9. staging leftovers ---------------------------------------------------------------------


def test_staging_leftovers_older_than_the_oldest_running_build_are_cleaned(root, caplog):
    from tasks.pipeline import run_daily

    lay = Layout(root)
    old = lay.staging / "2025-11-03.crashed"
    old.mkdir(parents=True)
    shutil.copyfile(lay.transactions("act", START), old / "2025-11-03.parquet")   # holds msisdn values
    stale_file = lay.staging / "loose.tmp"
    stale_file.write_text("x")
    past = time.time() - 3600
    for path in (old / "2025-11-03.parquet", old, stale_file):
        os.utime(path, (past, past))
    caplog.set_level(logging.INFO, logger="cvas.backfill")
    with registered_run(lay.runs):             # another build, running since now
        young = lay.staging / "2025-11-04.running"
        young.mkdir()
        (young / "2025-11-04.parquet").write_text("being written")
        assert run_daily(END) == 0
    assert not old.exists() and not stale_file.exists()
    assert young.exists(), "what a running build may own is kept"
    assert "staging: removed 2 leftover(s) of ended runs, older than the oldest running build" in caplog.text
    assert "2025-11-03.crashed" in caplog.text
    assert list(lay.runs.iterdir()) == []


# -- 3. a partition replaced behind cvas's back is damage, not a reload --------------------------


def _grid_cell(lay: Layout, name: str, day: dt.date, kind: str | None = None):
    from cvas.core.freshness import state
    from tasks import datasets

    return state(lay, name, day, kind, settings=datasets.settings())


def test_a_partition_replaced_outside_cvas_is_damage_and_is_rebuilt_from_its_landing_copy(root, built):
    from cvas.ops.verify import verify_range
    from tasks.pipeline import planned_steps, run_backfill

    lay = Layout(root)
    victim = lay.transactions("reno", START)
    half = pq.read_table(victim)
    time.sleep(0.01)
    pq.write_table(half.slice(0, half.num_rows // 2), victim)      # a valid file of half the rows
    cell = _grid_cell(lay, "transactions", START, "reno")
    assert (cell.state, cell.reason) == ("damaged", "its bytes differ from the hash its sidecar recorded "
                                                    "(replaced outside cvas)")
    steps = {(d, label): why for d, label, why in planned_steps(START, END)}
    assert steps[(START, "transactions:reno")].startswith("damaged: ")
    assert steps[(START, "daily_counters")] == "stale: reno damaged (rebuilt first)", "never taken as a reload"
    found = verify_range(lay, START, END).findings
    assert [str(f.path.relative_to(root)) for f in found] == [str(victim.relative_to(root))]

    assert run_backfill(START, END, progress=lambda _: None) == 0
    assert victim.read_bytes() == (built / victim.relative_to(root)).read_bytes()
    assert pq.read_table(lay.counters_cpc).drop_columns(["last_updated"]).equals(
        pq.read_table(Layout(built).counters_cpc).drop_columns(["last_updated"]))
    assert verify_range(lay, START, END).ok


# -- 5. a malformed sidecar is a stale output, named, and rebuilt -------------------------------


def test_a_truncated_sidecar_makes_its_output_stale_names_the_file_and_is_rebuilt(root, caplog):
    from cvas.ops.status import grid
    from cvas.ops.verify import verify_range
    from tasks import datasets
    from tasks.pipeline import run_backfill

    lay = Layout(root)
    broken = [sidecar(lay, lay.daily_counters(START)), sidecar(lay, lay.counters_cpc)]
    for path in broken:
        path.write_text(path.read_text()[:40])          # "Unterminated string..." for a JSON reader
    cells = grid(lay, START, END, datasets.settings())
    assert cells[START]["daily_counters"].state == "stale"
    assert cells[START]["daily_counters"].reason == f"unreadable provenance sidecar {broken[0].relative_to(root)}"
    assert _grid_cell(lay, "counters_export", END).reason == \
        f"unreadable provenance sidecar {broken[1].relative_to(root)}"
    caplog.set_level(logging.WARNING, logger="cvas.core.provenance")
    report = verify_range(lay, START, END)
    assert {(f.path, f.problem) for f in report.findings} >= {
        (lay.daily_counters(START), f"unreadable provenance sidecar {broken[0].relative_to(root)}: its content "
                                    "cannot be verified")}
    assert f"{broken[0]}: unreadable provenance sidecar" in caplog.text
    assert run_backfill(START, END, progress=lambda _: None) == 0
    for path in broken:
        assert provenance.read_json(path) is not None
    assert verify_range(lay, START, END).ok


# -- 2. status and verify report stray files -----------------------------------------------------


def test_status_and_verify_report_every_file_the_layout_does_not_name(root):
    from cvas.core.catalogue import strays
    from cvas.ops.status import format_strays
    from cvas.ops.verify import verify_range

    lay = Layout(root)
    assert strays(lay) == []
    planted = (_strays(lay.daily_counters_root, lay.daily_counters(START))
               + _strays(lay.transactions("act", START).parent, lay.transactions("act", START))
               + _strays(lay.user_base_daily_root, lay.user_base_daily(START)))
    (lay.counters_export_dir / "Counters_CPC (1).parquet").write_bytes(b"x")
    (lay.raw("act", START).parent / "notes.txt").write_text("x")
    planted += [lay.counters_export_dir / "Counters_CPC (1).parquet", lay.raw("act", START).parent / "notes.txt"]
    # the data root holds MASTERCPC.csv but is no dataset folder: the legacy's analyst scripts run
    # from it and write their results there
    (root / "rfnd_analysis.csv").write_text("x")
    assert strays(lay) == sorted(planted)
    text = format_strays(lay, strays(lay))
    assert text.startswith(f"stray files: {len(planted)} in dataset folders, not named by the layout")
    assert f"  {(lay.daily_counters_root / '2025-11-03 - Copy.parquet').relative_to(root)}" in text
    findings = {f.path: f.problem for f in verify_range(lay, START, END).findings}
    assert set(findings) == set(planted)
    assert set(findings.values()) == {"not a file the layout names: cvas never reads it (move it out of the "
                                      "dataset folder)"}


# -- 7. the DST hour: both renewals counted --------------------------------------------------------


def test_two_renewals_at_the_repeated_dst_hour_are_both_counted_and_in_the_view(layout):
    from cvas.core.schemas import KINDS
    from cvas.steps.counters import compute_daily_counters
    from cvas.steps.exclusions import Exclusions
    from cvas.steps.load import load_into_layout
    from cvas.steps.subscriptions import build_subscription_view

    day = dt.date(2025, 10, 26)
    corpus = Path(__file__).parents[1] / "corpus" / "transactions"
    for kind in KINDS:
        raw = layout.raw(kind, day)
        raw.parent.mkdir(parents=True, exist_ok=True)
        if kind == "reno":
            shutil.copyfile(corpus / "reno_dst_ambiguous_hour.csv", raw)
        else:
            from cvas.core.schemas import spec
            raw.write_text(",".join(spec(kind).names) + "\n")
        load_into_layout(layout, kind, day)
    counters = compute_daily_counters(day, {k: layout.transactions(k, day) for k in KINDS},
                                      Exclusions(), dt.datetime(2025, 10, 27))
    (row,) = counters.to_pylist()
    assert (row["reno_count"], row["rev"]) == (3, 14.97), "both charges at 02:30 are counted"
    build_subscription_view(layout, day)
    view = {r["subscription_id"]: r for r in pq.read_table(layout.subscriptions(day)).to_pylist()}
    assert view[770000000000000001]["renewal_count"] == 2


# -- 4. a partition loaded before the ranges existed: a named failure, not a cast error ------------


def test_counters_refuse_a_partition_with_an_absurd_value_naming_file_day_and_column(root):
    from cvas.core.schemas import KINDS
    from cvas.steps.counters import CounterInputError, compute_daily_counters
    from cvas.steps.exclusions import Exclusions
    import pyarrow as pa

    lay = Layout(root)
    victim = lay.transactions("rfnd", START)
    table = pq.read_table(victim)
    assert table.num_rows > 0
    counts = table["rfnd_cnt"].to_pylist()
    counts[0] = 2**63 - 1
    pq.write_table(table.set_column(table.schema.get_field_index("rfnd_cnt"), "rfnd_cnt",
                                    pa.array(counts, pa.int64())), victim)
    with pytest.raises(CounterInputError) as err:
        compute_daily_counters(START, {k: lay.transactions(k, START) for k in KINDS}, Exclusions(),
                               dt.datetime(2025, 11, 4))
    assert str(err.value).startswith(f"counters for {START}: {victim}: 1 row(s) with rfnd_cnt outside its "
                                     "plausible range (0 <= rfnd_cnt < 1000001)")
