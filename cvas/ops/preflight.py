"""Checks made before Luigi starts: each failure is one line and a documented exit code."""

from __future__ import annotations

import datetime as dt
import os
import socket
from pathlib import Path

# Exit codes of failed preflight checks (README "Exit codes"); 35 is [retcode] scheduling_error.
BAD_CONFIG = 3
NOT_WRITABLE = 4
MISSING_REFERENCE = 5
DAY_UNAVAILABLE = 6
REVERSED_RANGE = 7
FEED_FLAGGED = 8  # not a preflight check: a loaded day flagged with [cvas] feed_check = fail
NO_SCHEDULER = 35


class PreflightError(Exception):
    """A check before the build failed; `code` is the process exit code, the message one line."""

    def __init__(self, message: str, code: int):
        super().__init__(message)
        self.code = code


class DayNotOverError(PreflightError):
    """Raised when a day that is not over (today or later) is to be built: by the preflight of
    `cvas daily`/`backfill`, and by every task keyed by a day (the luigi CLI has no preflight)."""


def check_range(start: dt.date, end: dt.date) -> None:
    if start > end:
        raise PreflightError(f"--start {start} is after --end {end}: give the earlier day first", REVERSED_RANGE)


def check_not_future(start: dt.date, end: dt.date, today: dt.date) -> None:
    """Nova's extract of a day is complete only once the day is over: yesterday is the newest
    (DayNotOverError otherwise)."""
    yesterday = today - dt.timedelta(days=1)
    if end > yesterday:
        raise DayNotOverError(f"{_days(start, end)} reaches past yesterday ({yesterday}): a day can be built once it "
                              "is over", DAY_UNAVAILABLE)


def check_source_range(start: dt.date, end: dt.date, available: tuple[dt.date, dt.date] | None,
                       source: str) -> None:
    """`available` is the (first, last) day the source holds, or None when it cannot tell cheaply."""
    if available is None:
        return
    first, last = available
    if start < first or end > last:
        raise PreflightError(f"the {source} source holds {first}..{last}; {_days(start, end)} is outside it",
                             DAY_UNAVAILABLE)


def _days(start: dt.date, end: dt.date) -> str:
    return f"{start}..{end}" if start != end else f"{start}"


def check_writable(folder: Path, what: str) -> None:
    """`folder` (or its nearest existing parent, where it will be made) accepts new files."""
    probe = Path(folder)
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if not probe.is_dir() or not os.access(probe, os.W_OK | os.X_OK):
        raise PreflightError(f"{what} {folder} is not writable (checked {probe})", NOT_WRITABLE)


def check_file(path: Path, what: str, key: str, config: Path, simulated: bool) -> None:
    """`path`, named by `key` of the configuration file `config`, exists; the simulated source
    can make it (`cvas simulate`), other sources cannot."""
    if not Path(path).is_file():
        make = ", or run `cvas simulate --start YYYY-MM-DD` to make a simulated one" if simulated else ""
        raise PreflightError(f"{what} {path} does not exist (set {key} in {config}{make})", MISSING_REFERENCE)


def check_scheduler(host: str, port: int, timeout: float = 2.0) -> None:
    """luigid answers on host:port (one TCP connect, instead of Luigi's minute of retries)."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return
    except OSError as exc:
        raise PreflightError(f"no luigid at {host}:{port} ([cvas] scheduler = central): {exc.strerror or exc}; "
                             "start it with `make luigid`, or set [cvas] scheduler = local", NO_SCHEDULER) from None
