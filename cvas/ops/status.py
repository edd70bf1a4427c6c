"""Coverage from storage: a per-day × dataset grid, an explained plan, and invalidation."""

from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path

from cvas.core.catalogue import DAY_KIND, Settings, dataset as dataset_of, downstream, grid_columns, output_path
from cvas.core.catalogue import DATASETS as DATASETS_BY_NAME, NONE, children, enabled, label as dataset_label
from cvas.core.catalogue import split_label
from cvas.core.freshness import BUILD_FAILED, DAMAGED, FAILED, FLAGGED, INVALID, MISSING, PRESENT, STALE, Cell, Freshness
from cvas.core.layout import Layout, as_of_days, tombstone
from cvas.core.publish import write_text_atomic
from cvas.core.schemas import KINDS

SYMBOL = {PRESENT: "#", MISSING: ".", STALE: "S", FAILED: "F", INVALID: "X", FLAGGED: "!", DAMAGED: "D"}

# The per-day datasets of the grid, (name, kind), upstream first (from the catalogue).
DATASETS: list[tuple[str, str | None]] = grid_columns()

__all__ = ["DAMAGED", "DATASETS", "FAILED", "FLAGGED", "INVALID", "MISSING", "PRESENT", "STALE", "SYMBOL", "Cell",
           "dataset_label", "downstream", "format_grid", "format_strays", "format_outputs", "format_plan", "grid",
           "grid_json", "invalidate",
           "mark_for_rebuild", "output_path", "outputs_as_of", "plan", "plan_outputs"]


def grid(layout: Layout, start: dt.date, end: dt.date, settings: Settings | Path | None,
         datasets: list[tuple[str, str | None]] | None = None) -> dict[dt.date, dict[str, Cell]]:
    """The state of every (day, dataset) of [start, end], decided by `cvas.core.freshness` after
    one scan per directory. `settings` may be the exclusion list alone (the only setting the
    per-day datasets depend on)."""
    if not isinstance(settings, Settings):
        settings = Settings(exclusions=settings)
    datasets = datasets or DATASETS
    days = [start + dt.timedelta(days=i) for i in range((end - start).days + 1)]
    fresh = Freshness(layout, settings)
    for name in dict.fromkeys(n for n, _ in datasets):
        fresh.prefetch(name, days, [k for n, k in datasets if n == name])
    return {day: {dataset_label(name, kind): fresh.state(name, day, kind) for name, kind in datasets}
            for day in days}


def outputs_as_of(layout: Layout, day: dt.date, settings: Settings,
                  switches: dict[str, bool] | None = None) -> dict[str, Cell]:
    """The state of the whole-history outputs and the products of `day` (master, exports, view,
    report), upstream first: what a backfill ending on `day` refreshes once at its end."""
    fresh = Freshness(layout, settings)
    cells = {ds.name: fresh.state(ds.name, day) for ds in DATASETS_BY_NAME.values()
             if (ds.product or ds.key == NONE) and enabled(ds, switches)}
    # every kept as-of view that is not fresh (a late day, a damaged shared part), the newest included
    for other in sorted(as_of_days(layout) - {day}):
        cell = fresh.state("subscriptions", other)
        if not cell.fresh:
            cells[f"subscriptions@{other}"] = cell
    return cells


def format_outputs(day: dt.date, cells: dict[str, Cell]) -> str:
    """The whole-history outputs and products as of `day`, one per line."""
    lines = [f"as of {day:%Y-%m-%d}:"]
    lines += [f"  {name:<17} {SYMBOL[c.state]} {c.state}" + (f" ({c.reason})" if c.reason else "")
              for name, c in cells.items()]
    return "\n".join(lines)


def _column_heads(labels: list[str]) -> list[tuple[str, str]]:
    """(group, sub) of each column: `transactions:reno` -> ("transactions", "reno"); a dataset
    without kinds splits at its last underscore (`user_base_snapshot` -> ("user_base", "snapshot"))."""
    heads = []
    for label in labels:
        name, _, kind = label.partition(":")
        if kind:
            heads.append((name, kind))
        else:
            head, _, tail = name.rpartition("_")
            heads.append((head, tail) if head else (name, ""))
    return heads


def format_strays(layout: Layout, found: list[Path]) -> str:
    """The files of dataset folders that the layout does not name (cvas never reads them)."""
    if not found:
        return "stray files: none"
    lines = [f"stray files: {len(found)} in dataset folders, not named by the layout (never read; move them out):"]
    return "\n".join(lines + [f"  {p.relative_to(layout.root)}" for p in found])


def format_grid(cells: dict[dt.date, dict[str, Cell]]) -> str:
    """A terminal grid: a two-line header (dataset, then kind), one line per day, a legend."""
    if not cells:
        return "(empty range)"
    labels = list(next(iter(cells.values())).keys())
    heads = _column_heads(labels)
    widths = [len(sub) + 1 for _, sub in heads]
    groups: list[tuple[str, list[int]]] = []  # consecutive columns of one group, for the first line
    for i, (group, _) in enumerate(heads):
        if groups and groups[-1][0] == group and heads[i][1] and heads[i - 1][1]:
            groups[-1][1].append(i)
        else:
            groups.append((group, [i]))
    for group, columns in groups:  # the group's name fits over its columns
        short = len(group) + 1 - sum(widths[c] for c in columns)
        if short > 0:
            widths[columns[-1]] += short
    pad = " " * 11
    top = pad + "".join(f"{group:<{sum(widths[c] for c in columns)}}" for group, columns in groups)
    second = pad + "".join(f"{sub:<{w}}" for (_, sub), w in zip(heads, widths))
    lines = [top.rstrip(), second.rstrip()]
    totals = {state: 0 for state in SYMBOL}
    for day, row in cells.items():
        marks = []
        for lab, w in zip(labels, widths):
            totals[row[lab].state] += 1
            marks.append(f"{SYMBOL[row[lab].state]:<{w}}")
        lines.append(f"{day:%Y-%m-%d} " + "".join(marks).rstrip())
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
                what = "failed" if cell.reason.startswith(BUILD_FAILED) else "failed quality"
                own[label] = f"{what} ({cell.reason}); retried"
            elif cell.state == INVALID:
                own[label] = "forced (invalidated)"
            elif cell.state == DAMAGED:
                own[label] = f"damaged: {cell.reason}; rebuilt from its inputs"
            elif cell.state == STALE and not only_missing:
                own[label] = f"stale: {cell.reason}"
        forced: dict[str, str] = {}
        for label in row:  # upstream first
            name, kind = split_label(label)
            why = own.get(label) or forced.get(label)
            if dataset_of(name).source and own.get(label) == "missing":
                needed = [dataset_label(*c) for c in children(name, kind) if dataset_label(*c) in own]
                why = f"missing; needed to build {needed[0]}" if needed else None
            if not why:
                continue
            steps.append((day, label, why))
            for d in downstream(name, kind)[1:]:
                forced.setdefault(dataset_label(*d), f"rebuilt because {label} is rebuilt")
    return steps


def plan_outputs(day: dt.date, cells: dict[str, Cell],
                 steps: list[tuple[dt.date, str, str]]) -> list[tuple[dt.date, str, str]]:
    """What the end of a backfill refreshes among the whole-history outputs and products of
    `day`, and why: its own state, or an upstream that is rebuilt (per-day `steps` included)."""
    rebuilt = {split_label(label)[0] for _, label, _ in steps}
    found: list[tuple[dt.date, str, str]] = []
    for name, cell in cells.items():  # upstream first; `name@day` is a kept as-of view of another day
        dataset, _, other = name.partition("@")
        ups = [u.name for u in dataset_of(dataset).upstream if u.name in rebuilt]
        why = (f"{cell.state}" + (f": {cell.reason}" if cell.reason else "")) if cell.state != PRESENT \
            else (f"rebuilt because {ups[0]} is rebuilt" if ups else "")
        if why:
            found.append((dt.date.fromisoformat(other) if other else day, dataset, why))
            rebuilt.add(dataset)
    return found


def format_plan(steps: list[tuple[dt.date, str, str]]) -> str:
    if not steps:
        return "nothing to build: every output in the range is present and fresh"
    lines = [f"{day:%Y-%m-%d}  {label:<17} {why}" for day, label, why in steps]
    lines.append(f"{len(steps)} output(s) to build over {len({d for d, _, _ in steps})} day(s)")
    return "\n".join(lines)


def format_plan_summary(steps: list[tuple[dt.date, str, str]]) -> str:
    """The plan counted per dataset (its kinds together) and reason, for ranges too long to list."""
    if not steps:
        return format_plan(steps)
    counts: dict[str, dict[str, int]] = {}
    for _, label, why in steps:
        reason = "upstream rebuilt" if why.startswith("rebuilt because") else re.split(r"[:;(]", why)[0].strip()
        per = counts.setdefault(split_label(label)[0], {})
        per[reason] = per.get(reason, 0) + 1
    lines = [f"{name:<19} {sum(per.values()):>7,}  " + ", ".join(f"{why} {n:,}" for why, n in per.items())
             for name, per in counts.items()]
    days = sorted({d for d, _, _ in steps})
    lines.append(f"{len(steps):,} output(s) to build over {len(days):,} day(s) ({days[0]}..{days[-1]}); "
                 "without --summary: each output and why")
    return "\n".join(lines)


def invalidate(layout: Layout, start: dt.date, end: dt.date, dataset: str = "transactions",
               kinds: list[str] | None = None) -> list[Path]:
    """Mark outputs of [start, end] and everything downstream for rebuild; returns the marked paths.

    Nothing is deleted: the old files stay readable until the rebuild replaces each one
    atomically, and the whole-history exports follow because their inputs change.
    """
    per_kind = dataset_of(dataset).key == DAY_KIND
    chosen = [(dataset, k) for k in (kinds or KINDS)] if per_kind else [(dataset, None)]
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
