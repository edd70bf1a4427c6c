"""Catalogue datasets and the task classes that write them: requires(), complete() and
bulk_complete() derive from `cvas.core.catalogue` and `cvas.core.freshness`."""

from __future__ import annotations

import datetime as dt
import importlib
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import luigi

from cvas.core.catalogue import DAY_KIND, DATASETS, Settings, dataset, enabled
from cvas.core.freshness import Cell, Freshness
from cvas.core.schemas import KINDS
from tasks.config import cvas, excluded_services, exclusions_path, layout, master_xlsx_path

# The task class writing each dataset, as "module:Class" (imported when first needed).
TASKS: dict[str, str] = {
    "raw": "tasks.steps.transactions:FetchTransactions",
    "transactions": "tasks.steps.transactions:LoadTransactions",
    "daily_counters": "tasks.steps.counters:DailyCounters",
    "master_cpc": "tasks.steps.counters:MasterCpc",
    "counters_export": "tasks.steps.counters:ExportCounters",
    "subscriptions": "tasks.steps.subscriptions:SubscriptionView",
    "subscriptions_latest": "tasks.steps.subscriptions:LatestSubscriptions",
    "user_base_snapshot": "tasks.steps.user_base:FetchUserBase",
    "user_base_daily": "tasks.steps.user_base:AggregateUserBase",
    "user_base_export": "tasks.steps.user_base:ExportUserBase",
    "report": "tasks.analyst.report:DailyReport",
}
assert TASKS.keys() == DATASETS.keys(), "every catalogue dataset has one task class"


def task_class(name: str) -> type[luigi.Task]:
    module, _, cls = TASKS[dataset(name).name].partition(":")
    return getattr(importlib.import_module(module), cls)


def switches() -> dict[str, bool]:
    """The [cvas] switches that turn datasets on (see `Dataset.switch`)."""
    return {"user_base": cvas().user_base}


def settings() -> Settings:
    """The configured files and values freshness compares."""
    return Settings(exclusions=exclusions_path(), master_xlsx=master_xlsx_path(),
                    excluded_services=excluded_services())


def task_for(name: str, day: dt.date | None = None, kind: str | None = None) -> luigi.Task:
    """The task building one output of `name` (a whole-history task carries `day` when it has one)."""
    cls = task_class(name)
    params: dict[str, Any] = {}
    if "date" in cls.get_param_names():
        params["date"] = day
    if dataset(name).key == DAY_KIND:
        params["kind"] = kind
    return cls(**params)


def requires(task: luigi.Task) -> dict[str, Any]:
    """The upstream tasks of `task`, by upstream dataset name (by kind for a per-kind fan-out)."""
    day, kind = getattr(task, "date", None), getattr(task, "kind", None)
    needs: dict[str, Any] = {}
    on = switches()
    for up in dataset(task.dataset).upstream:
        if not enabled(dataset(up.name), on):
            continue
        if dataset(up.name).key == DAY_KIND and kind is None:
            needs[up.name] = {k: task_for(up.name, day, k) for k in (up.kinds or KINDS)}
        else:
            needs[up.name] = task_for(up.name, day, kind)
    return needs


def state(task: luigi.Task) -> Cell:
    """The freshness of the output `task` writes."""
    return Freshness(layout(), settings()).state(task.dataset, getattr(task, "date", None), getattr(task, "kind", None))


def inputs(task: luigi.Task) -> dict[str, Path]:
    """The files the output of `task` is built from, as its sidecar records them."""
    return dataset(task.dataset).inputs(layout(), getattr(task, "date", None), getattr(task, "kind", None), settings())


def unpack(cls, parameter_tuples: Iterable[Any]) -> list[tuple[Any, dt.date, str | None]]:
    """(parameters as given, date, kind) of what Luigi hands `bulk_complete`: plain dates from
    a range, dicts, and fixed parameters of a range's `of_params` (a functools.partial class)."""
    fixed = dict(getattr(cls, "keywords", {}) or {})
    found = []
    for params in parameter_tuples:
        values = dict(fixed, **params) if isinstance(params, dict) else dict(fixed, date=params)
        found.append((params, values["date"], values.get("kind")))
    return found


def bulk_complete(cls, parameter_tuples: Iterable[Any]) -> list[Any]:
    """`bulk_complete` of a per-day (or per-day x kind) task family: one scan per directory."""
    name = getattr(cls, "func", cls).dataset
    wanted = unpack(cls, parameter_tuples)
    fresh = Freshness(layout(), settings())
    fresh.prefetch(name, sorted({d for _, d, _ in wanted}), sorted({k for _, _, k in wanted}, key=str))
    return [p for p, d, k in wanted if fresh.state(name, d, k).fresh]


__all__ = ["TASKS", "bulk_complete", "inputs", "requires", "settings", "state", "switches", "task_class", "task_for",
           "unpack"]
