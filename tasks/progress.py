"""Backfill progress while Luigi runs a batch: a watcher thread that reports days as they are built."""

from __future__ import annotations

import contextlib
import datetime as dt
import threading
import time
from collections.abc import Callable, Iterator

from cvas.core.catalogue import days_of
from cvas.core.layout import Layout

INTERVAL_SECONDS = 2.0


@contextlib.contextmanager
def watch_days(layout: Layout, days: list[dt.date], before: int, total: int, t0: float,
               progress: Callable[[str], None], interval: float = INTERVAL_SECONDS) -> Iterator[None]:
    """While the block runs, print `  <n>/<total> days built (<last day>), <s>s` each time more of
    `days` have their counters published (one listing of daily_counters/ every `interval` s).

    A day counts once its counters exist; the caller's end-of-batch line says whether the batch
    failed. The watcher only reads: it never blocks or changes the build.
    """
    stop = threading.Event()
    pending = set(days)
    marked = {d for d in pending if layout.daily_counters(d).exists()}  # present but invalidated: rebuilt

    def poll() -> None:
        seen = 0
        while not stop.wait(interval):
            built = days_of(layout, "daily_counters")
            done = sorted(d for d in pending if d in built and (d not in marked or _rebuilt(layout, d, t0)))
            if len(done) > seen:
                seen = len(done)
                progress(f"  {before + seen}/{total} days built (latest {done[-1]}), {time.monotonic() - t0:.0f}s")

    thread = threading.Thread(target=poll, name="cvas-progress", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def _rebuilt(layout: Layout, day: dt.date, t0: float) -> bool:
    """Whether a day's counters were published after the backfill started (`t0` is monotonic)."""
    started = time.time() - (time.monotonic() - t0)
    try:
        return layout.daily_counters(day).stat().st_mtime >= started
    except FileNotFoundError:
        return False
