"""Many days in one run: every day is attempted, each publishes alone, a failed day fails alone."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Sequence
from typing import TypeVar

from cvas.core.publish import publish_queued

log = logging.getLogger(__name__)

T = TypeVar("T")


class DaysFailed(RuntimeError):
    """Raised by a many-day step when some of its days failed. Every other day was published
    (each day's outputs are written exactly as a one-day run writes them). `failures` maps
    each failed day to its error; the message names every failed day and its error text."""

    def __init__(self, what: str, failures: dict[dt.date, BaseException], total: int):
        self.failures = dict(sorted(failures.items()))
        days = ", ".join(str(d) for d in self.failures)
        reasons = "; ".join(f"{d}: {type(e).__name__}: {e}" for d, e in self.failures.items())
        super().__init__(f"{what}: {len(self.failures)} of {total} days failed ({days}); "
                         f"the other days were published. {reasons}")


def each_day(what: str, days: Sequence[dt.date], work: Callable[[dt.date], T]) -> dict[dt.date, T]:
    """`work(day)` for every day, in order; returns each day's result.

    One day behaves exactly as calling `work` (its own error is raised). With several, a
    failed day is logged and the others still run; `DaysFailed` then names the failed ones.
    Inside `cvas.core.publish.published_together`, each day's files are published when its
    `work` returns or fails.
    """
    days = sorted(days)
    if len(days) == 1:
        try:
            return {days[0]: work(days[0])}
        finally:
            publish_queued()
    results: dict[dt.date, T] = {}
    failures: dict[dt.date, BaseException] = {}
    for day in days:
        try:
            results[day] = work(day)
        except Exception as exc:  # noqa: BLE001 - a day's failure is its own, reported below
            log.error("%s %s failed: %s", what, day, exc)
            failures[day] = exc
        finally:
            publish_queued()
    if failures:
        raise DaysFailed(what, failures, len(days))
    return results


def contiguous_runs(days: Sequence[dt.date], longest: int = 31) -> list[list[dt.date]]:
    """`days` sorted and cut into runs of consecutive days, none longer than `longest`."""
    runs: list[list[dt.date]] = []
    for day in sorted(set(days)):
        if runs and day - runs[-1][-1] == dt.timedelta(days=1) and len(runs[-1]) < longest:
            runs[-1].append(day)
        else:
            runs.append([day])
    return runs
