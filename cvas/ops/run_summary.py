"""What a build did, told to a person: one line per failed task, where the log is, what to do next."""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from pathlib import Path

from cvas.core.layout import Layout
from cvas.core.logs import redact

_EXCEPTION_LINE = re.compile(r"^(?P<cls>[A-Za-z_][\w.]*)(?::\s?(?P<msg>.*))?$")
MAX_MESSAGE = 300

# A load that failed on its landing copy's data: the copy is marked when the command ends, so
# the next run fetches the source's extract again (and loads the fixed data after a fix at the
# source), not the copy that failed. Not within the command: its own retries read the same copy.
_LANDING_COPY_FAILURES = {("LoadTransactions", "ExtractFormatError"), ("LoadTransactions", "RejectRatioExceeded")}
# A failure on a copy the rerun reuses as it is: (task, error) -> the dataset of that copy, to
# name the exact `cvas invalidate` after which the rerun fetches it again. The NBS snapshot is
# not marked: the ssh source cannot fetch a past day's snapshot again, and a corrected copy is
# then the only fix.
_REUSED_COPY = {("AggregateUserBase", "SnapshotFormatError"): "user_base_snapshot"}


@dataclass(frozen=True)
class Failure:
    """One task that failed: its family, day and kind (when it has them), error class and message."""

    task: str
    day: str | None
    kind: str | None
    error: str
    message: str

    def line(self) -> str:
        where = " ".join(x for x in (self.day, self.kind) if x)
        return f"  {self.task:<18} {where:<15} {self.error}: {self.message}"


def parse_error(explanation: str) -> tuple[str, str]:
    """(error class, message) from a task's failure text (Luigi's traceback of the exception).

    The exception is what follows the last `File` frame of the traceback: its first line is
    `module.Class: message` (continued on the next unindented lines). Falls back to the last
    non-empty line when the text is not a traceback.
    """
    lines = [ln for ln in (explanation or "").splitlines() if ln.strip()]
    if not lines:
        return "UnknownError", "no explanation was recorded (see the log)"
    frames = [i for i, ln in enumerate(lines) if ln.startswith("  File ")]
    rest = lines[frames[-1] + 1:] if frames else lines[-1:]
    rest = [ln for ln in rest if not ln.startswith((" ", "\t"))] or lines[-1:]
    match = _EXCEPTION_LINE.match(rest[0])
    if not match:
        return "Error", _short(" ".join(rest))
    message = " ".join([match["msg"] or "", *rest[1:]]).strip()
    return match["cls"].rsplit(".", 1)[-1], _short(message or "(no message)")


def _short(text: str) -> str:
    text = redact(" ".join(text.split()))
    return text if len(text) <= MAX_MESSAGE else text[:MAX_MESSAGE - 1] + "…"


def mark_failed_landing_copies(layout: Layout, failures: list[Failure]) -> list[Path]:
    """Mark for rebuild the landing copy of each load in `failures` that failed on its data, so
    the next run fetches it again; returns the marked copies. The copy stays as it is until an
    extract that passes its checks replaces it (decision D17)."""
    from cvas.ops.status import mark_for_rebuild

    marked = []
    for f in failures:
        if (f.task, f.error) in _LANDING_COPY_FAILURES and f.day and f.kind:
            raw = layout.raw(f.kind, dt.date.fromisoformat(f.day))
            if raw.exists():
                mark_for_rebuild(layout, raw)
                marked.append(raw)
    return marked


def format_failures(command: str, failures: list[Failure], scheduling: list[str], log_path: Path | None,
                    retry: str) -> str:
    """The summary that ends a failed build: failed tasks, the log file, what to do next."""
    lines = [f"cvas {command} failed: {len(failures)} task(s) failed"
             + (f", {len(scheduling)} could not be scheduled" if scheduling else "")]
    lines += [f.line() for f in sorted(failures, key=lambda f: (f.day or "", f.task, f.kind or ""))]
    lines += [f"  {name:<18} could not be scheduled (its complete() or requires() raised)" for name in scheduling]
    if log_path is not None:
        lines.append(f"log (with tracebacks): {log_path}")
    lines.append("next: fix the cause named above, then run the same command again ("
                 f"{retry}); what was built is kept and only what failed is redone, and the landing copy of a "
                 "failed load is fetched again. `cvas status --failed --start D --end D` lists the failures per "
                 "day; `cvas -v` shows tracebacks.")
    for f in sorted(failures, key=lambda f: (f.day or "", f.task)):
        reused = _REUSED_COPY.get((f.task, f.error))
        if reused and f.day:
            lines.append(f"  {f.task} {f.day} reads the copy fetched before, not the source: after fixing the "
                         f"source, run `cvas invalidate --dataset {reused} --start {f.day} --end {f.day}` first "
                         "(or correct the copy itself)")
    return "\n".join(lines)
