"""Backfills in Luigi batch runs: the same outputs as day by day, a bad day fails alone."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import logging
import re

import luigi
import pytest

from cvas.core.batch import DaysFailed, contiguous_runs, each_day
from cvas.core.layout import Layout
from cvas.core.schemas import KINDS
from tests.cli_runs import differences, published, sidecars
from tests.conftest import luigi_settings, simulated_settings

pytestmark = pytest.mark.slow   # see pyproject: make test-fast leaves it out

START = dt.date(2025, 6, 2)
DAYS = 5
END = START + dt.timedelta(days=DAYS - 1)
BAD = START + dt.timedelta(days=2)


@pytest.fixture(scope="module")
def nova(tmp_path_factory):
    from cvas.simulator.simulate import simulate

    return simulate(tmp_path_factory.mktemp("nova"), START, DAYS, new_per_day=20, seed=13)


def backfill(root, nova, start=START, end=END, settings=None, **kwargs):
    """run_backfill into `root` (the simulated source, or as `settings` say); returns (exit code,
    progress lines, families that ran as batches)."""
    from tasks.base import CvasTask
    from tasks.pipeline import run_backfill

    batches: list[str] = []
    lines: list[str] = []

    @CvasTask.event_handler(luigi.Event.START)
    def started(task):
        if task.is_batch:
            batches.append(task.task_family)

    from tasks import outcome

    outcome.reset()   # what the CLI does for each command
    try:
        with luigi_settings(simulated_settings(root, nova) | (settings or {})):
            code = run_backfill(start, end, progress=lines.append, **kwargs)
    finally:
        luigi.Task._event_callbacks[CvasTask][luigi.Event.START].discard(started)
    return code, lines, batches


@pytest.fixture(scope="module")
def day_by_day(nova, tmp_path_factory):
    """The reference: one day per build, so no task ever runs as a batch."""
    root = tmp_path_factory.mktemp("day_by_day") / "data"
    code, _, batches = backfill(root, nova, batch_days=1)
    assert code == 0 and batches == []
    return root


def test_batched_backfill_publishes_what_day_by_day_publishes(nova, day_by_day, tmp_path, caplog):
    root = tmp_path / "data"
    with caplog.at_level(logging.INFO, logger="cvas.tasks"):
        code, _, batches = backfill(root, nova)
    assert code == 0
    assert {"FetchTransactions", "LoadTransactions", "DailyCounters", "FetchUserBase",
            "AggregateUserBase"} <= set(batches)
    # the run log says how long each batch took (where a slow backfill spent its time)
    timed = [r.getMessage() for r in caplog.records if r.name == "cvas.tasks" and " ran in " in r.getMessage()]
    assert any(re.fullmatch(rf"LoadTransactions\(reno\) {START}\.\.{END} \({DAYS} days\) ran in \d+\.\d\ds", m)
               for m in timed), timed
    # and a profile line per run: its family, days, seconds and the phases counted inside it
    profiles = [json.loads(r.getMessage().removeprefix("profile ")) for r in caplog.records
                if r.name == "cvas.tasks" and r.getMessage().startswith("profile ")]
    loads = [p for p in profiles if p["family"] == "LoadTransactions"]
    assert len(loads) == len(KINDS) and all(p["days"] == DAYS for p in loads)
    assert all(0 < p["phases"]["sidecars and hashing"] < p["seconds"] for p in loads)
    assert differences(published(day_by_day), published(root)) == []
    assert sidecars(day_by_day) == sidecars(root)
    # `published` compares reports and rejects byte for byte with the root's path masked; the
    # landing copies and partitions are the same bytes as they are
    lay, ref = Layout(root), Layout(day_by_day)
    for kind in KINDS:
        for day in (START, END):
            for path in (Layout.raw, Layout.transactions):
                assert path(lay, kind, day).read_bytes() == path(ref, kind, day).read_bytes()


def test_a_batched_backfill_from_directory_drops_publishes_what_day_by_day_publishes(nova, day_by_day, tmp_path):
    """The directory source's range extract (a run of days in one pass) and each day's files
    published together give the files the simulated source gives one day at a time."""
    from cvas.sources.directory import DirectorySource
    from cvas.sources.simulated import SimulatedSource

    drops, source = DirectorySource(tmp_path / "drops"), SimulatedSource(nova.database)
    for day in (START + dt.timedelta(days=i) for i in range(DAYS)):
        for kind in KINDS:
            drops.daily_file(kind, day).parent.mkdir(parents=True, exist_ok=True)
            source.extract_transactions(kind, day, drops.daily_file(kind, day))
        drops.user_base_file(day).parent.mkdir(parents=True, exist_ok=True)
        source.extract_user_base(day, drops.user_base_file(day))
    root = tmp_path / "data"
    code, _, batches = backfill(root, nova, settings={("cvas", "source"): "directory",
                                                      ("directory_source", "root"): drops.root})
    assert code == 0 and {"FetchTransactions", "LoadTransactions", "DailyCounters"} <= set(batches)
    assert differences(published(day_by_day), published(root)) == []
    lay, ref = Layout(root), Layout(day_by_day)
    for kind in KINDS:
        for day in (START, END):
            for path in (Layout.raw, Layout.transactions):
                assert path(lay, kind, day).read_bytes() == path(ref, kind, day).read_bytes()


def test_a_day_over_the_reject_limit_fails_alone_and_the_others_publish(nova, day_by_day, tmp_path):
    root = tmp_path / "data"
    lay, ref = Layout(root), Layout(day_by_day)
    # the landing copy of one day is damaged beyond the reject limit: its load fails
    rows = list(csv.reader(io.StringIO(ref.raw("act", BAD).read_text(), newline="")))
    for row in rows[1::2]:
        row[rows[0].index("trans_type_id")] = "x"
    lay.raw("act", BAD).parent.mkdir(parents=True)
    with open(lay.raw("act", BAD), "w", newline="") as fh:
        csv.writer(fh, lineterminator="\n").writerows(rows)
    code, lines, batches = backfill(root, nova)
    assert code != 0 and "LoadTransactions" in batches
    failed = next(line for line in lines if line.strip().startswith("failed:"))
    assert failed.strip() == f"failed: LoadTransactions(act) {BAD}"
    # the failures the command ends with name the bad day alone, not every day of its batch, and
    # the view of the range's end, which would lack the bad day's rows (no view over a hole)
    from tasks import outcome

    assert [(f.task, f.day, f.kind, f.error) for f in outcome.current.failures] == \
        [("LoadTransactions", str(BAD), "act", "RejectRatioExceeded"), ("SubscriptionView", str(END), None, "ViewGapError")]
    # the bad day published its report but no partition and no counters
    assert not lay.transactions("act", BAD).exists() and lay.quality("act", BAD).exists()
    assert not lay.daily_counters(BAD).exists()
    for day in (START + dt.timedelta(days=i) for i in range(DAYS)):
        assert lay.daily_counters(day).exists() == (day != BAD)
        for kind in KINDS:
            if (kind, day) != ("act", BAD):
                assert lay.transactions(kind, day).read_bytes() == ref.transactions(kind, day).read_bytes()


def test_a_day_the_source_lacks_fails_alone(nova, day_by_day, tmp_path):
    root = tmp_path / "data"
    lay, ref = Layout(root), Layout(day_by_day)
    past = END + dt.timedelta(days=1)           # one day past the simulated Nova
    code, lines, batches = backfill(root, nova, end=past)
    assert code != 0 and "FetchTransactions" in batches
    failed = next(line for line in lines if line.strip().startswith("failed:"))
    assert all(f"FetchTransactions({kind}) {past}" in failed for kind in KINDS)
    assert f"FetchUserBase {past}" in failed and str(END) not in failed
    for kind in KINDS:
        assert not lay.raw(kind, past).exists()
        assert lay.raw(kind, END).read_bytes() == ref.raw(kind, END).read_bytes()
    assert lay.daily_counters(END).exists() and not lay.daily_counters(past).exists()


def test_each_day_runs_every_day_and_names_the_failed_ones():
    days = [dt.date(2025, 1, d) for d in (1, 2, 3, 4)]
    done = []

    def work(day):
        if day.day % 2 == 0:
            raise ValueError(f"day {day.day} is even")
        done.append(day)
        return day.day

    with pytest.raises(DaysFailed) as err:
        each_day("test", days, work)
    assert done == [days[0], days[2]]
    assert sorted(err.value.failures) == [days[1], days[3]]
    assert "2 of 4 days failed (2025-01-02, 2025-01-04)" in str(err.value)
    assert "day 2 is even" in str(err.value)
    with pytest.raises(ValueError, match="day 2 is even"):
        each_day("test", [days[1]], work)                  # one day: its own error, as before
    assert each_day("test", [days[0], days[2]], work) == {days[0]: 1, days[2]: 3}


def test_contiguous_runs():
    d = [dt.date(2025, 1, 1) + dt.timedelta(days=i) for i in (0, 1, 2, 5, 6, 9)]
    assert contiguous_runs(list(reversed(d))) == [d[:3], d[3:5], d[5:]]
    assert contiguous_runs(d[:3], longest=2) == [d[:2], d[2:3]]


def test_day_parameter_keeps_the_one_day_task_and_serialises_a_batch():
    from tasks.base import DayBatch
    from tasks.steps.transactions import LoadTransactions

    one = LoadTransactions(date=START, kind="act")
    assert one.date == START and not one.is_batch
    assert one.to_str_params()["date"] == str(START)
    batch = LoadTransactions.from_str_params({"date": [str(END), str(START)], "kind": "act"})
    assert batch.is_batch and isinstance(batch.date, DayBatch) and list(batch.date) == [START, END]
    days, _, tag = batch.to_str_params()["date"].partition("@")
    assert days == f"{START},{END}" and tag, "a batch names its days, then the process that runs it"
    assert LoadTransactions.from_str_params(batch.to_str_params()) == batch
    assert LoadTransactions.from_str_params({"date": f"{START},{END}@0badc0de", "kind": "act"}).task_id \
        == batch.task_id, "another process's batch of the same days is this process's own task"
    assert [t.date for t in batch.day_tasks()] == [START, END]
    assert [t.task_id for t in batch.day_tasks()] == [one.task_id, LoadTransactions(date=END, kind="act").task_id]


def test_batches_of_different_families_or_kinds_never_wait_on_each_other(tmp_path):
    """A batch holds the lock of each of its days while it runs. Those locks are per family and
    kind, a day each: two workers running a month of reno fetches and a month of dct loads side
    by side never wait on each other (they did, on shared hash buckets, which serialised a
    two-worker backfill), while the same day of the same task is always one lock."""
    from tasks.base import task_lock_files
    from tasks.steps.counters import DailyCounters
    from tasks.steps.transactions import FetchTransactions, LoadTransactions

    lay = Layout(tmp_path)
    month = [START + dt.timedelta(days=i) for i in range(31)]
    batches = {name: task_lock_files(lay, [cls(date=d, **kw) for d in month])
               for name, cls, kw in (("load dct", LoadTransactions, {"kind": "dct"}),
                                     ("load reno", LoadTransactions, {"kind": "reno"}),
                                     ("fetch reno", FetchTransactions, {"kind": "reno"}),
                                     ("counters", DailyCounters, {}))}
    assert all(len(locks) == len(month) for locks in batches.values())
    names = list(batches)
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            assert not set(batches[a]) & set(batches[b]), (a, b)
    one_day = task_lock_files(lay, [LoadTransactions(date=month[7], kind="dct")])
    assert len(one_day) == 1 and one_day[0] in batches["load dct"]
    assert task_lock_files(lay, [LoadTransactions(date=month[7], kind="dct")]) == one_day
