"""Every dataset cvas publishes, declared once: name, key, paths, upstream and freshness inputs.

The tasks' `requires()`, the status grid, the plan, the downstream set of `cvas invalidate`,
the backfill and the CLI's `--dataset` choices all derive from `DATASETS`. Adding a dataset
is one entry here and one task class (mapped in `tasks/datasets.py`). Whether an output is
fresh is decided from these entries by `cvas.core.freshness` alone.
"""

from __future__ import annotations

import datetime as dt
import functools
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cvas.core import provenance
from cvas.core.layout import (PART_FILE, Layout, as_of_days, day_of_name, days_in_dir, newest_transaction_day,
                              stat_listing, transaction_days, transaction_digest)
from cvas.core.schemas import KINDS, VIEW_KINDS

# keys: what one output of a dataset is identified by
DAY, DAY_KIND, NONE = "day", "day x kind", "none"


@dataclass(frozen=True)
class Settings:
    """The configured files and values outputs depend on besides the data root (from luigi.cfg)."""

    exclusions: Path | None = None
    master_xlsx: Path | None = None
    excluded_services: tuple[str, ...] = ()


@dataclass(frozen=True)
class Upstream:
    """A dataset another one is built from; `kinds` narrows a per-kind upstream (default: all)."""

    name: str
    kinds: tuple[str, ...] | None = None


Paths = Callable[[Layout, "dt.date | None", "str | None"], tuple[Path, ...]]
Inputs = Callable[[Layout, "dt.date | None", "str | None", Settings], dict[str, Path]]


@dataclass(frozen=True)
class Dataset:
    """One dataset.

    name      the one name of the dataset: catalogue, status label, `--dataset`, task mapping
    key       DAY, DAY_KIND or NONE (one whole-history output; its task may carry a day the
              output must include)
    outputs   the published files of one key, from the layout; the sidecar is the first one's
    upstream  the datasets it is built from
    inputs    the files its sidecar records and freshness compares (name -> path)
    external  names of inputs outside the data root (configured files): always compared,
              whatever their mtime
    expect    sidecar values that must equal the current ones: {dotted key: f(layout, day, settings)}
    listing   (sidecar key, per-day dataset): the per-day files the output was built from,
              recorded as {day: [size, mtime_ns]}; it must hold the day and match the current
              files up to the day (days after it, built later in the same run, do not count)
    parted    its outputs are folders of parts whose sidecars record each part's size and mtime:
              a part that differs is damage, found by a stat before anything reads or links it
    days      the days with a published output (one listing)
    sidecar   whether a provenance sidecar is written (a missing one means stale, decision D13)
    quality   a load's quality report can mark a day failed
    health    a feed-health verdict (`health/<kind>/<date>.json`) can mark a day flagged
    source    a landing copy delivered by a source: a missing one is fetched only to build
              what is downstream of it
    product   built once at the end of a backfill (whole history, view, report); not in the
              status grid; stale while an upstream task is not complete
    switch    the [cvas] boolean setting that turns the dataset on
    lock      the lock its writer holds while publishing (output and sidecar): a task's
              completeness is decided under it, shared, so it never sees one without the other
    """

    name: str
    key: str
    outputs: Paths
    upstream: tuple[Upstream, ...] = ()
    inputs: Inputs | None = None
    external: tuple[str, ...] = ()
    expect: tuple[tuple[str, Callable[[Layout, "dt.date | None", Settings], Any]], ...] = ()
    listing: tuple[str, str] | None = None
    parted: bool = False
    days: Callable[[Layout], set[dt.date]] | None = None
    sidecar: bool = True
    quality: bool = False
    health: bool = False
    source: bool = False
    product: bool = False
    switch: str | None = None
    lock: str | None = None

    @property
    def per_day(self) -> bool:
        return self.key in (DAY, DAY_KIND)


# -- inputs and listings shared with the writers (what they record is what freshness compares) --

def counter_inputs(layout: Layout, day: dt.date, exclusions: Path | None) -> dict[str, Path]:
    """The files a day's counters are computed from (their provenance inputs)."""
    inputs = {kind: layout.transactions(kind, day) for kind in KINDS}
    if exclusions is not None:
        inputs["exclusions"] = Path(exclusions)
    return inputs


def day_listing(layout: Layout, name: str) -> dict[str, list[int]]:
    """{YYYY-MM-DD: [size, mtime_ns]} of every file of a per-day dataset kept in one folder
    (daily_counters, user_base_daily), from one directory scan."""
    sample = DATASETS[name].outputs(layout, dt.date(2000, 1, 1), None)[0]
    suffix = sample.name.replace("2000-01-01", "")
    # only the files the layout names: a stray copy is never an input
    return {stem: st for stem, st in stat_listing(sample.parent, suffix).items()
            if day_of_name(stem + suffix, suffix) is not None}


# the days of counters and user base a daily report shows (its trends and breakdowns)
WINDOW_DAYS = 90


def report_window(day: dt.date, window_days: int = WINDOW_DAYS) -> list[dt.date]:
    """The days a report covers: the `window_days` days ending with `day`."""
    return [day - dt.timedelta(days=i) for i in range(window_days - 1, -1, -1)]


def report_inputs(layout: Layout, day: dt.date, window_days: int = WINDOW_DAYS) -> dict[str, Path]:
    """The files a report is rendered from (its provenance inputs): the window's counter files,
    the user-base files of the window and of the day before it, and the master."""
    window = report_window(day, window_days)
    inputs: dict[str, Path] = {"master": layout.master_cpc}
    for d in window:
        inputs[f"counters:{d}"] = layout.daily_counters(d)
    for d in [window[0] - dt.timedelta(days=1)] + window:
        inputs[f"user_base:{d}"] = layout.user_base_daily(d)
    return inputs


def _report_inputs(layout: Layout, day: dt.date, kind: str | None, settings: Settings) -> dict[str, Path]:
    return report_inputs(layout, day, WINDOW_DAYS)


def _window_days(layout: Layout, day: dt.date | None, settings: Settings) -> int:
    return WINDOW_DAYS


def _view_digest(layout: Layout, day: dt.date | None, settings: Settings) -> str:
    return transaction_digest(layout, day, VIEW_KINDS)


def days_of(layout: Layout, name: str, kind: str | None = None) -> set[dt.date]:
    """The days dataset `name` (of `kind`) holds: those whose file, as the layout names it, exists,
    from one listing per folder (per month folder for the transactions). The one answer to
    "which days does dataset X hold"; a file the layout does not name is never a day."""
    ds = dataset(name)
    if ds.days is not None:
        return ds.days(layout)
    sample = ds.outputs(layout, _SAMPLE, kind)[0]
    literal, fmt = next((lit, f) for lit, _, f in _DAY_TEXTS if lit in sample.name)
    suffix = sample.name.replace(literal, "", 1)
    if sample.parent.name == f"year_month={_SAMPLE:%Y-%m}":   # Hive month partitions
        return transaction_days(layout, kind)
    return days_in_dir(sample.parent, suffix, fmt)


def newest_day(layout: Layout, name: str) -> dt.date | None:
    """The newest day with a published output of the per-day dataset `name`."""
    days = days_of(layout, name)
    return max(days) if days else None


def product_days(layout: Layout, day: dt.date) -> list[dt.date]:
    """The days whose products a run building `day` refreshes: `day`, and the newest day with a
    view or loaded transactions when it is later (a change to `day` makes every view as of `day`
    or later stale, the newest included: a late or reloaded day refreshes the newest view and
    report, not only its own)."""
    newest = max((d for d in (newest_day(layout, "subscriptions"), newest_transaction_day(layout, VIEW_KINDS))
                  if d is not None), default=None)
    return [day] if newest is None or newest <= day else [day, newest]


def _newest_view(layout: Layout, day: dt.date | None, settings: Settings, key: str) -> Any:
    """A value of the newest as-of view's sidecar, which the newest-view copy must carry too."""
    newest = newest_day(layout, "subscriptions")
    if newest is None:
        return None
    return str(newest) if key == "as_of" else (provenance.read(layout, layout.subscriptions(newest)) or {}).get(key)


def published_outputs(layout: Layout, name: str) -> dict[str, list[int] | None]:
    """{file name: [size, mtime_ns], None when absent} of the published files of a whole-history
    dataset: what its writer records just after publishing them, under its lock, and freshness
    compares. A file edited or restored since, or published by a writer that stopped before
    recording its sidecar, differs: the export is stale and rebuilt, never appended to."""
    found: dict[str, list[int] | None] = {}
    for path in DATASETS[name].outputs(layout, None, None):
        try:
            st = path.stat()
        except FileNotFoundError:
            found[path.name] = None
            continue
        found[path.name] = [st.st_size, st.st_mtime_ns]
    return found


def _outputs_of(name: str) -> Callable[[Layout, "dt.date | None", Settings], dict[str, list[int] | None]]:
    return lambda layout, day, settings: published_outputs(layout, name)


def _excluded_services(layout: Layout, day: dt.date | None, settings: Settings) -> list[str]:
    return list(settings.excluded_services)


_USER_BASE_EXPORTS = ("service", "category", "cpc")

# Upstream first: the status grid's columns and the plan follow this order.
_ENTRIES = (
    Dataset("raw", DAY_KIND, lambda lay, d, k: (lay.raw(k, d),), sidecar=False, source=True),
    Dataset("transactions", DAY_KIND, lambda lay, d, k: (lay.transactions(k, d),),
            upstream=(Upstream("raw"),), inputs=lambda lay, d, k, s: {"raw": lay.raw(k, d)}, quality=True,
            health=True),
    Dataset("daily_counters", DAY, lambda lay, d, k: (lay.daily_counters(d),),
            upstream=(Upstream("transactions"),), inputs=lambda lay, d, k, s: counter_inputs(lay, d, s.exclusions),
            external=("exclusions",)),
    Dataset("master_cpc", NONE, lambda lay, d, k: (lay.master_cpc,),
            inputs=lambda lay, d, k, s: {"master_xlsx": Path(s.master_xlsx)}, external=("master_xlsx",)),
    Dataset("counters_export", NONE, lambda lay, d, k: (lay.counters_cpc, lay.counters_service),
            upstream=(Upstream("daily_counters"), Upstream("master_cpc")),
            inputs=lambda lay, d, k, s: {"master": lay.master_cpc},
            expect=(("excluded_services", _excluded_services), ("outputs", _outputs_of("counters_export"))),
            listing=("daily", "daily_counters"), product=True, lock="counters_exports"),
    # the view and the state the next day's view is folded from, written together by one task
    Dataset("subscriptions", DAY, lambda lay, d, k: (lay.subscriptions(d), lay.subscription_state(d)),
            upstream=(Upstream("transactions", VIEW_KINDS),), expect=(("transactions", _view_digest),),
            parted=True, days=as_of_days, product=True, lock="subscriptions"),
    # the legacy path: a copy of the newest as-of view, fresh only while it is exactly that view
    Dataset("subscriptions_latest", NONE, lambda lay, d, k: (lay.subscriptions_latest,),
            upstream=(Upstream("subscriptions"),),
            expect=(("as_of", functools.partial(_newest_view, key="as_of")),
                    ("output_hash", functools.partial(_newest_view, key="output_hash"))),
            parted=True, product=True, lock="subscriptions"),
    Dataset("user_base_snapshot", DAY, lambda lay, d, k: (lay.user_base_snapshot(d),), sidecar=False, source=True,
            switch="user_base"),
    Dataset("user_base_daily", DAY, lambda lay, d, k: (lay.user_base_daily(d),),
            upstream=(Upstream("user_base_snapshot"),),
            inputs=lambda lay, d, k, s: {"snapshot": lay.user_base_snapshot(d)}, switch="user_base"),
    Dataset("user_base_export", NONE, lambda lay, d, k: tuple(lay.user_base_export(by) for by in _USER_BASE_EXPORTS),
            upstream=(Upstream("user_base_daily"),),
            expect=(("excluded_services", _excluded_services), ("outputs", _outputs_of("user_base_export"))),
            listing=("daily", "user_base_daily"), product=True, switch="user_base", lock="user_base_exports"),
    Dataset("report", DAY, lambda lay, d, k: (lay.report(d),),
            upstream=(Upstream("counters_export"), Upstream("subscriptions"), Upstream("user_base_export")),
            inputs=_report_inputs,
            expect=(("excluded_services", _excluded_services), ("params.window_days", _window_days)), product=True),
)

DATASETS: dict[str, Dataset] = {d.name: d for d in _ENTRIES}


def writer_lock(layout: Layout, name: str) -> Path:
    """The lock file the writer of dataset `name` holds while it publishes (its `lock`)."""
    return layout.lock(dataset(name).lock)


class UnknownDatasetError(ValueError):
    """Raised when a dataset name is not in the catalogue."""


def dataset(name: str) -> Dataset:
    try:
        return DATASETS[name]
    except KeyError:
        raise UnknownDatasetError(f"unknown dataset {name!r} (known: {', '.join(DATASETS)})") from None


def enabled(ds: Dataset, switches: dict[str, bool] | None = None) -> bool:
    """Whether a dataset is built under the given [cvas] switches (all on when not given)."""
    return ds.switch is None or (switches or {}).get(ds.switch, True)


def label(name: str, kind: str | None) -> str:
    """The status/plan label of one per-day output column: `name` or `name:kind`."""
    return f"{name}:{kind}" if kind else name


def split_label(text: str) -> tuple[str, str | None]:
    name, _, kind = text.partition(":")
    return name, kind or None


def grid_columns(switches: dict[str, bool] | None = None) -> list[tuple[str, str | None]]:
    """The per-day datasets of the status grid, (name, kind), upstream first."""
    columns: list[tuple[str, str | None]] = []
    for ds in _ENTRIES:
        if ds.per_day and not ds.product and enabled(ds, switches):
            columns += [(ds.name, k) for k in KINDS] if ds.key == DAY_KIND else [(ds.name, None)]
    return columns


def products(switches: dict[str, bool] | None = None) -> list[str]:
    """The datasets built once at the end of a backfill and by every daily run, upstream first."""
    return [ds.name for ds in _ENTRIES if ds.product and enabled(ds, switches)]


def children(name: str, kind: str | None) -> list[tuple[str, str | None]]:
    """The per-day, non-product outputs of the same day built directly from (name, kind)."""
    found: list[tuple[str, str | None]] = []
    for ds in _ENTRIES:
        if not ds.per_day or ds.product:
            continue
        for up in ds.upstream:
            if up.name != name:
                continue
            if ds.key == DAY_KIND:
                found.append((ds.name, kind))
            elif kind is None or kind in (up.kinds or KINDS):
                found.append((ds.name, None))
    return found


def downstream(name: str, kind: str | None) -> list[tuple[str, str | None]]:
    """The per-day outputs of one day built from (name, kind), itself included, upstream first.
    Products (exports, view, report) follow on their own: their recorded inputs change."""
    return list(_downstream(name, kind))


@functools.cache   # the catalogue is fixed: a backfill asks for every output of every day
def _downstream(name: str, kind: str | None) -> tuple[tuple[str, str | None], ...]:
    dataset(name)
    seen = [(name, kind)]
    for item in seen:
        for child in children(*item):
            if child not in seen:
                seen.append(child)
    order = {n: i for i, n in enumerate(DATASETS)}
    return tuple(sorted(seen, key=lambda item: order[item[0]]))


def leaves(name: str) -> list[str]:
    """The per-day, non-product datasets downstream of `name` that nothing per-day is built from:
    the tasks a backfill schedules to rebuild an output of `name` (their requirements follow)."""
    return list(_leaves(name))


@functools.cache
def _leaves(name: str) -> tuple[str, ...]:
    names = {n for n, _ in downstream(name, None)} | {n for k in KINDS for n, _ in downstream(name, k)}
    return tuple(n for n in DATASETS if n in names and not children(n, None) and not any(children(n, k) for k in KINDS))


def output_path(layout: Layout, name: str, kind: str | None, day: dt.date | None) -> Path:
    """The (first) published file of one output."""
    return dataset(name).outputs(layout, day, kind)[0]


def invalidatable() -> list[str]:
    """The `--dataset` choices of `cvas invalidate`: the per-day datasets of the grid."""
    return list(dict.fromkeys(n for n, _ in grid_columns()))


# -- stray files: what a dataset folder holds that the layout does not name ----------------------

_SAMPLE = dt.date(2000, 1, 2)
_DAY_TEXTS = ((f"{_SAMPLE:%Y-%m-%d}", r"(?P<day>[0-9]{4}-[0-9]{2}-[0-9]{2})", "%Y-%m-%d"),
              (f"{_SAMPLE:%Y%m%d}", r"(?P<day>[0-9]{8})", "%Y%m%d"))


def _producers(layout: Layout) -> list[tuple[str, Callable[[dt.date | None, str | None], tuple[Path, ...]], bool]]:
    """(key, files of one key, whether they are folders of parts) of everything cvas publishes
    under dataset folders: the catalogue's outputs, and the loads' quality reports and rejects."""
    found = [(ds.key, functools.partial(ds.outputs, layout), ds.parted) for ds in _ENTRIES]
    found.append((DAY_KIND, lambda d, k: (layout.quality(k, d), layout.rejects(k, d)), False))
    return found


_DAY_MARK, _MONTH_MARK = "\0day\0", "\0month\0"


@dataclass(frozen=True)
class _Pattern:
    """The per-day files of one producer (and kind) under a dataset folder: `regex` finds the
    day in a path; the path the layout names for that day is `template` with the day in
    `day_format` and its month put back (what the producer returns for the day, as text)."""
    regex: re.Pattern
    day_format: str | None
    template: str

    def names(self, path: str) -> bool:
        match = self.regex.match(path)
        if match is None:
            return False
        try:   # both day formats are ISO 8601 (extended and basic): fromisoformat, not strptime
            day = dt.date.fromisoformat(match["day"])
        except (ValueError, IndexError):
            return False
        return path == self.template.replace(_DAY_MARK, f"{day:{self.day_format}}").replace(_MONTH_MARK,
                                                                                            f"{day:%Y-%m}")


def _patterns(layout: Layout) -> tuple[dict[str, list[_Pattern]], set[str]]:
    """The dataset folders (the fixed part of each output's path) with, per folder, the pattern of
    the per-day files under it; and the fixed whole-history files. Paths are text: `cvas status`
    tests every file of the data root against them (tens of thousands after a few years)."""
    folders: dict[str, list[_Pattern]] = {}
    fixed: set[str] = set()
    for key, files, parted in _producers(layout):
        for kind in (KINDS if key == DAY_KIND else (None,)):
            for sample in files(_SAMPLE if key != NONE else None, kind):
                if key == NONE:
                    fixed.add(str(sample))
                    if sample.parent != layout.root:   # a file at the root (MASTERCPC.csv) makes no dataset folder
                        folders.setdefault(str(sample.parent), [])
                    if parted:   # a folder of parts: what else it holds is a stray
                        folders.setdefault(str(sample), [])
                    continue
                text, template, fmt = re.escape(str(sample)), str(sample), None
                for literal, group, day_fmt in _DAY_TEXTS:
                    if re.escape(literal) in text:
                        text, fmt = text.replace(re.escape(literal), group, 1), day_fmt
                        template = template.replace(literal, _DAY_MARK, 1)
                text = text.replace(re.escape(f"{_SAMPLE:%Y-%m}"), "[0-9]{4}-[0-9]{2}")
                template = template.replace(f"{_SAMPLE:%Y-%m}", _MONTH_MARK)
                folder = sample.parent
                while str(folder) != str(layout.root) and any(lit in str(folder) for lit, _, _ in _DAY_TEXTS) \
                        or f"{_SAMPLE:%Y-%m}" in folder.name:
                    folder = folder.parent
                folders.setdefault(str(folder), []).append(_Pattern(re.compile(text + "$"), fmt, template))
    return folders, fixed


def strays(layout: Layout) -> list[Path]:
    """Every file in a dataset folder that the layout does not name for any day (a copy, a
    download, a hand-made file): readers never read them; `cvas status` and `cvas verify` list them."""
    folders, fixed = _patterns(layout)
    every = [p for patterns in folders.values() for p in patterns]
    found: list[str] = []
    for folder, patterns in folders.items():
        if not os.path.isdir(folder):
            continue
        deep = bool(patterns)   # per-day folders may hold month or as-of folders
        for dirpath, _, names in os.walk(folder):
            if not deep and dirpath != folder:
                continue
            found += [path for n in names if not _named(path := os.path.join(dirpath, n), patterns, fixed)]
    return sorted({Path(p) for p in found if not _named(p, every, fixed)})


def _named(path: str, patterns: list[_Pattern], fixed: set[str]) -> bool:
    if path in fixed:
        return True
    if PART_FILE.match(os.path.basename(path)) and _named(os.path.dirname(path), patterns, fixed):
        return True   # a part of an output that is a folder
    return any(pattern.names(path) for pattern in patterns)

