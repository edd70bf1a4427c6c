"""Whether an output is fresh: present, missing, stale, invalidated, failed or flagged, decided in one place.

`state()` (one output) and `Freshness.state()` (many, after one `prefetch`) apply the same
rule to every dataset of the catalogue, in this order:

1. missing   a published file of the output is absent (failed when its last load failed its
             quality check or its last build failed: `cvas.core.failures`)
2. failed    a reload failed its quality check after the output was published
3. invalidated   `cvas invalidate` / `cvas verify` left a tombstone on it
4. damaged   published bytes that no longer match their own sidecar (decision D14): written
             after it (replaced outside cvas) with another hash; rebuilt, never taken as a reload
5. stale     no sidecar or an unreadable one (decision D13), a recorded setting, listing or input
             that differs from the current one, or a companion output that is absent
6. flagged   present and fresh, but the feed-health check flagged the day (`cvas.steps.feed_health`):
             published, complete, and not rebuilt for it
7. present

Every `complete()`, `bulk_complete`, the status grid, the plan and verify call it; the
whole-history exports' writers call it too, through `Freshness.extension`, to decide whether
the new days can be appended to what they published (fresh as of the last day it holds) or
everything must be rebuilt: no second rule. Directory
scans are cached per `Freshness` object (one scan per directory for a whole range) and a
sidecar is read only when an input is newer than the output or the dataset records values
that must be compared; make a new object to see new files.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cvas.core import provenance
from cvas.core.catalogue import Dataset, Settings, counter_inputs, dataset, day_listing
from cvas.core.failures import failures
from cvas.core.layout import Layout, part_stats, sidecar, tombstone, through
from cvas.core.quality import read_quality

PRESENT, MISSING, STALE, FAILED, INVALID = "present", "missing", "stale", "failed", "invalidated"
FLAGGED = "flagged"
BUILD_FAILED = "last build failed"  # how the reason of a failed build (not a failed quality check) starts
DAMAGED = "damaged"
STATES = (PRESENT, MISSING, STALE, FAILED, INVALID, FLAGGED, DAMAGED)

__all__ = ["DAMAGED", "FAILED", "FLAGGED", "INVALID", "MISSING", "PRESENT", "STALE", "STATES", "Cell", "Extension",
           "Freshness", "Settings", "clear_invalidation", "counter_inputs", "invalidated", "is_invalidated", "state"]


@dataclass(frozen=True)
class Cell:
    """The state of one output and why (empty for present and missing)."""

    state: str
    reason: str = ""

    @property
    def fresh(self) -> bool:
        """Nothing to rebuild (a flagged day is published and complete)."""
        return self.state in (PRESENT, FLAGGED)


def state(layout: Layout, name: str, day: dt.date | None = None, kind: str | None = None,
          settings: Settings = Settings()) -> Cell:
    """The state of one output of catalogue dataset `name` (key: `day`, `kind` as it needs)."""
    return Freshness(layout, settings).state(name, day, kind)


class Freshness:
    """The freshness decision over one data root, with its directory scans cached."""

    def __init__(self, layout: Layout, settings: Settings = Settings()) -> None:
        self.layout = layout
        self.settings = settings
        self._scanned: dict[str, dict[str, os.DirEntry]] = {}
        self._marked: set[Path] | None = None
        self._failures: dict[Path, dict] | None = None
        self._memo: dict[tuple, _Paths] = {}
        self._meta: dict[str, dict[str, Any] | None] = {}
        self._listings: dict[str, dict[str, list[int]]] = {}

    # -- file facts, from the scans ----------------------------------------------------------
    def prefetch(self, name: str, days: Iterable[dt.date], kinds: Iterable[str | None] = (None,)) -> None:
        """Scan once every directory holding the outputs of `name` for `days` (and `kinds`), their
        sidecars, quality reports and in-root inputs, so deciding them needs no further stat."""
        ds = dataset(name)
        dirs: set[str] = set()
        for day in days:
            for kind in kinds:
                paths = self._paths(ds, day, kind)
                dirs.update(os.path.dirname(p) for p in paths.outputs)
                dirs.update(os.path.dirname(p) for n, p in paths.inputs.items() if n not in ds.external)
                if paths.sidecar is not None:
                    dirs.add(os.path.dirname(paths.sidecar))
                if paths.quality is not None:
                    dirs.add(os.path.dirname(paths.quality))
                if paths.health is not None:
                    dirs.add(os.path.dirname(paths.health))
        for directory in dirs - self._scanned.keys():
            self._scanned[directory] = _scan(directory)

    def _paths(self, ds: Dataset, day: dt.date | None, kind: str | None) -> _Paths:
        """The files one decision looks at, computed once per key (path building is most of the cost)."""
        key = (ds.name, day, kind)
        found = self._memo.get(key)
        if found is None:
            outputs = tuple(str(p) for p in ds.outputs(self.layout, day, kind))
            inputs = ds.inputs(self.layout, day, kind, self.settings) if ds.inputs is not None else {}
            found = self._memo[key] = _Paths(
                outputs, {n: str(p) for n, p in inputs.items()},
                str(sidecar(self.layout, Path(outputs[0]))) if ds.sidecar else None,
                str(self.layout.quality(kind, day)) if ds.quality else None,
                str(self.layout.health(kind, day)) if ds.health else None)
        return found

    def stat(self, path: Path | str) -> list[int] | None:
        """[size, mtime_ns] of a file, None when absent: from a scan when its folder was scanned."""
        directory, name = os.path.split(path)
        listing = self._scanned.get(directory)
        if listing is not None:
            entry = listing.get(name)
            try:
                st = entry.stat() if entry is not None else None   # DirEntry caches it
            except FileNotFoundError:
                return None
            return None if st is None else [st.st_size, st.st_mtime_ns]
        try:
            st = os.stat(path)
        except (FileNotFoundError, NotADirectoryError, TypeError):
            return None
        return [st.st_size, st.st_mtime_ns]

    @property
    def marked(self) -> set[Path]:
        if self._marked is None:
            self._marked = invalidated(self.layout)
        return self._marked

    # -- the decision --------------------------------------------------------------------------
    def state(self, name: str, day: dt.date | None = None, kind: str | None = None) -> Cell:
        """Present, missing, failed, invalidated or stale (with the reason), in the module's order."""
        ds = dataset(name)
        paths = self._paths(ds, day, kind)
        if any(self.stat(p) is None for p in paths.outputs):
            failed = self._failed(paths, missing=True) or self._build_failed(paths)
            return Cell(FAILED, failed) if failed else Cell(MISSING)
        if ds.quality and (failed := self._failed(paths, missing=False)):
            return Cell(FAILED, f"last reload failed: {failed}; the previous partition is kept")
        if self.marked and any(Path(p) in self.marked for p in paths.outputs):
            return Cell(INVALID, "invalidated")
        if not ds.sidecar:
            return Cell(PRESENT)
        if ds.parted:   # folders of parts: a stat per part against its sidecar, on every path
            found = self._parts_cell(paths)
            if found is not None:
                return found
        # per-day outputs only: each has one writer, which holds its task lock from publishing it to
        # recording its sidecar; a whole-history output is rewritten by several (checked by verify)
        damage = self._damaged(paths.outputs[0], paths.sidecar) if ds.per_day and not ds.parted else ""
        if damage:
            return Cell(DAMAGED, damage)
        changed = self._stale(ds, day, paths)
        if changed:
            return Cell(STALE, changed)
        if paths.health is not None and self.stat(paths.health) is not None:
            return Cell(FLAGGED, _health_reason(paths.health))
        return Cell(PRESENT)

    def _parts_cell(self, paths: _Paths) -> Cell | None:
        """Stale when an output folder has no readable sidecar (a build killed before recording it),
        damaged when a part is not the file its sidecar recorded (edited in place, truncated,
        replaced, removed or added: `provenance.parts_damage`); None when every part is as recorded."""
        for i, output in enumerate(paths.outputs):
            side = str(sidecar(self.layout, Path(output)))
            meta = self._read(side)
            name = os.path.relpath(output, self.layout.root)
            if meta is None:
                what = (f"unreadable provenance sidecar {os.path.relpath(side, self.layout.root)}" if self.stat(side)
                        else "no provenance sidecar")
                return Cell(STALE, what if i == 0 else f"{name}: {what}")
            problem = provenance.parts_damage(meta.get("parts"), part_stats(Path(output)))
            if problem:
                return Cell(DAMAGED, f"{name}: {problem}")
        return None

    def _build_failed(self, paths: _Paths) -> str | None:
        """The error of the output's last failed build, when it has one (one listing of `_failed/`)."""
        if self._failures is None:
            self._failures = failures(self.layout)
        record = self._failures.get(Path(paths.outputs[0])) if self._failures else None
        if record is None:
            return None
        return (f"{BUILD_FAILED} ({record.get('task')}, {record.get('at')}): {record.get('error')}: "
                f"{record.get('message')}")

    def _failed(self, paths: _Paths, missing: bool) -> str | None:
        """Why the last load of a day failed, when it did (and, for a published partition, after it)."""
        report = paths.quality
        if report is None:
            return None
        st = self.stat(report)
        if st is None or (not missing and st[1] <= self.stat(paths.outputs[0])[1]):
            return None  # a load publishes its report before its partition: only a failed reload is newer
        found = read_quality(Path(report))
        if found is not None and found.get("status") == "failed":
            return f"reject ratio {found.get('reject_ratio', 0):.2%} over {found.get('max_reject_ratio')}"
        return None

    def _stale(self, ds: Dataset, day: dt.date | None, paths: _Paths) -> str:
        """Why a published output is stale ('' when it is not)."""
        if self.stat(paths.sidecar) is None:
            return "no provenance sidecar"
        current = {n: self.stat(p) for n, p in paths.inputs.items()}
        own = self.stat(paths.outputs[0])
        if not (ds.expect or ds.listing or set(ds.external) & current.keys()) \
                and all(c is not None and c[1] <= own[1] for c in current.values()):
            return ""  # every input is older than the output: nothing can have changed
        meta = self._sidecar(paths)
        if meta is None:  # decision D13: an unreadable sidecar is a missing one
            return f"unreadable provenance sidecar {os.path.relpath(paths.sidecar, self.layout.root)}"
        changed = [key for key, now in ds.expect if _dotted(meta, key) != now(self.layout, day, self.settings)]
        if ds.listing is not None:
            key, per_day = ds.listing
            recorded, now = meta.get(key) or {}, self.listing(per_day)
            if day is not None:  # the day it must include; days after it do not count
                if f"{day:%Y-%m-%d}" not in recorded:
                    return f"does not include {day}"
                recorded, now = through(recorded, day), through(now, day)
            if recorded != now:
                changed.append(per_day)
        recorded = meta.get("inputs") or {}
        changed += [n for n, p in paths.inputs.items() if not provenance.same_stat(recorded.get(n), p, current[n])]
        # a damaged input (decision D14) is rebuilt from its own inputs first: never a reload
        damaged = [n for n in changed if n in paths.inputs and n not in ds.external
                   and self._damaged(paths.inputs[n], str(sidecar(self.layout, Path(paths.inputs[n]))))]
        changed = [n for n in changed if n not in damaged]
        reasons = [f"{', '.join(sorted(changed))} changed"] if changed else []
        reasons += [f"{', '.join(sorted(damaged))} damaged (rebuilt first)"] if damaged else []
        return "; ".join(reasons)

    def _sidecar(self, paths: _Paths) -> dict[str, Any] | None:
        """The output's sidecar, read once per decision object."""
        return self._read(paths.sidecar)

    def _read(self, path: str) -> dict[str, Any] | None:
        if path not in self._meta:
            self._meta[path] = provenance.read_json(Path(path))
        return self._meta[path]

    def _damaged(self, output: str, side_path: str) -> str:
        """Decision D14: why a published output is damaged ('' when it is not): its bytes differ from
        the hash its own sidecar recorded. Only an output written after its sidecar (replaced
        outside cvas: cvas writes the sidecar just after the output) is hashed."""
        side, own = self.stat(side_path), self.stat(output)
        if side is None or own is None or own[1] <= side[1]:
            return ""
        recorded = (self._read(side_path) or {}).get("output_hash")
        if not (isinstance(recorded, str) and recorded.startswith("sha256:")):
            return ""
        if provenance.file_hash(Path(output)) == recorded:
            return ""
        return "its bytes differ from the hash its sidecar recorded (replaced outside cvas)"

    def listing(self, name: str) -> dict[str, list[int]]:
        """The per-day files of `name` as `day_listing` gives them, scanned once per object."""
        if name not in self._listings:
            self._listings[name] = day_listing(self.layout, name)
        return self._listings[name]

    def extension(self, name: str) -> Extension:
        """How to bring a whole-history dataset with a listing (the counter and user-base exports)
        up to date: append the days listed after the last day its outputs hold when they are
        fresh, by `state`, as of that day (same settings, inputs and outputs as recorded, and
        exactly the recorded per-day files up to that day); else rebuild from every per-day file
        (an older day rebuilt, added or removed, a changed input or setting, an output missing,
        edited or published without its sidecar). The writer decides under its lock and records
        `listing`, the scan the decision was made on."""
        ds = dataset(name)
        key, per_day = ds.listing
        now = self.listing(per_day)
        paths = self._paths(ds, None, None)
        meta = self._sidecar(paths) if self.stat(paths.sidecar) is not None else None
        recorded = meta.get(key) if meta is not None else None
        if not recorded or not isinstance(recorded, dict):
            return Extension(now, None, "no per-day files recorded")
        last = max(recorded)
        try:
            cell = self.state(name, dt.date.fromisoformat(last))
        except ValueError:
            return Extension(now, None, f"the sidecar records {last!r}, not a day")
        if not cell.fresh:
            return Extension(now, None, f"{cell.state} as of {last}" + (f": {cell.reason}" if cell.reason else ""))
        return Extension(now, sorted(d for d in now if d > last))


@dataclass(frozen=True)
class Extension:
    """`Freshness.extension`: the per-day files now listed, and the days to append to the
    published outputs (None: rebuild them from every listed day, for `reason`)."""

    listing: dict[str, list[int]]
    days: list[str] | None
    reason: str = ""


@dataclass(frozen=True)
class _Paths:
    outputs: tuple[str, ...]
    inputs: dict[str, str]
    sidecar: str | None
    quality: str | None
    health: str | None


def _scan(directory: str) -> dict[str, os.DirEntry]:
    """The entries of a folder by name, from one listing; each is stat'ed only when a decision
    asks for it (a per-day folder of years holds thousands of files, a decision needs a few)."""
    try:
        return {entry.name: entry for entry in os.scandir(directory)}
    except (FileNotFoundError, NotADirectoryError):
        return {}


def _health_reason(path: str) -> str:
    """The reasons of a feed-health verdict ("feed flagged" when it cannot be read)."""
    flags = (provenance.read_json(Path(path)) or {}).get("flags") or {}
    return "; ".join(f"{reason}: {detail}" for reason, detail in flags.items()) or "feed flagged"


def _dotted(meta: dict[str, Any], key: str) -> Any:
    value: Any = meta
    for part in key.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value


# -- listings and invalidation marks ---------------------------------------------------------

def invalidated(layout: Layout) -> set[Path]:
    """Every output currently marked for rebuild (usually none: one empty listing)."""
    root = layout.invalid_root
    if not root.exists():
        return set()
    return {layout.root / p.relative_to(root) for p in root.rglob("*") if p.is_file()}


def is_invalidated(layout: Layout, output: Path) -> bool:
    return tombstone(layout, output).exists()


def clear_invalidation(layout: Layout, output: Path) -> None:
    """Called once `output` has been rebuilt and published."""
    tombstone(layout, output).unlink(missing_ok=True)
