"""The base of cvas tasks: requires() and complete() from the catalogue; success clears the mark.

Per-day tasks take a `DayParameter`: a plain date, or in a Luigi batch run (a backfill) the
`DayBatch` of every day the scheduler handed the worker at once.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import logging
import secrets
import time
from collections.abc import Iterator
from pathlib import Path

import luigi
from luigi.task import flatten

from cvas.core.batch import DaysFailed
from cvas.core.catalogue import dataset as catalogue_entry, writer_lock
from cvas.core.freshness import clear_invalidation
from cvas.core.failures import clear_failure, record_failure
from cvas.core.locking import exclusive, shared
from cvas.core.layout import Layout
from cvas.core.logs import redact
from cvas.core.timing import take as take_phases
from cvas.ops.preflight import check_not_future
from tasks import datasets
from tasks.config import layout

log = logging.getLogger("cvas.tasks")

_RACED = "Unfulfilled dependenc"   # luigi: "Unfulfilled dependency/dependencies at run time: <ids>"
_TASK_LOCKS = 64                   # lock files per task family and kind (day buckets): .locks stays small


class DayBatch(tuple):
    """The days of one batch run, sorted: what Luigi's scheduler gives a batched per-day task
    when several of its days (same other parameters) are pending at once."""


# A batch's string form ends with a tag of the process that runs it: `2026-03-01,…,2026-03-31@1f2e3d4c`.
# luigid never forgets which worker last ran a task (luigi 3.8.1 keeps `worker_running` once
# the task is done or failed), and a batch is a task luigid makes of its days. The same days
# batched again by a later process (the rerun of a failed backfill) would be the same task:
# luigid then takes that worker's batch for another worker's, hands it back as new work
# again and again (`Got already running task id … taking a break`), and once the old worker
# times out (`worker_disconnect_delay`, a minute) fails it with no message. With the tag,
# each process's batches are tasks of their own; a day's own task id is unchanged.
_BATCH_TAG = secrets.token_hex(4)


def _combine(days) -> dt.date | DayBatch:
    """The `batch_method` of DayParameter: the scheduler's pending days as one value."""
    days = sorted(set(days))
    return days[0] if len(days) == 1 else DayBatch(days)


class DayParameter(luigi.DateParameter):
    """A day (`YYYY-MM-DD`). Batchable: in a batch run the value is a `DayBatch`, serialised as
    the comma-separated days, so the single-day task and its id stay exactly as before."""

    def __init__(self, **kwargs):
        super().__init__(batch_method=_combine, **kwargs)

    def parse(self, s):
        days = s.partition("@")[0]   # a batch's tag (_BATCH_TAG) names its process, not a day
        return _combine(super(DayParameter, self).parse(x) for x in days.split(",")) if "," in days \
            else super().parse(days)

    def serialize(self, x):
        if isinstance(x, DayBatch):
            return ",".join(super(DayParameter, self).serialize(d) for d in x) + f"@{_BATCH_TAG}"
        return super().serialize(x)

    def next_in_enumeration(self, value):
        # luigi's run summary ranges consecutive days; a batch is not one of them
        return None if isinstance(value, DayBatch) else super().next_in_enumeration(value)

    def normalize(self, x):
        if isinstance(x, (DayBatch, list, tuple)):
            return _combine(super(DayParameter, self).normalize(d) for d in x)
        return super().normalize(x)


def days_of(value) -> list[dt.date]:
    """The days a DayParameter value stands for."""
    return list(value) if isinstance(value, DayBatch) else [value]


def refuse_days_not_over(*days: dt.date) -> None:
    """The day-is-over rule of `cvas daily` (`check_not_future`), in the tasks themselves: a task
    for today or a later day raises DayNotOverError from `requires()` and `complete()`, so the
    luigi CLI schedules nothing of it (it reports the task as failed scheduling) and builds nothing."""
    check_not_future(min(days), max(days), dt.date.today())


def task_lock_files(lay: Layout, tasks: list[luigi.Task]) -> list[Path]:
    """The lock files of one-day `tasks`, in the order they are taken: one folder per family and
    kind, a day's bucket by its date (a batch's days never share one; an undated task by its id).
    Two batches of different families or kinds, which run side by side, never share a lock."""
    def one(task: luigi.Task) -> str:
        day, kind = task.param_kwargs.get("date"), task.param_kwargs.get("kind")
        bucket = (day.toordinal() if isinstance(day, dt.date)
                  else int(hashlib.sha1(task.task_id.encode()).hexdigest(), 16))
        return f"tasks/{task.task_family}{'-' + kind if kind else ''}/{bucket % _TASK_LOCKS:02d}"

    return [lay.lock(name) for name in sorted({one(t) for t in tasks})]


@contextlib.contextmanager
def task_locks(tasks: list[luigi.Task]) -> Iterator[None]:
    """Hold the locks of one-day `tasks`: what a task's run holds from its completeness check to
    its sidecar (`CvasTask.once`). Taken in one order, so two holders never wait on each other."""
    with contextlib.ExitStack() as locks:
        for path in task_lock_files(layout(), tasks):
            locks.enter_context(exclusive(path))
        yield


_batching = [False]
_PARAMS: dict[type, tuple] = {}


@contextlib.contextmanager
def batched() -> Iterator[None]:
    """Tasks scheduled inside may run as Luigi batch runs (what a backfill does). Outside, every
    task runs alone, one day each: a daily run, a plain `luigi.build`, the retry of a failed
    batch (each failed day then fails with its own error, recorded against that day only)."""
    _batching[0] = True
    try:
        yield
    finally:
        _batching[0] = False


class CvasTask(luigi.Task):
    """A task writing one output of the catalogue dataset named by `dataset`.

    Requires the tasks of its upstream datasets; complete when `cvas.core.freshness` says its
    output is present (not missing, failed, invalidated or stale) and, for a product (exports,
    view, report), every upstream task is complete too. `cvas invalidate` marks outputs for
    rebuild without deleting them, so readers keep the old file until the rerun replaces it
    in one rename.

    A batch run (a `DayBatch` date) stands for its per-day tasks: its outputs are theirs and
    it is complete when they all are. When some of its days fail (`DaysFailed`), Luigi marks
    every day of the batch failed; the days that were published are complete, so a retry
    outside `batched` records them done and reruns only the failed ones. Every `run()` holds the
    task's lock and first re-checks `complete()`, so concurrent runs on one data root build it once.
    """

    dataset: str = ""  # the catalogue name of what the task writes (a class attribute, not a parameter)

    @contextlib.contextmanager
    def once(self) -> Iterator[bool]:
        """Hold the locks of the task's days for its run; yields True when every day is complete
        by then (another run on the same data root built them meanwhile: the local scheduler
        does not know of other processes), and the run then returns at once. A batch takes the
        lock of each of its days (`task_locks`, in one order, so two runs never deadlock) and
        builds only the days still incomplete under them (`pending`). An output is thus built
        once, and never replaced under a reader that has just found it complete."""
        with task_locks(self.day_tasks()):
            self._pending = [t for t in self.day_tasks() if not t.complete()]
            built = not self._pending
            if built:
                log.info("%s: built by another run meanwhile; nothing to do", self.task_id)
                if callable(self.set_status_message):   # set by luigi's worker
                    self.set_status_message("built by another run meanwhile")
            elif self.is_batch and len(self._pending) < len(self.date):
                log.info("%s: %d of its days built by another run meanwhile; building the other %d",
                         self.task_id, len(self.date) - len(self._pending), len(self._pending))
            yield built

    def pending(self) -> list[dt.date]:
        """The days this run builds (within `once`): those still incomplete when its locks were taken."""
        return [t.date for t in self._pending]

    @property
    def batchable(self):
        return super().batchable and _batching[0]

    @classmethod
    def get_params(cls):
        # luigi lists a class's parameters with dir() on every instantiation and id; they are
        # class attributes, fixed once the class exists (a backfill makes thousands of tasks)
        got = _PARAMS.get(cls)
        if got is None:
            got = _PARAMS[cls] = tuple(super().get_params())
        return list(got)

    @property
    def is_batch(self) -> bool:
        return isinstance(getattr(self, "date", None), DayBatch)

    def day_tasks(self) -> list[CvasTask]:
        """The one-day tasks this run stands for (itself when it is not a batch)."""
        return [self.clone(date=d) for d in self.date] if self.is_batch else [self]

    def per_day(self, fn):
        """`fn(date)` for a one-day task; the list of `fn(day)` for a batch."""
        return [fn(d) for d in self.date] if self.is_batch else fn(self.date)

    def requires(self):
        self._refuse_days_not_over()
        return datasets.requires(self)

    _pending: list[CvasTask] = []

    def _refuse_days_not_over(self) -> None:
        day = getattr(self, "date", None)
        if day is not None:
            refuse_days_not_over(*days_of(day))

    def complete(self):
        self._refuse_days_not_over()
        if self.is_batch:
            return all(t.complete() for t in self.day_tasks())
        entry = catalogue_entry(self.dataset)
        # decided under the writer's lock, shared: never between its output and its sidecar
        with shared(writer_lock(layout(), self.dataset)) if entry.lock else contextlib.nullcontext():
            if not datasets.state(self).fresh:
                return False
        return not entry.product or all(t.complete() for t in flatten(self.requires()))

    def _clear_marks(self):
        lay = layout()
        for target in flatten(self.output()):
            clear_invalidation(lay, Path(target.path))
            clear_failure(lay, Path(target.path))

    def on_success(self):
        self._clear_marks()
        return super().on_success()

    def progress(self, percent: int, message: str) -> None:
        """Report progress (0..100) and a status message to the scheduler: luigid's visualiser
        shows both while the task runs and after it is done."""
        self.set_progress_percentage(percent)
        self.set_status_message(message)

    def on_failure(self, exception):
        if isinstance(exception, DaysFailed):
            # the days that were published are rebuilt: their marks go, the failed days' stay
            for task in self.day_tasks():
                if task.date not in exception.failures:
                    task._clear_marks()
        self._record_failures(exception)
        # the return value becomes the failure e-mail body and the visualiser's error text
        if isinstance(exception, RuntimeError) and str(exception).startswith(_RACED):
            needed = str(exception).split("at run time: ", 1)[-1]
            for dep in flatten(self.requires()):      # luigi names them by hashed id
                needed = needed.replace(dep.task_id, str(dep))
            message = (f"{self} did not run: its input(s) {needed} were complete when this run planned "
                       "its work and are not any more. Another run on the same data root is rebuilding them "
                       "(or `cvas invalidate`/`cvas verify` marked them meanwhile). Nothing was published by "
                       "this task; run the command again once the other run has finished.")
            log.error("%s", message)
            return redact(message)
        return redact(super().on_failure(exception))

    def _record_failures(self, exception: BaseException) -> None:
        """Remember each failed day's error for `cvas status` (a failed fetch leaves no file to show it)."""
        if isinstance(exception, DaysFailed):
            failed = [(t, exception.failures[t.date]) for t in self.day_tasks() if t.date in exception.failures]
        else:
            failed = [(t, exception) for t in self.day_tasks()]
        lay = layout()
        for task, error in failed:
            for target in flatten(task.output())[:1]:
                try:
                    record_failure(lay, Path(target.path), task.task_family, error, task.param_kwargs.get("date"),
                                   task.param_kwargs.get("kind"))
                except OSError as exc:  # the build's own error matters more than its record
                    log.warning("could not record the failure of %s: %s", task, exc)


@CvasTask.event_handler(luigi.Event.START)
def _start_phases(task: CvasTask) -> None:  # noqa: ARG001
    """A task run counts its own phases: not what its process counted before (scheduling, or a
    forked worker's copy of its parent's counts)."""
    take_phases()


@CvasTask.event_handler(luigi.Event.PROCESSING_TIME)
def _log_run_time(task: CvasTask, seconds: float) -> None:
    """One line per task run in the run's log, with its duration: where a slow run spent its time
    (fired in the process that ran the task, a forked worker's included); then a `profile` line:
    when it started, and the seconds of its phases (`cvas.core.timing`) that the run counted."""
    if task.is_batch:
        kind = task.param_kwargs.get("kind")
        what = f"{task.task_family}({kind or ''}) {task.date[0]}..{task.date[-1]} ({len(task.date)} days)"
    else:
        what = str(task)
    log.info("%s ran in %.2fs", what.replace("() ", " "), seconds)
    profile = {"family": task.task_family, "days": len(task.date) if task.is_batch else 1,
               "start": round(time.time() - seconds, 3), "seconds": round(seconds, 3),
               "phases": {name: round(s, 3) for name, s in sorted(take_phases().items())}}
    log.info("profile %s", json.dumps(profile))
