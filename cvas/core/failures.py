"""Failed builds, remembered per output until a build of it succeeds: what `cvas status` shows as failed."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

from cvas.core.layout import Layout, failure_record
from cvas.core.logs import redact
from cvas.core.publish import write_text_atomic


def record_failure(layout: Layout, output: Path, task: str, exception: BaseException, day: dt.date | None = None,
                   kind: str | None = None, when: dt.datetime | None = None) -> None:
    """Remember that building `output` (of `task` for `day` and `kind`) failed, with the error's
    class and (redacted) message."""
    message = redact(" ".join(str(exception).split())) or "(no message)"
    record = {"task": task, "date": str(day) if day else None, "kind": kind, "error": type(exception).__name__,
              "message": message, "at": f"{when or dt.datetime.now():%Y-%m-%dT%H:%M:%S}"}
    write_text_atomic(layout.staging, failure_record(layout, output), json.dumps(record) + "\n")


def clear_failure(layout: Layout, output: Path) -> None:
    """Called once `output` has been built."""
    failure_record(layout, output).unlink(missing_ok=True)


def failures(layout: Layout) -> dict[Path, dict]:
    """Every output whose last build failed -> its record (one listing of `_failed/`, usually empty)."""
    root = layout.failed_root
    if not root.exists():
        return {}
    out = {}
    for path in root.rglob("*.json"):
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue  # a record being replaced: the next listing has it
        out[layout.root / str(path.relative_to(root))[:-len(".json")]] = record
    return out


def last_failures(layout: Layout, start: dt.date, end: dt.date) -> dict[dt.date, list[dict]]:
    """Per day of [start, end] with a failed output: its failure records, newest first."""
    out: dict[dt.date, list[dict]] = {}
    for path, record in failures(layout).items():
        try:
            day = dt.date.fromisoformat(record.get("date") or "")
        except ValueError:
            continue
        if start <= day <= end:
            out.setdefault(day, []).append(dict(record, output=str(path)))
    return {d: sorted(r, key=lambda x: x.get("at", ""), reverse=True) for d, r in sorted(out.items())}


def format_last_failures(by_day: dict[dt.date, list[dict]]) -> str:
    """`cvas status --failed`: one line per day, its last failure and why; then the other failed outputs."""
    if not by_day:
        return "no failed build in the range"
    lines = []
    for day, records in by_day.items():
        last = records[0]
        what = last["task"] + (f" {last['kind']}" if last.get("kind") else "")
        more = f"  (+{len(records) - 1} more failed output(s) that day)" if len(records) > 1 else ""
        lines.append(f"{day}  {what:<22} {last['at']}  {last['error']}: {last['message']}{more}")
    return "\n".join(lines)
