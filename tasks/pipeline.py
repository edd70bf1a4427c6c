"""The day wrapper and the gap-filling backfill, in bounded batches."""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Callable

import luigi
from luigi.execution_summary import LuigiStatusCode

from cvas.core.catalogue import (dataset, downstream, enabled, grid_columns, label as dataset_label, leaves,
                                 output_path, product_days, products, split_label)
from cvas.core.layout import as_of_days
from cvas.core.freshness import Freshness
from cvas.core.locking import exclusive, oldest_running, registered_run, shared
from cvas.core.publish import clean_staging
from cvas.ops.status import grid, mark_for_rebuild, outputs_as_of, plan, plan_outputs
from tasks import datasets, outcome
from tasks.base import batched, refuse_days_not_over, task_locks
from tasks.config import cvas, layout
from tasks.progress import watch_days

log = logging.getLogger("cvas.backfill")


class DailyPipeline(luigi.WrapperTask):
    """Everything one day produces: its partitions, counters and the products that include it
    (the catalogue's products: exports, view, report). A day that is not over (today or later)
    is refused, as by `cvas daily` (DayNotOverError: nothing is scheduled)."""

    date = luigi.DateParameter(description="The day to build")

    def requires(self):
        refuse_days_not_over(self.date)
        return product_tasks(self.date)

    @classmethod
    def bulk_complete(cls, parameter_tuples):
        """Days whose per-day outputs are all present and fresh (one listing per dataset) and
        whose report is fresh."""
        wanted = datasets.unpack(cls, parameter_tuples)
        if not wanted:
            return []
        days = [d for _, d, _ in wanted]
        pending = {day for day, _, _ in planned_steps(min(days), max(days))}
        fresh = Freshness(layout(), datasets.settings())
        return [p for p, d, _ in wanted if d not in pending and fresh.state("report", d).fresh]


def product_tasks(day: dt.date) -> list[luigi.Task]:
    """The product tasks of `day` (exports, view, newest copy, user base, report), upstream first."""
    return [datasets.task_for(name, day) for name in products(datasets.switches())]


def refresh_tasks(day: dt.date) -> list[luigi.Task]:
    """The product tasks a run that builds `day` ends with, decided once before they run: those of
    `day` and of the newest day when later (catalogue.product_days: a late or re-delivered day
    makes the newest view and report stale), each once."""
    return list(dict.fromkeys(t for d in product_days(layout(), day) for t in product_tasks(d)))


def days_between(start: dt.date, end: dt.date) -> list[dt.date]:
    if end < start:
        raise ValueError(f"backfill range is empty: end {end} is before start {start}")
    return [start + dt.timedelta(days=i) for i in range((end - start).days + 1)]


def planned_steps(start: dt.date, end: dt.date, only_missing: bool = False):
    """The explained plan of a backfill over [start, end] (see cvas.ops.status.plan)."""
    cells = grid(layout(), start, end, datasets.settings(), grid_columns(datasets.switches()))
    return plan(cells, only_missing=only_missing)


def planned_outputs(end: dt.date, steps) -> list[tuple[dt.date, str, str]]:
    """The whole-history outputs and products a backfill ending on `end` refreshes at its end, and why."""
    cells = outputs_as_of(layout(), end, datasets.settings(), datasets.switches())
    return plan_outputs(end, cells, steps)


def missing_days(start: dt.date, end: dt.date, only_missing: bool = False) -> list[dt.date]:
    """Days of the range with anything to build, by the plan."""
    days_between(start, end)
    return sorted({day for day, _, _ in planned_steps(start, end, only_missing)})


def exit_code(status: LuigiStatusCode) -> int:
    """The process exit code of a build, by the [retcode] section of luigi.cfg."""
    from luigi.retcodes import retcode

    codes = retcode()
    if status in (LuigiStatusCode.SUCCESS, LuigiStatusCode.SUCCESS_WITH_RETRY):
        return 0
    code = {
        LuigiStatusCode.FAILED: codes.task_failed,
        LuigiStatusCode.FAILED_AND_SCHEDULING_FAILED: max(codes.task_failed, codes.scheduling_error),
        LuigiStatusCode.SCHEDULING_FAILED: codes.scheduling_error,
        LuigiStatusCode.NOT_RUN: codes.not_run,
        LuigiStatusCode.MISSING_EXT: codes.missing_data,
    }.get(status, codes.unhandled_exception)
    return code or 1  # a failure never exits 0, whatever luigi.cfg says


def build(tasks: list[luigi.Task], *, central: bool | None = None, workers: int | None = None,
          products: bool = False) -> int:
    """Run `tasks` with the configured scheduler; returns the exit code (see `_build`)."""
    return _build(tasks, central=central, workers=workers, products=products)[0]


def _build(tasks: list[luigi.Task], *, central: bool | None = None, workers: int | None = None,
           products: bool = False) -> tuple[int, list[luigi.Task]]:
    """Run `tasks`; returns the exit code and the tasks that failed.

    The build registers as running (staging leftovers older than the oldest running build are
    removed first). A build of per-day outputs shares the data root's products lock with the
    other runs' per-day builds; a build of products holds it alone: two runs on one data root
    then publish their products one after the other, each from per-day files that do not
    change under it, so the outcome is that of the two runs one after the other.
    """
    if not tasks:
        return 0, []
    central = cvas().scheduler == "central" if central is None else central
    lay = layout()
    with registered_run(lay.runs):
        _clean_staging(lay)
        with (exclusive if products else shared)(lay.lock("products")):
            result = luigi.build(tasks, detailed_summary=True, local_scheduler=not central,
                                 workers=workers or cvas().workers, log_level="WARNING")
    failed = outcome.current.record(result)
    if central and result.status == LuigiStatusCode.NOT_RUN:
        # another worker sharing luigid holds the tasks: wait for it, and succeed with it
        from tasks.ops.luigid import wait_for_other_workers

        if wait_for_other_workers(tasks):
            return 0, []
    return exit_code(result.status), failed


def build_batched(tasks: list[luigi.Task], **kwargs) -> tuple[int, list[luigi.Task]]:
    """Run `tasks`, the per-day families in Luigi batch runs (only here: every other build runs
    one task per day); returns the exit code and the failed one-day tasks.

    Luigi fails every day of a batch whose run raised, though the run published its good
    days (`cvas.core.batch.DaysFailed`). The same tasks are then built again unbatched: the
    published days are complete (luigi records them done) and each failed day reruns alone,
    so it fails with its own error and the scheduler records only the bad days as failed.
    """
    with batched():
        code, failed = _build(tasks, **kwargs)
    if not any(getattr(t, "is_batch", False) for t in failed):
        return code, failed
    log.warning("a batch run failed (%s); retrying its tasks one day at a time",
                ", ".join(t.task_id for t in failed if t.is_batch))
    return _build(tasks, **kwargs)


def _clean_staging(lay) -> None:
    """Remove the staging entries older than the oldest running build (this one included)."""
    oldest = oldest_running(lay.runs)
    removed = clean_staging(lay.staging, oldest)
    if removed:
        log.info("staging: removed %d leftover(s) of ended runs, older than the oldest running build "
                 "(started %s): %s", len(removed), dt.datetime.fromtimestamp(oldest).isoformat(timespec="seconds"),
                 ", ".join(removed))


def day_leaves(day: dt.date) -> list[luigi.Task]:
    """The per-day tasks of one day that nothing per-day is built from (their requirements follow)."""
    names = {leaf for source in ("raw", "user_base_snapshot") for leaf in leaves(source)}
    return [datasets.task_for(name, day) for name in sorted(names) if enabled(dataset(name), datasets.switches())]


def run_daily(day: dt.date, **kwargs) -> int:
    """The day's per-day outputs, then (alone on the data root) its products, and those of the
    newest day when it is later (a late day)."""
    code = build(day_leaves(day), **kwargs)
    return max(code, build([DailyPipeline(date=day), *refresh_tasks(day)], products=True, **kwargs))


def run_backfill(start: dt.date, end: dt.date, *, batch_days: int | None = None, only_missing: bool = False,
                 progress: Callable[[str], None] = print, **kwargs) -> int:
    """Build every missing (and, unless `only_missing`, stale) output of [start, end] in bounded
    batches, then the exports once. Stale outputs are first marked for rebuild, so each is
    replaced atomically by its rerun."""
    t0 = time.monotonic()
    days_between(start, end)
    steps = planned_steps(start, end, only_missing)
    lay = layout()
    per_day = day_tasks(lay, steps)
    todo = sorted(per_day)
    total = (end - start).days + 1
    finals = final_tasks(lay, start, end)
    if not todo:
        stale = [t for t in finals if not t.complete()]
        progress(f"backfill {start}..{end}: all {total} days are built; nothing to do "
                 f"(decided in {time.monotonic() - t0:.2f}s)"
                 + (f"; refreshing {', '.join(t.task_family for t in stale)}" if stale else ""))
        return build(stale, products=True, **kwargs) if stale else 0
    batch = batch_days or cvas().batch_days
    progress(f"backfill {start}..{end}: {len(todo)} of {total} days to build ({len(steps)} outputs), "
             f"in batches of {batch}")
    code = 0
    for i in range(0, len(todo), batch):
        chunk = todo[i:i + batch]
        with watch_days(lay, chunk, i, len(todo), t0, progress):  # a line per day built, not per batch
            chunk_code, failed = build_batched(sorted({t for d in chunk for t in per_day[d]},
                                                      key=lambda t: t.task_id), **kwargs)
        code = max(code, chunk_code)
        done = min(i + batch, len(todo))
        progress(f"  {done}/{len(todo)} days ({chunk[0]}..{chunk[-1]}) "
                 f"{'ok' if code == 0 else 'with failures'}, {time.monotonic() - t0:.1f}s")
        if failed:
            progress("  failed: " + ", ".join(_day_label(t) for t in failed))
    code = max(code, build(finals, products=True, **kwargs))
    progress(f"backfill done in {time.monotonic() - t0:.1f}s, exit code {code}")
    return code


def day_tasks(lay, steps: list[tuple[dt.date, str, str]]) -> dict[dt.date, set[luigi.Task]]:
    """The per-day tasks that build the plan's `steps`, by day: the tasks at the end of each
    output's branch (their requirements follow). Published outputs of the plan are first marked
    for rebuild, so each is replaced in one rename by its rerun."""
    per_day: dict[dt.date, dict[str, luigi.Task]] = {}
    for day, label, why in _mark_for_rebuild(lay, steps):
        tasks = per_day.setdefault(day, {})
        for leaf in leaves(split_label(label)[0]):
            if leaf not in tasks:
                tasks[leaf] = datasets.task_for(leaf, day)
    return {day: set(tasks.values()) for day, tasks in per_day.items()}


def final_tasks(lay, start: dt.date, end: dt.date) -> list[luigi.Task]:
    """What a backfill of [start, end] builds once, after its per-day outputs: the whole-history
    products (`refresh_tasks`: exports, view, user base, report), never per day; with them every
    kept as-of view of the range that is not fresh (marked or damaged: the repair `cvas verify` names)."""
    finals = refresh_tasks(end)
    finals += [t for t in (datasets.task_for("subscriptions", d) for d in sorted(as_of_days(lay))
                           if start <= d <= end) if t not in finals and not t.complete()]
    return finals


def _mark_for_rebuild(lay, steps: list[tuple[dt.date, str, str]]) -> list[tuple[dt.date, str, str]]:
    """Mark the published outputs of the plan's `steps` for rebuild (so each is replaced in one
    rename by its rerun); returns the steps still to build.

    The plan was read without locks: another run may have been between publishing an output and
    its sidecar, which looks stale. So an output is marked under its task's lock, and only when
    it is still not complete there, or an upstream of its day is rebuilt: an output another run
    has just built, and may be reading, is never taken from under it.
    """
    todo, rebuilt = [], set()
    for day, label, why in steps:
        name, kind = split_label(label)
        path = output_path(lay, name, kind, day)
        needed = True
        if path.exists() and not why.startswith("forced"):   # forced: marked already
            task = datasets.task_for(name, day, kind)
            with task_locks([task]):
                needed = (day, label) in rebuilt or not task.complete()
                if needed:
                    mark_for_rebuild(lay, path)
        if not needed:
            log.info("%s %s: built by another run since the plan; kept", label, day)
            continue
        todo.append((day, label, why))
        rebuilt.update((day, dataset_label(*d)) for d in downstream(name, kind))
    return todo


def _day_label(task: luigi.Task) -> str:
    """`Family(kind) day` of a failed one-day task, for the progress lines."""
    params = task.to_str_params(only_significant=True)
    day = params.pop("date", "")
    return f"{task.task_family}({', '.join(params.values())}) {day}".replace("() ", " ")


class Backfill(luigi.Task):
    """What `cvas backfill --start --end` builds, for running under `luigi` directly: every missing
    or stale per-day output of the range (stale ones marked for rebuild first), then, once they
    are all built, the products (`final_tasks`: exports, view, user base, report).
    Complete when the plan of the range is empty and every product is complete.

    The order is kept with dynamic dependencies: run() yields the per-day tasks, then the
    products (siblings in requires() would run in any order, and a product built before a day
    is stale at once). Each day's task runs on its own; `cvas backfill` runs them as Luigi
    batch runs in bounded chunks, and holds the data root's products lock while it builds the
    products: prefer it for long ranges and beside other runs on the same data root.
    """

    start = luigi.DateParameter(description="First day, inclusive")
    end = luigi.DateParameter(description="Last day, inclusive")

    def complete(self):
        refuse_days_not_over(self.start, self.end)   # luigi builds nothing of a task whose complete() raised
        return not missing_days(self.start, self.end) and all(t.complete() for t in final_tasks(layout(), self.start,
                                                                                             self.end))

    def run(self):
        # luigi runs run() again from the top once each yielded set is complete: the plan is then empty
        yield sorted({t for tasks in day_tasks(layout(), planned_steps(self.start, self.end)).values()
                      for t in tasks}, key=lambda t: t.task_id)
        yield final_tasks(layout(), self.start, self.end)
