"""The day wrapper and the gap-filling backfill, in bounded batches."""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Callable

import luigi
from luigi.execution_summary import LuigiStatusCode

from cvas.analyst.report import report_is_current
from cvas.ops.status import DATASETS, grid, mark_for_rebuild, output_path, plan
from tasks.config import cvas, excluded_services, exclusions_path, layout
from tasks.steps.counters import DailyCounters, ExportCounters
from tasks.analyst.report import DailyReport
from tasks.steps.subscriptions import SubscriptionView
from tasks.steps.user_base import AggregateUserBase, ExportUserBase

log = logging.getLogger("cvas.backfill")


class DailyPipeline(luigi.WrapperTask):
    """Everything one day produces: its partitions, counters and the exports that include it."""

    date = luigi.DateParameter(description="The day to build")

    def requires(self):
        needs = [ExportCounters(date=self.date), SubscriptionView(date=self.date), DailyReport(date=self.date)]
        return needs + ([ExportUserBase(date=self.date)] if cvas().user_base else [])

    @classmethod
    def bulk_complete(cls, parameter_tuples):
        """Days whose per-day outputs are all present and fresh (one listing per dataset)."""
        tuples = list(parameter_tuples)
        days = [p["date"] if isinstance(p, dict) else p for p in tuples]
        if not days:
            return []
        pending = {day for day, _, _ in planned_steps(min(days), max(days))}
        lay, services = layout(), excluded_services()
        return [p for p, d in zip(tuples, days) if d not in pending and report_is_current(lay, d, services)]


def days_between(start: dt.date, end: dt.date) -> list[dt.date]:
    if end < start:
        raise ValueError(f"backfill range is empty: end {end} is before start {start}")
    return [start + dt.timedelta(days=i) for i in range((end - start).days + 1)]


def planned_steps(start: dt.date, end: dt.date, only_missing: bool = False):
    """The explained plan of a backfill over [start, end] (see cvas.ops.status.plan)."""
    datasets = [d for d in DATASETS if cvas().user_base or not d[0].startswith("user_base")]
    cells = grid(layout(), start, end, exclusions_path(), datasets)
    return plan(cells, only_missing=only_missing)


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


def build(tasks: list[luigi.Task], *, central: bool | None = None, workers: int | None = None) -> int:
    """Run `tasks` with the configured scheduler; returns the exit code."""
    if not tasks:
        return 0
    central = cvas().scheduler == "central" if central is None else central
    result = luigi.build(tasks, detailed_summary=True, local_scheduler=not central,
                         workers=workers or cvas().workers, log_level="WARNING")
    log.info("%s", result.summary_text)
    if central and result.status == LuigiStatusCode.NOT_RUN:
        # another worker sharing luigid holds the tasks: wait for it, and succeed with it
        from tasks.ops.luigid import wait_for_other_workers

        if wait_for_other_workers(tasks):
            return 0
    return exit_code(result.status)


def run_daily(day: dt.date, **kwargs) -> int:
    return build([DailyPipeline(date=day)], **kwargs)


def run_backfill(start: dt.date, end: dt.date, *, batch_days: int | None = None, only_missing: bool = False,
                 progress: Callable[[str], None] = print, **kwargs) -> int:
    """Build every missing (and, unless `only_missing`, stale) output of [start, end] in bounded
    batches, then the exports once. Stale outputs are first marked for rebuild, so each is
    replaced atomically by its rerun."""
    t0 = time.monotonic()
    days_between(start, end)
    steps = planned_steps(start, end, only_missing)
    lay = layout()
    for day, label, why in steps:
        name, _, kind = label.partition(":")
        path = output_path(lay, name, kind or None, day)
        if path.exists() and not why.startswith("forced"):
            mark_for_rebuild(lay, path)
    per_day: dict[dt.date, set[luigi.Task]] = {}
    for day, label, _ in steps:
        task = AggregateUserBase(date=day) if label.startswith("user_base") else DailyCounters(date=day)
        per_day.setdefault(day, set()).add(task)
    todo = sorted(per_day)
    total = (end - start).days + 1
    # whole-history products: built once at the end, never per day
    finals = [ExportCounters(date=end), SubscriptionView(date=end), DailyReport(date=end)]
    finals += [ExportUserBase(date=end)] if cvas().user_base else []
    if not todo:
        stale = [t for t in finals if not t.complete()]
        progress(f"backfill {start}..{end}: all {total} days are built; nothing to do "
                 f"(decided in {time.monotonic() - t0:.2f}s)"
                 + (f"; refreshing {', '.join(t.task_family for t in stale)}" if stale else ""))
        return build(stale, **kwargs) if stale else 0
    batch = batch_days or cvas().batch_days
    progress(f"backfill {start}..{end}: {len(todo)} of {total} days to build ({len(steps)} outputs), "
             f"in batches of {batch}")
    code = 0
    for i in range(0, len(todo), batch):
        chunk = todo[i:i + batch]
        code = max(code, build(sorted({t for d in chunk for t in per_day[d]}, key=lambda t: t.task_id), **kwargs))
        done = min(i + batch, len(todo))
        progress(f"  {done}/{len(todo)} days ({chunk[0]}..{chunk[-1]}) "
                 f"{'ok' if code == 0 else 'with failures'}, {time.monotonic() - t0:.1f}s")
    code = max(code, build(finals, **kwargs))
    progress(f"backfill done in {time.monotonic() - t0:.1f}s, exit code {code}")
    return code


class Backfill(luigi.WrapperTask):
    """Every missing or stale day's counters in a range, for running under `luigi` directly.

    The exports are not part of it (siblings are unordered): follow with ExportCounters.
    For long ranges prefer `cvas backfill`, which builds in bounded batches (Luigi's
    scheduler cost grows quadratically with tasks per invocation).
    """

    start = luigi.DateParameter(description="First day, inclusive")
    end = luigi.DateParameter(description="Last day, inclusive")

    def requires(self):
        return [DailyCounters(date=d) for d in missing_days(self.start, self.end)]
