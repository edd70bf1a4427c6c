"""Run logs: one file per run, a timestamp on every physical line, 15-day rotation by whole file."""

from __future__ import annotations

import datetime as dt
import logging
import os
import re
import secrets
import sys
from pathlib import Path

KEEP_DAYS = 15
FILE_LEVEL = logging.INFO

_LINE_FORMAT = "%(asctime)s %(levelname)-8s %(name)s: %(message)s"
_CONTINUATION = "%(asctime)s %(levelname)-8s %(name)s| "
_DATE_FORMAT = "%Y-%m-%d %H:%M:%S"
_STAMP_FORMAT = "%Y%m%d-%H%M%S"
_RUN_FILE = re.compile(r"^(?P<stamp>\d{8}-\d{6})-(?P<name>.+)-(?P<pid>\d+)\.log$")
_UNSAFE_NAME = re.compile(r"[^A-Za-z0-9_.-]+")
_MARK = "_cvas_run_log"

REDACTED = "<redacted>"
FILE_ONLY = "file_only"   # a record with this attribute true goes to the run file, not the console
RUN_ID_ENV = "CVAS_RUN_ID"


LOG_DIGITS = 11      # msisdn and tmuserid shapes; a 10-digit subscription id stays readable
SERVER_DIGITS = 6    # text a server wrote may quote fragments of data


def redact(text: str, shortest: int = LOG_DIGITS) -> str:
    """`text` with every run of `shortest` or more digits replaced by <redacted>.

    A safety net, not the rule: callers never put PII in messages. Ids that long that are not
    PII (a long subscription id, an epoch in ms) are masked too; that is the price. Logs use
    `LOG_DIGITS`; messages a server wrote (psql's stderr, SSH errors), which may quote parts
    of a row, use the stricter `SERVER_DIGITS`.
    """
    return re.sub(rf"\d{{{shortest},}}", REDACTED, text)


def start_run() -> str:
    """Give this run a new id (time and 6 hex digits, never a long digit run), inherited by
    the worker processes it starts; returns it. The `cvas` command calls it once per command."""
    run = f"{dt.datetime.now():%Y%m%dT%H%M%S}-{secrets.token_hex(3)}"
    os.environ[RUN_ID_ENV] = run
    return run


def run_id() -> str:
    """This run's id, recorded in every sidecar and in the run log: the one `start_run` set
    (here or in the parent process), else a new one for this process."""
    return os.environ.get(RUN_ID_ENV) or start_run()


class RedactLongDigits(logging.Filter):
    """Masks 11+ digit runs in a record's message, exception text and stack before any handler formats it."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a bad %-format: leave it to the handler's own error report
            return True
        record.msg, record.args = redact(message), None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True


class EveryLineFormatter(logging.Formatter):
    """Prefixes every physical line of a record (multi-line messages, tracebacks) with its timestamp.

    The first line reads `2026-01-15 07:15:02 ERROR    name: message`; continuation lines
    `2026-01-15 07:15:02 ERROR    name| ...`, so a line-oriented tool (grep, a rotation that
    keeps timestamped lines) never separates a traceback from its record.
    """

    def __init__(self) -> None:
        super().__init__(_LINE_FORMAT, _DATE_FORMAT)
        self._continuation = logging.Formatter(_CONTINUATION, _DATE_FORMAT)

    def format(self, record: logging.LogRecord) -> str:
        first, *rest = super().format(record).split("\n")
        if not rest:
            return first
        prefix = self._continuation.format(_bare(record))
        return "\n".join([first, *(prefix + line for line in rest)])


class ShortConsoleFormatter(EveryLineFormatter):
    """The console's formatter without `-v`: the message only; tracebacks stay in the run file."""

    def format(self, record: logging.LogRecord) -> str:
        short = logging.makeLogRecord(record.__dict__)
        short.exc_info, short.exc_text, short.stack_info = None, None, None
        return super().format(short)


def _not_file_only(record: logging.LogRecord) -> bool:
    return not getattr(record, FILE_ONLY, False)


class HideLuigiConsole(logging.Filter):
    """Keeps Luigi's own records (a traceback per failed task, its execution summary) off the
    console without `-v`: they go to the run file, and cvas prints its own failure summary."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.name == "luigi" or record.name.startswith(("luigi.", "luigi-")))


def _bare(record: logging.LogRecord) -> logging.LogRecord:
    """A copy of `record` without message or exception, to format the continuation prefix."""
    bare = logging.makeLogRecord(record.__dict__)
    bare.msg, bare.args, bare.exc_info, bare.exc_text, bare.stack_info = "", None, None, None, None
    return bare


def run_log_name(run_name: str, started: dt.datetime, pid: int) -> str:
    """`<YYYYmmdd-HHMMSS>-<run_name>-<pid>.log`, the run name reduced to [A-Za-z0-9_.-]."""
    safe = _UNSAFE_NAME.sub("_", run_name).strip("_") or "run"
    return f"{started.strftime(_STAMP_FORMAT)}-{safe}-{pid}.log"


def rotate_logs(log_dir: Path, keep_days: int = KEEP_DAYS, now: dt.datetime | None = None) -> list[Path]:
    """Delete whole run-log files started more than `keep_days` ago; returns what was deleted.

    Only files named by `run_log_name` are candidates, and a file still written to within the
    window (its mtime) is kept. Files are removed whole, never edited: the legacy rotation
    rewrote each log keeping only timestamped lines and so dropped every traceback (legacy rule L-D16).
    """
    now = now or dt.datetime.now()
    cutoff = now - dt.timedelta(days=keep_days)
    deleted = []
    if not log_dir.is_dir():
        return deleted
    for path in sorted(log_dir.iterdir()):
        match = _RUN_FILE.match(path.name)
        if not match or not path.is_file():
            continue
        started = dt.datetime.strptime(match["stamp"], _STAMP_FORMAT)
        modified = dt.datetime.fromtimestamp(path.stat().st_mtime)
        if started < cutoff and modified < cutoff:
            path.unlink(missing_ok=True)
            deleted.append(path)
    return deleted


def setup_run_logging(log_dir: Path, run_name: str, verbose: bool) -> Path:
    """Send this process's logging to a new run file and the console; returns the file's path.

    The file gets INFO and above from every logger (luigi's included); the console (stderr)
    WARNING without Luigi's records or tracebacks, or with `verbose` INFO and everything. Both pass through `RedactLongDigits` and prefix every line
    with a timestamp. Python warnings and uncaught exceptions are logged too. Run files older
    than 15 days are deleted first. Calling it again replaces the handlers it installed.
    """
    log_dir = Path(log_dir)
    log_dir.mkdir(parents=True, exist_ok=True)
    deleted = rotate_logs(log_dir)
    path = (log_dir / run_log_name(run_name, dt.datetime.now(), os.getpid())).resolve()

    root = logging.getLogger()
    for handler in [h for h in root.handlers if getattr(h, _MARK, False)]:
        root.removeHandler(handler)
        handler.close()

    formatter = EveryLineFormatter()
    redactor = RedactLongDigits()
    file_handler = logging.FileHandler(path, mode="a", encoding="utf-8")
    file_handler.setLevel(FILE_LEVEL)
    console = logging.StreamHandler(sys.stderr)
    console.setLevel(logging.INFO if verbose else logging.WARNING)
    console.addFilter(_not_file_only)   # what the command also prints itself
    for handler in (file_handler, console):
        handler.setFormatter(formatter)
        handler.addFilter(redactor)
        setattr(handler, _MARK, True)
        root.addHandler(handler)
    if not verbose:
        console.setFormatter(ShortConsoleFormatter())
        console.addFilter(HideLuigiConsole())
    root.setLevel(min(FILE_LEVEL, console.level))
    logging.captureWarnings(True)
    sys.excepthook = _log_uncaught

    log = logging.getLogger("cvas.core.logs")
    log.info("run %s, id %s, pid %d, log %s", run_name, run_id(), os.getpid(), path)
    if deleted:
        log.info("deleted %d run log(s) older than %d days", len(deleted), KEEP_DAYS)
    return path


def _log_uncaught(exc_type, exc, tb) -> None:
    if issubclass(exc_type, KeyboardInterrupt):
        sys.__excepthook__(exc_type, exc, tb)
        return
    logging.getLogger("cvas").critical("uncaught exception", exc_info=(exc_type, exc, tb))
