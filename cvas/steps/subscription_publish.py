"""Publishing the subscription view: which state may be folded from, the view and state folders and
their sidecars, the newest-view copy, strays set aside, retention."""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import os
import shutil
from pathlib import Path

import duckdb

from cvas.core import provenance
from cvas.core.catalogue import writer_lock
from cvas.core.freshness import invalidated
from cvas.core.layout import (Layout, as_of_days, days_in_dir, part_stats, parts, sidecar, transaction_digest)
from cvas.core.locking import exclusive
from cvas.core.publish import staged_dir
from cvas.core.schemas import VIEW_KINDS
from cvas.steps.subscription_contract import SubscriptionViewError
from cvas.steps.subscription_parts import write_parts

log = logging.getLogger(__name__)

def state_is_usable(layout: Layout, day: dt.date, marked: set[Path]) -> bool:
    """Whether the published state as of `day` may be folded from: its sidecar (written last, so a
    state killed before it is redone, never used) records the transaction files now present up
    to `day` (a change to any day up to it makes it unusable), every part is the file it recorded
    (size and mtime: a part edited in place is never folded from), and neither its view nor a
    transaction file dated on or before `day` is marked for rebuild."""
    path = layout.subscription_state(day)
    root, key = layout.transactions_root(), f"{day:%Y-%m-%d}"
    if layout.subscriptions(day) in marked or path in marked \
            or any(p.is_relative_to(root) and p.name[:10] <= key for p in marked):
        return False
    meta = provenance.read(layout, path)
    if meta is None or meta.get("transactions") != transaction_digest(layout, day, VIEW_KINDS):
        return False
    return not provenance.parts_damage(meta.get("parts"), part_stats(path))


def newest_usable_state(layout: Layout, as_of: dt.date) -> dt.date | None:
    """The newest state as of a day on or before `as_of` that is usable (state_is_usable)."""
    marked = invalidated(layout)
    for day in sorted((d for d in days_in_dir(layout.subscription_state_root, ".parquet") if d <= as_of),
                      reverse=True):
        if state_is_usable(layout, day, marked):
            return day
    return None


def unusable_view_parts(layout: Layout, base: dt.date) -> set[str]:
    """The parts of the view as of `base` that may not be carried into a later view: those that
    are not the files its sidecar recorded (edited in place, truncated, replaced, missing), or
    every part when the view or its sidecar is gone. They are written again from the state."""
    view = layout.subscriptions(base)
    meta = provenance.read(layout, view)
    names = set(parts(layout.subscription_state(base)))
    if meta is None:
        return names
    recorded, now = meta.get("parts") or {}, part_stats(view)
    return {n for n in names if n not in now or provenance.parts_damage({n: recorded.get(n)}, {n: now[n]})}


def outside_retention(layout: Layout, as_of: dt.date, keep_days: int) -> bool:
    """Whether a view as of `as_of` would be pruned at once (older than the retention window
    that ends at the newest published as-of)."""
    days = as_of_days(layout)
    return bool(days) and as_of <= max(days) - dt.timedelta(days=keep_days)


def publish_latest(layout: Layout) -> dict:
    """Replace the legacy `Parquet_Data/aggregated/subscriptions.parquet` with a copy of the
    newest as-of view, atomically (readers see the old view or the new one; DuckDB, pandas,
    pyarrow and Spark read the folder as one table). A copy, not links: an analyst who edits
    this folder in place changes no snapshot or state of cvas's. Its sidecar records the as-of
    and the parts' hashes, which are the view's (`expect` of `subscriptions_latest` in the
    catalogue: it is fresh only while it is exactly the newest as-of view). Files in the old
    folder that cvas did not write are set aside first (`set_strays_aside`)."""
    with exclusive(writer_lock(layout, "subscriptions")):
        return copy_latest(layout)


def copy_latest(layout: Layout) -> dict:
    """`publish_latest` for a caller holding the subscriptions lock."""
    days = as_of_days(layout)
    if not days:
        raise SubscriptionViewError("no subscription view is published yet: nothing to copy")
    as_of = max(days)
    source, target = layout.subscriptions(as_of), layout.subscriptions_latest
    meta = provenance.read(layout, source)
    problem = "no provenance sidecar" if meta is None else provenance.parts_damage(meta.get("parts"),
                                                                                  part_stats(source))
    if problem:
        raise SubscriptionViewError(f"{source.relative_to(layout.root)}: {problem}; it is rebuilt first "
                                    f"(`cvas backfill --start {as_of} --end {as_of}`)")
    sidecar(layout, target).unlink(missing_ok=True)
    set_strays_aside(layout, target)
    with staged_dir(layout.staging, target) as tmp:
        for path in parts(source).values():
            shutil.copyfile(path, tmp / path.name)
    return record_parts(layout, target, meta["parts"], rows=meta.get("rows"),
                        extra={"as_of": str(as_of), "transactions": meta.get("transactions")})


def _remove_output(layout: Layout, path: Path) -> None:
    """Remove a published view or state (a folder of parts), sidecar first; files in it that
    cvas did not write are set aside, never deleted."""
    sidecar(layout, path).unlink(missing_ok=True)
    set_strays_aside(layout, path)
    shutil.rmtree(path, ignore_errors=True)


def prune_views(layout: Layout, keep_days: int) -> list[dt.date]:
    """Remove as-of views older than `keep_days` days before the newest one; returns their dates.

    The window is anchored on the newest published as-of, not the wall clock, so pruning
    is deterministic. The newest is always kept.
    """
    if keep_days < 1:
        raise ValueError(f"subscriptions_keep_days must be at least 1, got {keep_days}")
    days = as_of_days(layout)
    if not days:
        return []
    cutoff = max(days) - dt.timedelta(days=keep_days)
    pruned = sorted(d for d in days if d <= cutoff)
    for day in pruned:
        path = layout.subscriptions(day)
        _remove_output(layout, path)
        for directory in (path.parent, sidecar(layout, path).parent):
            with contextlib.suppress(OSError):
                directory.rmdir()
    if pruned:
        log.info("subscription views: pruned %d as-of snapshot(s) up to %s (keep %d days)", len(pruned),
                 pruned[-1], keep_days)
    prune_states(layout, cutoff)
    return pruned


def prune_states(layout: Layout, cutoff: dt.date) -> None:
    """Remove the states as of `cutoff` or before (the view retention window), sidecars first;
    the newest state is always kept."""
    days = days_in_dir(layout.subscription_state_root, ".parquet")
    for day in sorted(d for d in days if d <= cutoff and d < max(days)):
        _remove_output(layout, layout.subscription_state(day))


def publish_parts(con: duckdb.DuckDBPyConnection, layout: Layout, as_of: dt.date, sources: dict[str, str],
                  digest: str, *, carry: dt.date | None, folded_from: dt.date | None,
                  writers: int) -> tuple[int, dict[str, int], int]:
    """Write the parts of `sources` (state and view, `writers` at a time), link the other parts
    of the state as of `carry` (`sources` then holds only the parts a fold from it changed;
    without `carry`, every part), publish the view folder, then the state's; returns (view rows,
    subscriptions per status, parts written). The view's sidecar records the state it was folded
    from (`folded_from`).

    The state's old sidecar goes first and its new one is written last: a state is usable only
    once its sidecar names the files it was built from, so one killed anywhere in between is
    redone, never used."""
    target, state = layout.subscriptions(as_of), layout.subscription_state(as_of)
    carried = _carried_parts(layout, carry, set(sources))
    if carried:   # read before the state's sidecar goes: `carry` may be this very day's state
        before_view = provenance.read(layout, layout.subscriptions(carry))["parts"]
        before_state = provenance.read(layout, layout.subscription_state(carry))["parts"]
    sidecar(layout, state).unlink(missing_ok=True)
    set_strays_aside(layout, target)
    set_strays_aside(layout, state)
    with staged_dir(layout.staging, state) as state_tmp:
        with staged_dir(layout.staging, target) as view_tmp:
            written = write_parts(con, as_of, sources, state_tmp, view_tmp, writers)
            for name, (view_part, state_part) in carried.items():
                os.link(view_part, view_tmp / view_part.name)
                os.link(state_part, state_tmp / state_part.name)
        view_meta = {n: {"rows": w["rows"], "hash": w["hash"], "status": w["status"]} for n, w in written.items()}
        state_meta = {n: {"rows": w["state_rows"], "hash": w["state_hash"]} for n, w in written.items()}
        if carried:
            view_meta |= {n: before_view[n] for n in carried}
            state_meta |= {n: before_state[n] for n in carried}
        rows = sum(p["rows"] for p in view_meta.values())
        status: dict[str, int] = {}
        for p in view_meta.values():
            for k, v in p["status"].items():
                status[k] = status.get(k, 0) + v
        record_parts(layout, target, view_meta, rows=rows, extra={
            "as_of": str(as_of), "transactions": digest, "folded_from": str(folded_from) if folded_from else None})
    record_parts(layout, state, state_meta, rows=sum(p["rows"] for p in state_meta.values()),
                 extra={"as_of": str(as_of), "transactions": digest})
    return rows, dict(sorted(status.items())), len(written)


def record_parts(layout: Layout, output: Path, meta: dict[str, dict], *, rows: int, extra: dict) -> dict:
    """Write the sidecar of a published folder output: each part's facts (rows, hash) with its
    [size, mtime_ns] as published (the cheap damage check, `provenance.parts_damage`), and the
    hash of the whole (`parts_hash`). Called just after the folder is published."""
    stats = part_stats(output)
    recorded = {n: p | dict(zip(("size", "mtime_ns"), stats.get(n) or (None, None))) for n, p in meta.items()}
    return provenance.record(layout, output, inputs={}, params={"as_of": extra.get("as_of")}, rows=rows,
                             output_hash=provenance.parts_hash({f"{n}.parquet": p["hash"] for n, p in meta.items()}),
                             extra=extra | {"parts": recorded})


def set_strays_aside(layout: Layout, folder: Path) -> list[Path]:
    """Move every file of the folder output `folder` that is not one of its parts (an analyst's
    file, a copy) to `<data root>/_set_aside/<its path>/<time>/`, with a warning, before cvas
    replaces or removes the folder: readers of the folder never meet it again, and it is kept."""
    try:
        entries = [Path(e.path) for e in os.scandir(folder)]
    except (FileNotFoundError, NotADirectoryError):
        return []
    named = set(parts(folder).values())
    strays = sorted(p for p in entries if p not in named)
    if not strays:
        return []
    dest = layout.set_aside / folder.relative_to(layout.root) / dt.datetime.now().strftime("%Y%m%dT%H%M%S%f")
    dest.mkdir(parents=True, exist_ok=True)
    for path in strays:
        os.replace(path, dest / path.name)
    log.warning("%s: %d file(s) cvas did not write (%s) moved to %s before replacing the folder",
                folder.relative_to(layout.root), len(strays), ", ".join(p.name for p in strays),
                dest.relative_to(layout.root))
    return [dest / p.name for p in strays]


def _carried_parts(layout: Layout, base: dt.date | None, changed: set[str]) -> dict[str, tuple[Path, Path]]:
    """{part: (view file, state file)} of the base's parts the new days leave as they are."""
    if base is None:
        return {}
    views, states = parts(layout.subscriptions(base)), parts(layout.subscription_state(base))
    return {name: (views[name], states[name]) for name in states if name not in changed}
