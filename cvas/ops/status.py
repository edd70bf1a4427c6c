"""Coverage from storage: a per-day × dataset grid, an explained plan, and invalidation."""

from __future__ import annotations

import datetime as dt
import json
import os
from dataclasses import dataclass
from pathlib import Path

from cvas.core import provenance
from cvas.core.layout import Layout, days_in_dir, sidecar, stat_listing, tombstone
from cvas.core.publish import write_text_atomic
from cvas.core.schemas import KINDS
from cvas.core.freshness import counter_days, counter_inputs, invalidated, loaded_days, raw_days

PRESENT, MISSING, STALE, FAILED, INVALID = "present", "missing", "stale", "failed", "invalidated"
SYMBOL = {PRESENT: "#", MISSING: ".", STALE: "S", FAILED: "F", INVALID: "X"}

# The per-day datasets, upstream first. Each entry: (name, kind or None).
DATASETS: list[tuple[str, str | None]] = (
    [("raw", k) for k in KINDS] + [("transactions", k) for k in KINDS] + [("counters", None)]
    + [("user_base_snapshot", None), ("user_base", None)]
)


def dataset_label(name: str, kind: str | None) -> str:
    return f"{name}:{kind}" if kind else name


def output_path(layout: Layout, name: str, kind: str | None, day: dt.date) -> Path:
    if name == "raw":
        return layout.raw(kind, day)
    if name == "transactions":
        return layout.transactions(kind, day)
    if name == "counters":
        return layout.daily_counters(day)
    if name == "user_base_snapshot":
        return layout.user_base_snapshot(day)
    if name == "user_base":
        return layout.user_base_daily(day)
    raise ValueError(f"unknown dataset {name!r}")


def downstream(name: str, kind: str | None) -> list[tuple[str, str | None]]:
    """The per-day datasets that are built from (name, kind), itself included, upstream first."""
    if name == "raw":
        return [("raw", kind), ("transactions", kind), ("counters", None)]
    if name == "transactions":
        return [("transactions", kind), ("counters", None)]
    if name == "counters":
        return [("counters", None)]
    if name == "user_base_snapshot":
        return [("user_base_snapshot", None), ("user_base", None)]
    if name == "user_base":
        return [("user_base", None)]
    raise ValueError(f"unknown dataset {name!r}")


@dataclass(frozen=True)
class Cell:
    state: str
    reason: str = ""


def _quality_failed(layout: Layout, kind: str, day: dt.date) -> str | None:
    try:
        report = json.loads(layout.quality(kind, day).read_text())
    except (FileNotFoundError, ValueError):
        return None
    if report.get("status") == "failed":
        return f"reject ratio {report.get('reject_ratio', 0):.2%} over {report.get('max_reject_ratio')}"
    return None


def _newer(a: Path, b: Path) -> bool:
    """Whether `a` was published after `b` (a load publishes its report before its partition,
    so only a failed reload leaves a report newer than the partition)."""
    try:
        return a.stat().st_mtime_ns > b.stat().st_mtime_ns
    except FileNotFoundError:
        return False


def grid(layout: Layout, start: dt.date, end: dt.date, exclusions: Path | None,
         datasets: list[tuple[str, str | None]] | None = None) -> dict[dt.date, dict[str, Cell]]:
    """The state of every (day, dataset) of [start, end], from directory listings and sidecars."""
    datasets = datasets or DATASETS
    days = [start + dt.timedelta(days=i) for i in range((end - start).days + 1)]
    marked = invalidated(layout)
    listing = {}
    for name, kind in datasets:
        if name == "raw":
            listing[(name, kind)] = raw_days(layout, kind)
        elif name == "transactions":
            listing[(name, kind)] = loaded_days(layout, kind)
        elif name == "counters":
            listing[(name, kind)] = counter_days(layout)
        else:
            directory = output_path(layout, name, kind, start).parent
            suffix = "_NBS_Base.csv" if name == "user_base_snapshot" else ".parquet"
            fmt = "%Y%m%d" if name == "user_base_snapshot" else "%Y-%m-%d"
            listing[(name, kind)] = days_in_dir(directory, suffix, fmt)
    # (size, mtime_ns) of every file the freshness checks compare, from one scan per directory
    stats: dict[str, list[int]] = {}
    for name, kind in datasets:
        if name in ("raw", "transactions", "user_base_snapshot", "user_base", "counters"):
            dirs = {output_path(layout, name, kind, d).parent for d in days} if name == "transactions" \
                else {output_path(layout, name, kind, start).parent}
            if name == "transactions":  # their sidecars too: a partition without one is suspect
                dirs |= {sidecar(layout, output_path(layout, name, kind, d)).parent for d in days}
            for directory in dirs:
                for stem, st in stat_listing(directory, "").items():
                    stats[os.path.join(directory, stem)] = st
    excl_stat = _stat(exclusions) if exclusions is not None else None
    out: dict[dt.date, dict[str, Cell]] = {}
    for day in days:
        row: dict[str, Cell] = {}
        for name, kind in datasets:
            label = dataset_label(name, kind)
            path = output_path(layout, name, kind, day)
            if day not in listing[(name, kind)]:
                failed = _quality_failed(layout, kind, day) if name == "transactions" else None
                row[label] = Cell(FAILED, failed) if failed else Cell(MISSING)
                continue
            if name == "transactions" and _newer(layout.quality(kind, day), path) \
                    and (failed := _quality_failed(layout, kind, day)):
                row[label] = Cell(FAILED, f"last reload failed: {failed}; the previous partition is kept")
                continue
            if path in marked:
                row[label] = Cell(INVALID, "invalidated")
                continue
            changed: list[str] = []
            if name == "transactions" and _lookup(stats, sidecar(layout, path)) is None:
                row[label] = Cell(STALE, "no provenance sidecar (an interrupted load)")
                continue
            if name == "transactions":
                changed = _changed(layout, path, stats, {"raw": layout.raw(kind, day)})
            elif name == "counters":
                inputs = counter_inputs(layout, day, exclusions)
                current = {k: _lookup(stats, p) for k, p in inputs.items() if k != "exclusions"}
                if exclusions is not None:
                    current["exclusions"] = excl_stat
                changed = _changed(layout, path, stats, inputs, current, always=exclusions is not None)
            elif name == "user_base":
                changed = _changed(layout, path, stats, {"snapshot": layout.user_base_snapshot(day)})
            row[label] = Cell(STALE, f"{', '.join(changed)} changed") if changed else Cell(PRESENT)
        out[day] = row
    return out


def _lookup(stats: dict[str, list[int]], path: Path) -> list[int] | None:
    """A file's (size, mtime_ns) from the scans, or from its own stat when its folder was not scanned."""
    key = str(path)
    return stats[key] if key in stats else _stat(path)


def _stat(path: Path | None) -> list[int] | None:
    try:
        st = os.stat(path)
    except (FileNotFoundError, TypeError):
        return None
    return [st.st_size, st.st_mtime_ns]


def _changed(layout: Layout, output: Path, stats: dict[str, list[int]], inputs: dict[str, Path],
             current: dict[str, list[int] | None] | None = None, always: bool = False) -> list[str]:
    """Inputs of `output` that changed since it was built. Fast path: when every input is older
    than the output (and `always` is off) nothing can have changed and no sidecar is read;
    otherwise the sidecar's recorded size/mtime (then content hash) decide."""
    current = current if current is not None else {k: _lookup(stats, p) for k, p in inputs.items()}
    own = stats.get(str(output))
    if not always and own is not None and all(c is not None and c[1] <= own[1] for c in current.values()):
        return []
    meta = provenance.read(layout, output)
    if meta is None:
        return []  # built before provenance was recorded: nothing to compare with
    recorded = meta.get("inputs", {})
    changed = []
    for name, path in inputs.items():
        old, now = recorded.get(name), current.get(name)
        if old is None:
            changed.append(name)
        elif now is None:
            if not old.get("missing"):
                changed.append(name)
        elif old.get("missing") or old.get("size") != now[0]:
            changed.append(name)
        elif old.get("mtime_ns") != now[1] and provenance.file_hash(path) != old.get("hash"):
            changed.append(name)
    return sorted(changed)


def format_grid(cells: dict[dt.date, dict[str, Cell]]) -> str:
    """A terminal grid: one line per day, one column per dataset, with a legend."""
    if not cells:
        return "(empty range)"
    labels = list(next(iter(cells.values())).keys())
    short = [lab.replace("transactions:", "tx:") for lab in labels]
    width = max(len(s) for s in short)
    lines = []
    for i in range(width):  # vertical headers keep the grid narrow
        lines.append(" " * 11 + " ".join(s[i] if i < len(s) else " " for s in short))
    totals = {state: 0 for state in SYMBOL}
    for day, row in cells.items():
        marks = []
        for lab in labels:
            totals[row[lab].state] += 1
            marks.append(SYMBOL[row[lab].state])
        lines.append(f"{day:%Y-%m-%d} " + " ".join(marks))
    lines.append("legend: " + "  ".join(f"{sym} {state}" for state, sym in SYMBOL.items()))
    lines.append("totals: " + ", ".join(f"{state} {n}" for state, n in totals.items() if n))
    return "\n".join(lines)


def grid_json(cells: dict[dt.date, dict[str, Cell]]) -> str:
    return json.dumps({str(day): {lab: {"state": c.state, "reason": c.reason} for lab, c in row.items()}
                       for day, row in cells.items()}, indent=1)


def plan(cells: dict[dt.date, dict[str, Cell]], only_missing: bool = False) -> list[tuple[dt.date, str, str]]:
    """What a backfill would build, per (day, dataset), and why. Everything downstream of a
    rebuilt output is rebuilt too; a missing landing copy is fetched only when its partition
    has to be (re)built."""
    steps: list[tuple[dt.date, str, str]] = []
    for day, row in cells.items():
        own: dict[str, str] = {}
        for label, cell in row.items():
            if cell.state == MISSING:
                own[label] = "missing"
            elif cell.state == FAILED:
                own[label] = f"failed quality ({cell.reason}); retried"
            elif cell.state == INVALID:
                own[label] = "forced (invalidated)"
            elif cell.state == STALE and not only_missing:
                own[label] = f"stale: {cell.reason}"
        forced: dict[str, str] = {}
        for label in row:  # upstream first
            name, kind = _split(label)
            why = own.get(label) or forced.get(label)
            if name == "raw" and own.get(label) == "missing":
                tx = dataset_label("transactions", kind)
                why = "missing; needed to build " + tx if tx in own else None
            if name == "user_base_snapshot" and own.get(label) == "missing":
                why = "missing; needed to build user_base" if "user_base" in own else None
            if not why:
                continue
            steps.append((day, label, why))
            for d in downstream(name, kind)[1:]:
                forced.setdefault(dataset_label(*d), f"rebuilt because {label} is rebuilt")
    return steps


def _split(label: str) -> tuple[str, str | None]:
    name, _, kind = label.partition(":")
    return name, kind or None


def format_plan(steps: list[tuple[dt.date, str, str]]) -> str:
    if not steps:
        return "nothing to build: every output in the range is present and fresh"
    lines = [f"{day:%Y-%m-%d}  {label:<17} {why}" for day, label, why in steps]
    lines.append(f"{len(steps)} output(s) to build over {len({d for d, _, _ in steps})} day(s)")
    return "\n".join(lines)


def invalidate(layout: Layout, start: dt.date, end: dt.date, dataset: str = "transactions",
               kinds: list[str] | None = None) -> list[Path]:
    """Mark outputs of [start, end] and everything downstream for rebuild; returns the marked paths.

    Nothing is deleted: the old files stay readable until the rebuild replaces each one
    atomically, and the whole-history exports follow because their inputs change.
    """
    chosen = [(dataset, k) for k in (kinds or KINDS)] if dataset in ("raw", "transactions") else [(dataset, None)]
    marked: list[Path] = []
    day = start
    while day <= end:
        for name, kind in chosen:
            for dname, dkind in downstream(name, kind):
                path = output_path(layout, dname, dkind, day)
                if path.exists() and path not in marked:
                    mark_for_rebuild(layout, path)
                    marked.append(path)
        day += dt.timedelta(days=1)
    return marked


def mark_for_rebuild(layout: Layout, path: Path) -> None:
    """Write the tombstone of one published output."""
    write_text_atomic(layout.staging, tombstone(layout, path), f"invalidated {dt.datetime.now():%Y-%m-%dT%H:%M:%S}\n")
