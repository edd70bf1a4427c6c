"""The central scheduler seen from a client: its URL, and waiting out its DONE cooldown after an invalidate."""

from __future__ import annotations

import json
import logging
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterable

import luigi.interface
import luigi.scheduler

log = logging.getLogger("cvas.luigid")


def scheduler_url() -> str:
    """luigid's base URL from [core] scheduler_url, or scheduler_host and scheduler_port."""
    core = luigi.interface.core()
    return core.scheduler_url or f"http://{core.scheduler_host}:{core.scheduler_port}/"


def done_since(task_ids: Iterable[str], url: str | None = None, timeout: float = 5.0) -> dict[str, float]:
    """When luigid last marked each of `task_ids` DONE (epoch seconds); tasks it does not hold DONE are absent.

    An unreachable luigid holds nothing, so the answer is then empty.
    """
    wanted = set(task_ids)
    if not wanted:
        return {}
    query = urllib.parse.urlencode({"data": json.dumps({"status": "DONE", "limit": False})})
    try:
        with urllib.request.urlopen(f"{(url or scheduler_url()).rstrip('/')}/api/task_list?{query}",
                                    timeout=timeout) as response:
            tasks = json.load(response)["response"]
    except (OSError, urllib.error.URLError):
        return {}
    return {tid: float(tasks[tid]["last_updated"]) for tid in wanted & tasks.keys()}


def wait_out_done_cooldown(task_ids: Iterable[str], *, url: str | None = None, cooldown: float | None = None,
                           sleep: Callable[[float], None] = time.sleep) -> float:
    """Sleep until luigid will accept a rerun of every task in `task_ids`; returns the seconds slept.

    luigid ignores a worker's "PENDING" for a task it marked DONE less than
    [scheduler] stable_done_cooldown_secs ago, so a task invalidated just after it ran would be
    skipped by the next build. Call this after invalidating, before building again.
    """
    cooldown = luigi.scheduler.scheduler().stable_done_cooldown_secs if cooldown is None else cooldown
    done = done_since(task_ids, url)
    if not done:
        return 0.0
    remaining = cooldown - (time.time() - max(done.values())) + 0.1  # a margin for rounding
    if remaining <= 0:
        return 0.0
    log.info("waiting %.1fs for luigid's DONE cooldown on %d task(s)", remaining, len(done))
    sleep(remaining)
    return remaining


def luigid_busy(url: str | None = None, timeout: float = 5.0) -> set[str]:
    """The tasks luigid reports RUNNING or PENDING now, any worker's; empty when it cannot be reached."""
    busy: set[str] = set()
    for status in ("RUNNING", "PENDING"):
        query = urllib.parse.urlencode({"data": json.dumps({"status": status, "limit": False})})
        try:
            with urllib.request.urlopen(f"{(url or scheduler_url()).rstrip('/')}/api/task_list?{query}",
                                        timeout=timeout) as response:
                busy |= set(json.load(response)["response"])
        except (OSError, urllib.error.URLError, ValueError):
            return set()
    return busy


def wait_for_other_workers(tasks, *, limit_s: float = 6 * 3600, poll_s: float = 1.0, idle_s: float = 15.0,
                           sleep: Callable[[float], None] = time.sleep) -> bool:
    """After a central build reported NOT_RUN (another worker held the tasks), wait until the
    tasks are complete, or until luigid has had nothing running or pending for `idle_s` (the
    other worker may be between two of its builds); returns whether all are complete."""
    deadline = time.monotonic() + limit_s
    idle_since = None
    while time.monotonic() < deadline:
        if all(t.complete() for t in tasks):
            return True
        if luigid_busy():
            idle_since = None
        elif idle_since is None:
            idle_since = time.monotonic()
        elif time.monotonic() - idle_since > idle_s:
            return all(t.complete() for t in tasks)
        sleep(poll_s)
    return False


def wait_before_rerun(sleep: Callable[[float], None] = time.sleep, tell: Callable[[str], None] = log.info) -> float:
    """Sleep luigid's whole DONE cooldown, saying so through `tell` first: any worker's
    completeness check refreshes a task's DONE time, so the per-task times of
    `wait_out_done_cooldown` can be overtaken."""
    cooldown = luigi.scheduler.scheduler().stable_done_cooldown_secs
    seconds = cooldown + 0.5
    tell(f"waiting {seconds:.1f}s for luigid's DONE cooldown ([scheduler] stable_done_cooldown_secs = {cooldown}): "
         "luigid ignores a rerun of a task that went DONE less than that ago")
    sleep(seconds)
    return seconds
