"""cvas.core.publish: many days published together, in order, each day when its work is done."""

from __future__ import annotations

import datetime as dt
import os

import pytest

from cvas.core.batch import DaysFailed, each_day
from cvas.core.publish import PublishError, published_together, staged, staged_file, write_text_atomic

DAYS = [dt.date(2026, 3, d) for d in (1, 2, 3)]


def test_each_day_is_published_when_its_work_is_done_and_the_rest_at_the_end(tmp_path):
    staging, out = tmp_path / ".staging", tmp_path / "data"
    seen = []

    def work(day):
        # this day's files are not at their targets while it is built
        report, partition = out / "quality" / f"{day}.json", out / "transactions" / f"{day}.csv"
        write_text_atomic(staging, report, f"report {day}\n")
        with staged(staging, partition) as tmp:
            tmp.write_text(f"rows of {day}\n")
        assert not partition.exists() and staged_file(partition).read_text() == f"rows of {day}\n"
        seen.append(day)
        return day.day

    with published_together(staging):
        assert each_day("test", DAYS, work) == {d: d.day for d in DAYS}
        with staged(staging, out / "last.txt") as tmp:   # staged outside a day: published on exit
            tmp.write_text("last\n")
    assert seen == DAYS
    for day in DAYS:
        assert (out / "quality" / f"{day}.json").read_text() == f"report {day}\n"
        assert (out / "transactions" / f"{day}.csv").read_text() == f"rows of {day}\n"
    assert (out / "last.txt").read_text() == "last\n"
    assert staged_file(out / "last.txt") == out / "last.txt"          # outside a block: the target
    assert os.listdir(staging) == []                                   # nothing left behind


def test_a_failed_day_publishes_what_it_staged_before_failing_and_the_others_publish(tmp_path):
    staging, out = tmp_path / ".staging", tmp_path / "data"

    def work(day):
        write_text_atomic(staging, out / "quality" / f"{day}.json", "report\n")
        if day == DAYS[1]:
            raise ValueError("over the reject limit")
        write_text_atomic(staging, out / "transactions" / f"{day}.csv", "rows\n")

    with pytest.raises(DaysFailed, match="over the reject limit"), published_together(staging):
        each_day("test", DAYS, work)
    assert sorted(p.name for p in (out / "quality").iterdir()) == [f"{d}.json" for d in DAYS]
    assert sorted(p.name for p in (out / "transactions").iterdir()) == [f"{DAYS[0]}.csv", f"{DAYS[2]}.csv"]


def test_a_file_that_cannot_be_published_fails_the_block_and_leaves_the_previous_version(tmp_path):
    staging, out = tmp_path / ".staging", tmp_path / "data"
    write_text_atomic(staging, out / "a.txt", "old\n")
    (out / "blocked").write_text("a file where a folder should be")
    with pytest.raises(PublishError, match="publishing the staged files failed"):
        with published_together(staging):
            write_text_atomic(staging, out / "blocked" / "b.txt", "new\n")
            write_text_atomic(staging, out / "a.txt", "new\n")
    assert (out / "a.txt").read_text() == "old\n"                  # staged after the failed one
    assert os.listdir(staging) == []


def test_blocks_do_not_nest(tmp_path):
    with published_together(tmp_path):
        with pytest.raises(RuntimeError, match="not nested"), published_together(tmp_path):
            pass
