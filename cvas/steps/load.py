"""One day's raw extract CSV of one kind → a typed, validated, deduplicated Arrow table and its Parquet partition."""

from __future__ import annotations

import csv
import datetime as dt
import logging
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from cvas.core.csvcells import safe_cell
from cvas.core.batch import DaysFailed, each_day
from cvas.core.publish import publish_parquet, published_together, release_cache, staged
from cvas.core.quality import write_quality
from cvas.core.schemas import TS, spec

from cvas.steps.extract_dedup import dedup_sorted
from cvas.core.csvlines import map_file
from cvas.steps.extract_file import CUT_REASON, check_file, last_record_cut_in_quotes, read_strings
from cvas.steps.extract_rejects import collect_rejects
from cvas.steps.extract_types import Check, any_failed, validate
from cvas.steps.load_contract import (NO_DICTIONARY, REJECT_COLUMNS, LoadResult, Reject,
                                      RejectRatioExceeded)

log = logging.getLogger(__name__)

def parse_extract(kind: str, day: dt.date, path: Path, max_reject_ratio: float = 0.01) -> LoadResult:
    """Parse, validate and deduplicate one day's raw extract of `kind`. Pure: writes nothing.

    The file is the legacy CSV (legacy rule L3.3 column order, PostgreSQL COPY conventions); a
    UTF-8 BOM, CRLF or CR line ends and quoted fields with commas or newlines are accepted.
    The header must be the kind's column names in order (BOM and surrounding whitespace
    stripped, case-sensitive). Null markers: unquoted empty, `""`, `NULL`, `null`.

    Values are typed per `cvas.core.schemas`: ints must be `-?[0-9]+` within int64; floats
    decimal or exponent notation and finite; timestamps `YYYY-MM-DD`, optionally followed by
    ` ` or `T` and `HH:MM:SS[.ffffff]` (naive; offsets are rejected); `tmuserid`/`msisdn`
    stay text. A row is rejected, with a reason, when: its field count is wrong; the file ends
    inside its quoted field (a truncated file); a value does not parse; `rev`/`rfnd_amount`
    is negative; a number is outside its plausible range (decision D15, `NUMERIC_RANGES`);
    `trans_type_id` is not the kind's; `instant_rfnd` is not `t`/`f`; the primary date is
    null or not on `day`; a key column is null (except PPD `subscription_id`, RFND `sbnid`).
    A row's reason lists all its problems; it is counted under the class of the first.

    Dedup (legacy rule L7.6 keys, decisions D1, D16): only exact copies merge (`duplicates_removed`);
    rows sharing a key but differing in another column are all kept, counted as
    `key_conflicts` and logged (two renewals at the repeated DST hour are two charges).

    The table has exactly `spec.schema` (no `year_month`: that is the directory name) and is
    sorted by the key columns (the primary date first), then every other column in file
    order, nulls last (`sort_columns`).

    The report (JSON-serialisable): kind, day, source_file, rows_read (data records),
    rows_written, duplicates_removed, key_conflicts, rejected, rejected_by_reason (class →
    rows), reject_ratio (rejected / rows_read, 0 for an empty day), status ("failed" when
    reject_ratio > max_reject_ratio, else "ok") and max_reject_ratio. Nothing is raised for
    the ratio here; `load_day` does.
    """
    ks = spec(kind)
    path = Path(path)
    data = map_file(path)
    names = ks.names
    body_start = check_file(path, data, names)

    raw, bad_texts = read_strings(path, data, body_start, names)
    n_bad_fields = len(bad_texts)
    checks, typed = validate(ks, day, raw)
    if last_record_cut_in_quotes(data, body_start, raw.num_rows, len(names)):
        cut = np.zeros(raw.num_rows, dtype=bool)
        cut[-1] = True
        # first, so that the row's reason class says what happened to it
        checks.insert(0, Check("truncated_record", names[0], cut, lambda v: CUT_REASON))
    bad = any_failed(checks, raw.num_rows)
    n_bad_rows = int(bad.sum()) if bad is not None else 0

    rejects: list[Reject] = []
    if n_bad_rows or n_bad_fields:
        rejects = collect_rejects(ks, path, data, body_start, raw, checks, bad, bad_texts)

    if n_bad_rows:
        typed = typed.filter(pa.array(~bad))
    table, duplicates, conflicts = dedup_sorted(ks, typed)
    if conflicts:
        log.warning("%s %s from %s: %d row(s) share their key (%s) with another row and differ in another column: "
                    "all kept (decision D16)", kind, day, path, conflicts, ", ".join(ks.key))

    rows_read = raw.num_rows + n_bad_fields
    by_reason = Counter(r.reason_class for r in rejects)
    ratio = len(rejects) / rows_read if rows_read else 0.0
    report = {
        "kind": kind,
        "day": day.isoformat(),
        "source_file": str(path),
        "rows_read": rows_read,
        "rows_written": table.num_rows,
        "duplicates_removed": duplicates,
        "key_conflicts": conflicts,
        "rejected": len(rejects),
        "rejected_by_reason": dict(sorted(by_reason.items())),
        "reject_ratio": round(ratio, 6),
        "status": "failed" if rows_read and ratio > max_reject_ratio else "ok",
        "max_reject_ratio": max_reject_ratio,
    }
    log.info("parsed %s %s from %s: %d rows read, %d written, %d duplicates removed (%d key conflicts), "
             "%d rejected", kind, day, path, rows_read, table.num_rows, duplicates, conflicts, len(rejects))
    return LoadResult(table, rejects, report)


def load_day(kind: str, day: dt.date, raw: Path, out: Path, rejects_path: Path, quality_path: Path,
             staging: Path, max_reject_ratio: float = 0.01) -> dict[str, Any]:
    """Load one day's raw extract into its Parquet partition; return the quality report.

    Publishes, each atomically through `staging`: the rejects CSV (always, header only when
    there are none), the quality report JSON, then — last, so that its presence implies the
    report exists — the Parquet file (zstd, statistics), checked by re-reading its row count
    and schema before the rename. Over the reject limit, the rejects and the report (status
    "failed") are published, the Parquet is not (a previous one stays as it was) and
    `RejectRatioExceeded` is raised. A file-level problem raises `ExtractFormatError` and
    publishes nothing.
    """
    result = parse_extract(kind, day, raw, max_reject_ratio=max_reject_ratio)
    report = result.report
    write_rejects(staging, Path(rejects_path), result.rejects)
    write_quality(staging, quality_path, report)

    if report["status"] != "ok":
        top = sorted(report["rejected_by_reason"].items(), key=lambda kv: (-kv[1], kv[0]))[:3]
        message = (f"{raw}: {report['rejected']} of {report['rows_read']} rows rejected, ratio "
                   f"{report['reject_ratio']:.4f} > limit {max_reject_ratio:.4f}; top reasons: "
                   + ", ".join(f"{k}={v}" for k, v in top) + f"; rejects in {rejects_path}")
        log.error("%s", message)
        raise RejectRatioExceeded(message, report)

    write_partition(staging, Path(out), result.table, spec(kind).schema)
    log.info("loaded %s %s: %d rows read, %d written, %d duplicates removed, %d rejected -> %s",
             kind, day, report["rows_read"], report["rows_written"], report["duplicates_removed"],
             report["rejected"], out)
    return report


def write_rejects(staging: Path, target: Path, rejects: list[Reject]) -> None:
    """Publish the rejects CSV (`source_file,line,reason,record`, RFC 4180 quoting, text cells safe
    for spreadsheets: D18)."""
    with staged(staging, target) as tmp:
        with open(tmp, "w", encoding="utf-8", newline="") as fh:
            writer = csv.writer(fh, lineterminator="\n")
            writer.writerow(REJECT_COLUMNS)
            writer.writerows((safe_cell(r.source_file), r.line, safe_cell(r.reason), safe_cell(r.record))
                             for r in rejects)


def write_partition(staging: Path, target: Path, table: pa.Table, schema: pa.Schema) -> None:
    """Publish one Parquet file whose schema is exactly `schema`, validated before the rename."""
    publish_parquet(staging, target, table, schema,
                    use_dictionary=[f.name for f in schema if f.name not in NO_DICTIONARY and f.type != TS])


def load_into_layout(layout, kind: str, day: dt.date, max_reject_ratio: float = 0.01) -> dict[str, Any]:
    """Load the landing copy of (kind, day) into its partition under `layout` and record the
    partition's provenance (the raw file it came from). Returns the quality report."""
    from cvas.core import provenance

    read = provenance.fingerprints({"raw": layout.raw(kind, day)})
    report = load_day(kind, day, layout.raw(kind, day), layout.transactions(kind, day), layout.rejects(kind, day),
                      layout.quality(kind, day), layout.staging, max_reject_ratio=max_reject_ratio)
    provenance.record(layout, layout.transactions(kind, day), inputs=read,
                      params={"date": str(day), "kind": kind}, rows=report["rows_written"],
                      extra={"quality": {k: report[k] for k in ("rows_read", "rejected", "duplicates_removed")}})
    release_cache(layout.raw(kind, day))
    return report


def load_days_into_layout(layout, kind: str, days: list[dt.date], max_reject_ratio: float = 0.01) -> dict:
    """Load the landing copies of `kind` for `days` (`load_into_layout` each, the files of every
    day published together: `published_together`), then check the feed health of each day that
    has its quality report (`check_feed`, which reads the reports of earlier days: so after they
    are published). Returns {day: (quality report, feed health)}. A day that fails, fails alone
    (`each_day`: DaysFailed names it; one day raises its own error), its health checked too
    when it is over the reject limit."""
    from cvas.steps.feed_health import check_feed

    days = sorted(days)
    reports: dict[dt.date, dict[str, Any]] = {}
    error: Exception | None = None
    with published_together(layout.staging):
        try:
            reports = each_day(f"load {kind}", days,
                               lambda d: load_into_layout(layout, kind, d, max_reject_ratio=max_reject_ratio))
        except (DaysFailed, RejectRatioExceeded) as exc:
            error = exc
    failures = error.failures if isinstance(error, DaysFailed) else {days[0]: error} if error else {}
    reports.update({d: e.report for d, e in failures.items() if isinstance(e, RejectRatioExceeded)})
    health = each_day(f"feed health {kind}", sorted(reports), lambda d: check_feed(layout, kind, d))
    if error is not None:
        raise error
    return {d: (reports[d], health[d]) for d in days}
