"""What the luigi.build calls of this process did: tasks built, tasks failed with their error."""

from __future__ import annotations

import datetime as dt
import json
import logging
from dataclasses import dataclass, field

from cvas.ops.run_summary import Failure, parse_error
from tasks.base import days_of

log = logging.getLogger("cvas.outcome")


@dataclass
class Outcome:
    """Accumulated over every build of one cvas command (a backfill makes several)."""

    built: list[str] = field(default_factory=list)
    failures: list[Failure] = field(default_factory=list)
    scheduling: list[str] = field(default_factory=list)
    loaded: list[tuple[dt.date, str]] = field(default_factory=list)   # (day, kind) loaded by this command

    def record(self, result) -> list:
        """Add one luigi.build(detailed_summary=True) result; returns the tasks that failed in it, by
        task id (luigi has no public list of a build's failed tasks: its worker's history, which its
        own execution summary reads, is read here and nowhere else)."""
        worker = result.worker
        history = worker._add_task_history  # what luigi's own execution summary reads
        pending = {t for t, status, _ in history if status == "PENDING"}
        done = {t for t, status, _ in history if status == "DONE" and t in pending}
        failed = {t for t, status, _ in history if status == "FAILED"} - done
        self.built += sorted(t.task_id for t in done)
        self.loaded += sorted({(day, t.param_kwargs["kind"]) for t in done | failed  # a failed load may be flagged
                               if t.task_family == "LoadTransactions" for day in days_of(t.param_kwargs["date"])}
                              - set(self.loaded))
        self.scheduling += sorted({str(t) for t, status, _ in history if status == "UNKNOWN"} - set(self.scheduling))
        # a failed batch run is retried one day at a time (tasks.pipeline.build_batched): its days report
        # there, so neither the batch nor its days (luigi fails each with the batch's error) count here
        in_batch = {(t.task_family, t.param_kwargs.get("kind"), day) for t in failed if getattr(t, "is_batch", False)
                    for day in days_of(t.param_kwargs["date"])}
        # `cvas daily` builds the day's per-day outputs, then its products, which retry what failed: once each
        seen = {(f.task, f.day, f.kind) for f in self.failures}
        for task in sorted((t for t in failed if not getattr(t, "is_batch", False)), key=lambda t: t.task_id):
            params = task.param_kwargs
            if (task.task_family, params.get("kind"), params.get("date")) in in_batch:
                continue
            if (task.task_family, str(params["date"]) if params.get("date") else None, params.get("kind")) in seen:
                continue
            error, message = parse_error(_explanation(worker, task.task_id))
            day = params.get("date")
            self.failures.append(Failure(task.task_family, str(day) if day else None, params.get("kind"),
                                         error, message))
        return sorted(failed, key=lambda t: t.task_id)


def _explanation(worker, task_id: str) -> str:
    """The failure text the scheduler holds for a task (a JSON string from the worker)."""
    try:
        text = worker._scheduler.fetch_error(task_id).get("error") or ""
    except Exception as exc:  # luigid gone since the build: the log still has it
        log.warning("could not fetch the error of %s from the scheduler: %s", task_id, exc)
        return ""
    try:
        return json.loads(text) if text.startswith('"') else text
    except ValueError:
        return text


current = Outcome()


def reset() -> Outcome:
    """Start a new command's outcome (the CLI calls it once per command)."""
    global current
    current = Outcome()
    return current
