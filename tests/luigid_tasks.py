"""Small real Luigi tasks for the luigid tests: each publishes a file atomically and logs its run."""

from __future__ import annotations

import os
import time
from pathlib import Path

import luigi

RUN_LOG = "runs.log"


def record_run(root: Path, task: luigi.Task) -> None:
    """Append `<task_id> <pid> <worker pid>` per run; O_APPEND keeps concurrent lines whole."""
    fd = os.open(root / RUN_LOG, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, f"{task.task_id} {os.getpid()} {os.getppid()}\n".encode())
    finally:
        os.close(fd)


def publish(path: Path, text: str) -> None:
    """Write beside the target under a dot name, then rename into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


class Leaf(luigi.Task):
    """One number per day: the day of month times ten."""

    root = luigi.Parameter(description="Test output folder")
    day = luigi.DateParameter(description="The day")
    pause = luigi.FloatParameter(default=0.05, significant=False, description="Seconds of fake work")

    def output(self):
        return luigi.LocalTarget(str(Path(self.root) / "leaf" / f"{self.day}.txt"))

    def run(self):
        record_run(Path(self.root), self)
        time.sleep(self.pause)
        publish(Path(self.output().path), f"{self.day.day * 10}\n")


class Double(luigi.Task):
    """The day's Leaf doubled."""

    root = luigi.Parameter(description="Test output folder")
    day = luigi.DateParameter(description="The day")
    pause = luigi.FloatParameter(default=0.05, significant=False, description="Seconds of fake work")

    def requires(self):
        return Leaf(root=self.root, day=self.day, pause=self.pause)

    def output(self):
        return luigi.LocalTarget(str(Path(self.root) / "double" / f"{self.day}.txt"))

    def run(self):
        record_run(Path(self.root), self)
        value = int(Path(self.input().path).read_text())
        time.sleep(self.pause)
        publish(Path(self.output().path), f"{value * 2}\n")


class Total(luigi.Task):
    """The sum of every day's Double over a range: the whole-history product."""

    root = luigi.Parameter(description="Test output folder")
    start = luigi.DateParameter(description="First day")
    days = luigi.IntParameter(description="Number of days")
    pause = luigi.FloatParameter(default=0.05, significant=False, description="Seconds of fake work")

    def requires(self):
        from datetime import timedelta

        return [Double(root=self.root, day=self.start + timedelta(days=i), pause=self.pause)
                for i in range(self.days)]

    def output(self):
        return luigi.LocalTarget(str(Path(self.root) / "total.txt"))

    def run(self):
        record_run(Path(self.root), self)
        total = 0
        for i, target in enumerate(self.input(), 1):
            total += int(Path(target.path).read_text())
            self.set_progress_percentage(100 * i // self.days)  # what the visualiser's progress bar shows
        self.set_status_message(f"summed {self.days} days")
        publish(Path(self.output().path), f"{total}\n")


def expected_total(start, days: int) -> int:
    from datetime import timedelta

    return sum((start + timedelta(days=i)).day * 20 for i in range(days))


class Fails(luigi.Task):
    """Always raises, naming only a count and a date (what cvas error texts carry)."""

    root = luigi.Parameter(description="Test output folder")
    day = luigi.DateParameter(description="The day")

    def output(self):
        return luigi.LocalTarget(str(Path(self.root) / "never" / f"{self.day}.txt"))

    def run(self):
        raise RuntimeError(f"3 of 120 rows rejected on {self.day} (limit 1%)")
