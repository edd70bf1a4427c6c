"""Integrity of what is published: every output of a range checked against its provenance sidecar and its contract."""

from __future__ import annotations

import re
import datetime as dt
import logging
import shutil
import tempfile
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from cvas.core import provenance
from cvas.core.catalogue import strays
from cvas.core.freshness import FAILED, MISSING, Freshness
from cvas.core.layout import Layout, as_of_days, part_stats, parts
from cvas.core.quality import read_quality
from cvas.steps.master import MasterFormatError, read_master_csv
from cvas.core.schemas import COUNTER_SCHEMA, KINDS, SERVICE_EXPORT_COLUMNS, spec
from cvas.ops.file_checks import csv_problem, rejects_problem, view_difference
from cvas.ops.status import mark_for_rebuild
from cvas.steps.subscriptions import SUBSCRIPTION_SCHEMA, write_full_view
from cvas.steps.user_base import EXPORT_HEADERS, USER_BASE_DAILY_SCHEMA

log = logging.getLogger(__name__)

_HASH_WORKERS = 4


@dataclass(frozen=True)
class Finding:
    """One output that is missing, unreadable or not what its sidecar says.

    `rebuild` is the published output whose rebuild repairs it (a tombstone on it makes the
    next backfill rebuild it and everything downstream); None when a backfill builds it
    anyway (a missing output) or retries it (a failed load).
    """

    path: Path
    problem: str
    rebuild: Path | None = None


@dataclass
class VerifyReport:
    """What `verify_range` checked and found."""

    start: dt.date
    end: dt.date
    checked: int = 0
    findings: list[Finding] = field(default_factory=list)
    unverified: list[Path] = field(default_factory=list)   # no recorded hash: checked for readability only

    @property
    def ok(self) -> bool:
        return not self.findings


class _Hashes:
    """sha256 of files, computed once each, several at a time."""

    def __init__(self, paths: Iterable[Path]) -> None:
        existing = sorted({p for p in paths if p.is_file()})
        with ThreadPoolExecutor(max_workers=_HASH_WORKERS) as pool:
            self._done = dict(zip(existing, pool.map(_safe_hash, existing)))

    def __call__(self, path: Path) -> str | None:
        if path not in self._done:
            self._done[path] = _safe_hash(path)
        return self._done[path]


def _safe_hash(path: Path) -> str | None:
    try:
        return provenance.file_hash(path)
    except OSError:
        return None


def _days(start: dt.date, end: dt.date) -> list[dt.date]:
    if end < start:
        raise ValueError(f"verify range is empty: end {end} is before start {start}")
    return [start + dt.timedelta(days=i) for i in range((end - start).days + 1)]


def _recorded_hash(meta: dict[str, Any] | None) -> str | None:
    value = (meta or {}).get("output_hash")
    return value if isinstance(value, str) and value.startswith("sha256:") else None


def _input_hash(meta: dict[str, Any] | None, name: str) -> str | None:
    value = ((meta or {}).get("inputs") or {}).get(name) or {}
    return value.get("hash") if isinstance(value, dict) else None


class _Verifier:
    def __init__(self, layout: Layout, report: VerifyReport, hashes: _Hashes) -> None:
        self.layout = layout
        self.report = report
        self.hash = hashes
        self.fresh = Freshness(layout)  # missing and failed outputs: the one freshness decision

    def find(self, path: Path, problem: str, rebuild: Path | None) -> None:
        self.report.findings.append(Finding(path, problem, rebuild))

    def parquet(self, path: Path, schema: pa.Schema, meta: dict[str, Any] | None, rebuild: Path,
                *, sidecar_required: bool = True) -> int | None:
        """Check one published Parquet file; returns its row count when it is sound."""
        self.report.checked += 1
        recorded = _recorded_hash(meta)
        if meta is None and sidecar_required:
            self.find(path, f"{provenance.sidecar_problem(self.layout, path)}: its content cannot be verified", rebuild)
            return None
        if recorded is not None and self.hash(path) != recorded:
            self.find(path, "content differs from the hash recorded when it was published", rebuild)
            return None
        # a subscription view is a folder of parts (cvas.steps.subscriptions.parts), each in the contract
        files = list(parts(path).values()) if path.is_dir() else [path]
        rows = 0
        for file in files:
            try:
                pf = pq.ParquetFile(file)
                found = pf.schema_arrow.remove_metadata()
                rows += pf.metadata.num_rows
                if recorded is None:
                    # nothing to compare the bytes with: decode every page instead
                    pf.read()
            except Exception as exc:  # pyarrow raises several kinds for a damaged file
                self.find(path, f"{file.name}: not a readable Parquet file ({type(exc).__name__})", rebuild)
                return None
            if not found.equals(schema):
                self.find(path, f"{file.name}: schema differs from the contract", rebuild)
                return None
        if recorded is None:
            self.report.unverified.append(path)
        if meta is not None and isinstance(meta.get("rows"), int) and meta["rows"] != rows:
            self.find(path, f"{rows} rows, its sidecar says {meta['rows']}", rebuild)
            return None
        return rows

    def copy(self, path: Path, recorded: str | None, what: str, rebuild: Path) -> None:
        """Check an input copy (landing CSV, snapshot) against the hash its consumer recorded."""
        self.report.checked += 1
        if recorded is None:
            self.report.unverified.append(path)
            return
        if self.hash(path) != recorded:
            self.find(path, f"differs from the {what}", rebuild)

    # -- per day -------------------------------------------------------------------------
    def transactions(self, kind: str, day: dt.date) -> None:
        lay = self.layout
        raw, tx, quality, rejects = lay.raw(kind, day), lay.transactions(kind, day), lay.quality(kind, day), \
            lay.rejects(kind, day)
        report = read_quality(quality)
        if self.fresh.state("transactions", day, kind).state in (MISSING, FAILED) and not tx.exists():
            self.report.checked += 1
            if report is not None and report.get("status") == "failed":
                self.find(tx, f"not loaded: the last load failed its quality check (reject ratio "
                              f"{report.get('reject_ratio')} > {report.get('max_reject_ratio')}); "
                              f"a backfill retries it", None)
            else:
                self.find(tx, "missing", None)
            return
        meta = provenance.read(lay, tx)
        if raw.exists():
            self.copy(raw, _input_hash(meta, "raw"), "extract its partition was loaded from", raw)
        else:
            self.report.checked += 1
            self.find(raw, "landing copy missing (the replayable record of the day)", tx)
        rows = self.parquet(tx, spec(kind).schema, meta, tx)

        self.report.checked += 1
        if report is None:
            self.find(quality, "quality report missing or not JSON", tx)
        elif not {"rows_read", "rows_written", "rejected", "status"} <= report.keys():
            self.find(quality, "quality report lacks its fields", tx)
        elif report["status"] == "failed":
            self.find(quality, "the last reload failed its quality check; the previous partition is kept", None)
        elif rows is not None and report["rows_written"] != rows:
            self.find(quality, f"says {report['rows_written']} rows written, the partition has {rows}", tx)

        self.report.checked += 1
        problem = rejects_problem(rejects, report.get("rejected") if report is not None else None)
        if problem:
            self.find(rejects, problem, tx)

    def counters(self, day: dt.date) -> None:
        path = self.layout.daily_counters(day)
        if self.fresh.state("daily_counters", day).state == MISSING:
            self.report.checked += 1
            self.find(path, "missing", None)
            return
        self.parquet(path, COUNTER_SCHEMA, provenance.read(self.layout, path), path)

    def user_base(self, day: dt.date) -> None:
        lay = self.layout
        snapshot, daily = lay.user_base_snapshot(day), lay.user_base_daily(day)
        if self.fresh.state("user_base_daily", day).state == MISSING:
            self.report.checked += 1
            self.find(daily, "missing", None)
            return
        meta = provenance.read(lay, daily)
        if snapshot.exists():
            self.copy(snapshot, _input_hash(meta, "snapshot"), "snapshot its aggregate was built from", snapshot)
        else:
            self.report.checked += 1
            self.find(snapshot, "snapshot copy missing", daily)
        self.parquet(daily, USER_BASE_DAILY_SCHEMA, meta, daily)

    def subscriptions(self, day: dt.date) -> None:
        """A kept as-of view and its state: each part the file its sidecar recorded (stat, then
        hash: a part edited in place is shared by every snapshot holding it), readable, in the contract."""
        lay = self.layout
        view, state = lay.subscriptions(day), lay.subscription_state(day)
        if not view.exists():   # as-of views outside the retention window are pruned on purpose
            return
        meta = provenance.read(lay, view)
        if not self.parts(view, meta, view):
            return
        rows = self.parquet(view, SUBSCRIPTION_SCHEMA, meta, view)
        if rows is not None and state.exists():
            self.report.checked += 1
            self.parts(state, provenance.read(lay, state), view)

    def parts(self, path: Path, meta: dict[str, Any] | None, rebuild: Path) -> bool:
        """Whether every part of a folder output is the file its sidecar recorded, by stat and by
        hash; a finding (rebuilding `rebuild`) otherwise."""
        if meta is None:
            self.find(path, f"{provenance.sidecar_problem(self.layout, path)}: its parts cannot be verified", rebuild)
            return False
        recorded = meta.get("parts") or {}
        problem = provenance.parts_damage(recorded, part_stats(path))
        if not problem:
            bad = [n for n, f in parts(path).items() if self.hash(f) != (recorded.get(n) or {}).get("hash")]
            problem = "; ".join(f"{n}.parquet differs from the hash recorded when it was published" for n in bad)
        if problem:
            self.find(path, f"damaged: {problem}", rebuild)
        return not problem

    # -- whole history -------------------------------------------------------------------
    def master(self) -> None:
        path = self.layout.master_cpc
        if not path.exists():
            self.report.checked += 1
            self.find(path, "missing", None)
            return
        self.report.checked += 1
        meta = provenance.read(self.layout, path)
        recorded = _recorded_hash(meta)
        if recorded is None:
            self.report.unverified.append(path)
        elif self.hash(path) != recorded:
            self.find(path, "content differs from the hash recorded when it was published", path)
            return
        try:
            read_master_csv(path)
        except (MasterFormatError, OSError, UnicodeDecodeError) as exc:
            self.find(path, f"not a readable MASTERCPC.csv ({type(exc).__name__})", path)

    def counter_exports(self) -> None:
        lay = self.layout
        if not lay.counters_cpc.exists():
            self.report.checked += 1
            self.find(lay.counters_cpc, "missing", None)
        else:
            self.parquet(lay.counters_cpc, COUNTER_SCHEMA, provenance.read(lay, lay.counters_cpc), lay.counters_cpc)
        self.report.checked += 1
        path = lay.counters_service
        if not path.exists():
            self.find(path, "missing", None)
            return
        self.report.unverified.append(path)   # it has no sidecar of its own
        problem = csv_problem(path, SERVICE_EXPORT_COLUMNS, ",")
        if problem:
            self.find(path, problem, path)

    def user_base_exports(self) -> None:
        lay = self.layout
        meta = provenance.read(lay, lay.user_base_export("service"))
        for by, header in EXPORT_HEADERS.items():
            path = lay.user_base_export(by)
            self.report.checked += 1
            if not path.exists():
                self.find(path, "missing", None)
                continue
            self.report.unverified.append(path)   # sizes and line counts are recorded, no hash
            if meta is None:
                self.find(path, f"{provenance.sidecar_problem(lay, lay.user_base_export('service'))}: its content "
                               "cannot be verified", path)
                continue
            size = ((meta.get("outputs") or {}).get(path.name) or [None])[0]
            if size is not None and path.stat().st_size != size:
                self.find(path, f"{path.stat().st_size} bytes, its sidecar says {size}", path)
                continue
            problem = csv_problem(path, header, "|", (meta.get("lines") or {}).get(by))
            if problem:
                self.find(path, problem, path)

    def latest_view_as_built_in_full(self) -> None:
        """The latest view (it is folded from a state day after day) rebuilt from every
        transaction file and compared with the published one; a difference names the first
        subscription and column, and marks the as-of view for rebuild (a marked view is
        rebuilt in full)."""
        lay = self.layout
        path = lay.subscriptions_latest
        as_of = (provenance.read(lay, path) or {}).get("as_of")
        if not path.exists() or not as_of:
            return   # reported by subscriptions_latest
        self.report.checked += 1
        source = lay.subscriptions(dt.date.fromisoformat(as_of))
        scratch = Path(tempfile.mkdtemp(prefix="verify-view.", dir=_staging(lay)))
        try:
            write_full_view(lay, dt.date.fromisoformat(as_of), scratch / "full.parquet")   # a folder of parts
            problem = view_difference(path, scratch / "full.parquet")
        except (OSError, pa.ArrowException, duckdb.Error) as exc:
            problem = f"cannot be compared with a full build ({type(exc).__name__})"
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        if problem:
            self.find(path, f"differs from the view as of {as_of} built in full: {problem}",
                      source if source.exists() else path)

    def subscriptions_latest(self) -> None:
        """The newest-view copy: its parts as recorded, and exactly the newest as-of view."""
        lay = self.layout
        path = lay.subscriptions_latest
        self.report.checked += 1
        if not path.exists():
            self.find(path, "missing", None)
            return
        meta = provenance.read(lay, path)
        if not self.parts(path, meta, path):
            return
        newest = max(as_of_days(lay), default=None)
        source = provenance.read(lay, lay.subscriptions(newest)) if newest else None
        if newest is None or source is None:
            return   # reported with the as-of views
        if meta.get("as_of") != str(newest) or meta.get("output_hash") != source.get("output_hash"):
            self.find(path, f"is the view as of {meta.get('as_of')}, not a copy of the newest as-of view "
                            f"({newest})", path)


def _staging(layout: Layout) -> Path:
    layout.staging.mkdir(parents=True, exist_ok=True)
    return layout.staging


def _candidates(layout: Layout, days: list[dt.date]) -> list[Path]:
    """Every file the checks may hash (hashed up front, in parallel)."""
    paths = [layout.master_cpc, layout.counters_cpc, *parts(layout.subscriptions_latest).values()]
    for day in as_of_days(layout):
        paths += [*parts(layout.subscriptions(day)).values(), *parts(layout.subscription_state(day)).values()]
    for day in days:
        paths += [layout.daily_counters(day), layout.user_base_snapshot(day), layout.user_base_daily(day)]
        for kind in KINDS:
            paths += [layout.raw(kind, day), layout.transactions(kind, day)]
    return paths


def verify_range(layout: Layout, start: dt.date, end: dt.date) -> VerifyReport:
    """Check every published output of [start, end] and the whole-history exports.

    Per day: each kind's landing copy (against the hash its partition's sidecar recorded),
    partition (its own recorded hash, readable, the kind's schema, the recorded row count),
    quality report (agrees with the partition) and rejects file (agrees with the report);
    the counters; the NBS snapshot copy and its aggregate; the as-of subscription view when
    it is kept. Then MASTERCPC.csv, Counters_CPC.parquet, Counters_Service.csv, the three
    user-base exports (sizes and line counts recorded in their sidecar) and the latest
    subscription view, which is also rebuilt in full and compared with the published one (when
    the range's transaction partitions verified clean). A missing output is a finding too. Reads only; see `mark_findings`.
    """
    days = _days(start, end)
    report = VerifyReport(start, end)
    v = _Verifier(layout, report, _Hashes(_candidates(layout, days)))
    for day in days:
        for kind in KINDS:
            v.transactions(kind, day)
        v.counters(day)
        v.user_base(day)
    for day in sorted(as_of_days(layout)):   # every kept snapshot: a damaged part may be shared by several
        v.subscriptions(day)
    v.master()
    v.counter_exports()
    v.user_base_exports()
    v.subscriptions_latest()
    root = layout.transactions_root()
    if not any(f.path.is_relative_to(root) for f in report.findings):
        v.latest_view_as_built_in_full()   # a full build over damaged partitions proves nothing
    for path in strays(layout):      # never read, but an operator who put it there expects it to be
        report.findings.append(Finding(path, "not a file the layout names: cvas never reads it "
                                             "(move it out of the dataset folder)"))
    for f in report.findings:
        log.info("verify: %s: %s", _rel(layout, f.path), f.problem)
    log.log(logging.WARNING if report.findings else logging.INFO,
            "verify %s..%s: %d outputs checked, %d problem(s), %d without a recorded hash", start, end,
            report.checked, len(report.findings), len(report.unverified))
    return report


def mark_findings(layout: Layout, report: VerifyReport) -> list[Path]:
    """Mark for rebuild (tombstones, see `cvas.ops.status.invalidate`) every output whose rebuild
    repairs a finding; the files stay readable until the next backfill replaces them."""
    marked: list[Path] = []
    for f in report.findings:
        if f.rebuild is not None and f.rebuild not in marked:
            mark_for_rebuild(layout, f.rebuild)
            marked.append(f.rebuild)
    for path in marked:
        log.info("verify: marked %s for rebuild", _rel(layout, path))
    return marked


def _rel(layout: Layout, path: Path) -> str:
    try:
        return str(Path(path).relative_to(layout.root))
    except ValueError:
        return str(path)


def format_report(layout: Layout, report: VerifyReport, marked: list[Path] | None = None) -> str:
    """One line per problem, then a summary that says what to run next."""
    lines = [f"{_rel(layout, f.path)}: {f.problem}" for f in report.findings]
    summary = (f"verify {report.start}..{report.end}: {report.checked} outputs checked, "
               f"{len(report.findings)} problem(s)")
    if report.unverified:
        summary += f"; {len(report.unverified)} without a recorded hash (checked for readability only)"
    lines.append(summary)
    start, end = repair_range(layout, report, marked or [])
    if marked:
        lines.append(f"marked {len(marked)} output(s) for rebuild; `cvas backfill --start {start} "
                     f"--end {end}` rebuilds them and everything built from them")
    elif report.findings:
        lines.append(f"`cvas backfill --start {start} --end {end}` builds what is missing")
    return "\n".join(lines)


def repair_range(layout: Layout, report: VerifyReport, marked: list[Path]) -> tuple[dt.date, dt.date]:
    """The range of the backfill that repairs the findings: the verified range, widened to the day
    of every marked output (a kept as-of view outside the range may share a damaged part)."""
    days = [dt.date.fromisoformat(m.group(0)) for p in marked
            if (m := _DAY.search(_rel(layout, p)))]
    return min([report.start, *days]), max([report.end, *days])


_DAY = re.compile(r"\d{4}-\d{2}-\d{2}")
