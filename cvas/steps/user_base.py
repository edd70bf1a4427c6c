"""The NBS user base: one snapshot → one per-day aggregate; the three legacy exports from the per-day files.

Decisions (legacy rules L5, L-D10, L-D19):

* encoding: decided once per file, before any row is counted: UTF-8 (a BOM is allowed) if
  the whole file decodes, else cp1252 if it decodes (Windows exports; it differs from
  latin-1 only in 0x80–0x9F, where latin-1 has control characters), else latin-1, which
  decodes any byte. No row is ever counted twice (the legacy re-read a file after a decode
  error, double counting the rows before it);
* a malformed snapshot fails as a whole with the file, line and reason: no header, a
  missing column, a wrong number of fields, a cpc that is not an integer (`893.0` too, as
  the legacy), a count that is not a finite number. Nothing is skipped; only blank lines
  are ignored;
* per row: service_name and tme_category stripped; tme_category mapped (education/images →
  Edu_Ima, news/sports → News_Sport, compared in lower case; anything else kept as
  stripped); count parsed as a number and truncated toward zero; cpc an integer;
* `|`: the exports are pipe-delimited without quoting (their contract), so a service name
  or category holding `|` or a line break is refused at aggregation with its line; a quoted
  field would silently break every consumer that splits on `|`;
* the per-day file keeps every service, at the grain (cpc, service_name, tme_category); the
  excluded services are dropped when the exports are written, so a changed keyword list
  applies to the whole history (as the legacy) without re-reading any snapshot;
* the exports are rebuilt from the per-day files only. When the new days all come after
  the days already exported and nothing else changed, their lines are appended to a copy of
  the previous files (the daily step reads one per-day file however many are held);
  otherwise (a backfilled or re-aggregated older day, another keyword list, a missing or
  edited export) they are recomputed from every per-day file by DuckDB.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import math
import re
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from cvas.core import provenance
from cvas.core.batch import each_day
from cvas.core.catalogue import DATASETS, published_outputs, writer_lock
from cvas.core.csvcells import safe_cell
from cvas.core.csvlines import physical_lines, records
from cvas.core.freshness import Freshness, Settings
from cvas.core.layout import Layout
from cvas.core.locking import exclusive
from cvas.core.publish import PublishError, copy_and_append, publish_parquet, published_together, staged
from cvas.sql import connect, load_sql

log = logging.getLogger(__name__)

REQUIRED_COLUMNS: tuple[str, ...] = ("cpc", "service_name", "tme_category", "count")

# legacy rule L5.5, compared in lower case after strip; the notes' larger table was never implemented.
CATEGORY_MAP: dict[str, str] = {
    "education": "Edu_Ima", "images": "Edu_Ima", "news": "News_Sport", "sports": "News_Sport",
}

USER_BASE_DAILY_SCHEMA = pa.schema([
    pa.field("date", pa.date32()), pa.field("cpc", pa.int64()), pa.field("service_name", pa.string()),
    pa.field("tme_category", pa.string()), pa.field("user_base", pa.int64()),
])

# legacy rule L5.6: the header of each export (the value column is `User_Base`).
EXPORT_HEADERS: dict[str, tuple[str, ...]] = {
    "service": ("date", "service_name", "tme_category", "User_Base"),
    "category": ("date", "tme_category", "User_Base"),
    "cpc": ("date", "cpc", "User_Base"),
}

ENCODINGS: tuple[str, ...] = ("utf-8-sig", "cp1252", "latin-1")

_INT = re.compile(r"^[+-]?[0-9]+$")
_FORBIDDEN = re.compile(r"[|\r\n]")


class SnapshotFormatError(ValueError):
    """Raised when an NBS snapshot cannot be aggregated; names the file, the line and the reason."""


class UserBaseExportError(PublishError):
    """Raised when a user-base export would be wrong (a staged file with the wrong line count)."""


# -- one snapshot --------------------------------------------------------------------------

def decode_snapshot(data: bytes) -> tuple[str, str]:
    """The text of a snapshot and the encoding chosen for the whole file (see module docstring)."""
    for encoding in ENCODINGS:
        try:
            return data.decode(encoding), ("utf-8" if encoding == "utf-8-sig" else encoding)
        except UnicodeDecodeError:
            continue
    raise AssertionError("latin-1 decodes every byte sequence")  # pragma: no cover


def map_category(category: str) -> str:
    """legacy rule L5.5 on a stripped category."""
    return CATEGORY_MAP.get(category.lower(), category)


_INT64_MAX = 2**63 - 1


def _count(text: str) -> int:
    value = float(text)  # ValueError for text; nan/inf are refused below
    if not math.isfinite(value):
        raise ValueError(f"count {text!r} is not a finite number")
    count = int(value)  # truncation toward zero, as the legacy int(float(x))
    if count < 0 or count > _INT64_MAX:
        raise ValueError(f"count {text!r} is not a count of subscriptions (negative or beyond int64)")
    return count


def parse_snapshot(path: Path) -> tuple[list[tuple[int, str, str, int]], dict[str, Any]]:
    """Rows (cpc, service_name, mapped tme_category, count) of one snapshot, and facts about it
    (encoding, rows). Raises SnapshotFormatError naming the file and line."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise SnapshotFormatError(f"{path}: the NBS snapshot does not exist") from None
    text, encoding = decode_snapshot(data)
    recs = records(physical_lines(text))
    header = next((rec.fields for rec in recs), None)
    if header is None:
        raise SnapshotFormatError(f"{path}: line 1: empty file, expected a header with {', '.join(REQUIRED_COLUMNS)}")
    names = [h.strip() for h in header]
    missing = [c for c in REQUIRED_COLUMNS if c not in names]
    if missing:
        raise SnapshotFormatError(f"{path}: line 1: missing column(s) {', '.join(missing)} (header: {'|'.join(names)})")
    idx = {c: names.index(c) for c in REQUIRED_COLUMNS}
    rows: list[tuple[int, str, str, int]] = []
    for rec in recs:
        line, fields = rec.end, rec.fields
        if not fields or (len(fields) == 1 and not fields[0].strip()):
            continue  # a blank line carries no data
        if len(fields) != len(names):
            raise SnapshotFormatError(f"{path}: line {line}: {len(fields)} fields, expected {len(names)}")
        cpc_text = fields[idx["cpc"]].strip()
        if not _INT.match(cpc_text):
            raise SnapshotFormatError(f"{path}: line {line}: cpc {cpc_text!r} is not an integer")
        if abs(int(cpc_text)) > _INT64_MAX:
            raise SnapshotFormatError(f"{path}: line {line}: cpc {cpc_text!r} does not fit int64")
        try:
            count = _count(fields[idx["count"]])
        except (ValueError, OverflowError):
            raise SnapshotFormatError(f"{path}: line {line}: count {fields[idx['count']]!r} is not a finite, "
                                      "non-negative count within int64") from None
        service = fields[idx["service_name"]].strip()
        category = fields[idx["tme_category"]].strip()
        for column, value in (("service_name", service), ("tme_category", category)):
            if "\x00" in value:
                raise SnapshotFormatError(f"{path}: line {line}: {column} holds a NUL byte")
            if _FORBIDDEN.search(value):
                raise SnapshotFormatError(f"{path}: line {line}: {column} {value!r} holds '|' or a line break, "
                                          f"which the pipe-delimited user-base exports cannot carry")
        rows.append((int(cpc_text), service, map_category(category), count))
    return rows, {"encoding": encoding, "rows": len(rows), "bytes": len(data)}


def aggregate_snapshot(path: Path, day: dt.date) -> tuple[pa.Table, dict[str, Any]]:
    """One snapshot summed per (cpc, service_name, tme_category), every service kept, sorted."""
    rows, info = parse_snapshot(path)
    sums: dict[tuple[int, str, str], int] = {}
    for cpc, service, category, count in rows:
        key = (cpc, service, category)
        sums[key] = sums.get(key, 0) + count
    keys = sorted(sums)
    table = pa.table({
        "date": pa.array([day] * len(keys), pa.date32()),
        "cpc": pa.array([k[0] for k in keys], pa.int64()),
        "service_name": pa.array([k[1] for k in keys], pa.string()),
        "tme_category": pa.array([k[2] for k in keys], pa.string()),
        "user_base": pa.array([sums[k] for k in keys], pa.int64()),
    }, schema=USER_BASE_DAILY_SCHEMA)
    info = dict(info, groups=table.num_rows, user_base=sum(sums.values()))
    return table, info


def build_user_base_daily(snapshot: Path, day: dt.date, out: Path, staging: Path) -> dict[str, Any]:
    """Aggregate one snapshot and publish the per-day file; returns the facts (encoding, rows, groups)."""
    table, info = aggregate_snapshot(snapshot, day)
    if info["rows"] == 0:
        log.warning("user base %s: snapshot %s has no data rows (an empty day)", day, Path(snapshot).name)
    publish_parquet(staging, out, table)
    log.info("user base %s: %d rows read (%s), %d groups, %d subscriptions", day, info["rows"], info["encoding"],
             info["groups"], info["user_base"])
    return info


# -- the exports ---------------------------------------------------------------------------

def build_user_base_days(layout: Layout, days: list[dt.date]) -> dict[dt.date, dict[str, Any]]:
    """The per-day aggregates of `days` (build_user_base_daily each), each with its sidecar recording
    its snapshot as fingerprinted before it was read, published together; a bad day fails alone
    (`each_day`). Returns {day: the snapshot's facts}."""
    def one_day(day: dt.date) -> dict[str, Any]:
        read = provenance.fingerprints(DATASETS["user_base_daily"].inputs(layout, day, None, Settings()))
        info = build_user_base_daily(layout.user_base_snapshot(day), day, layout.user_base_daily(day), layout.staging)
        provenance.record(layout, layout.user_base_daily(day), inputs=read, params={"date": str(day)},
                          rows=info["groups"], extra={"snapshot": info})
        return info

    with published_together(layout.staging):
        return each_day("user base", sorted(days), one_day)


def _export_lines(con: duckdb.DuckDBPyConnection, files: list[str], excluded: tuple[str, ...]) -> dict[str, list[str]]:
    """The export lines (without header) of `files`, per export."""
    con.execute("create or replace temp table daily as select * from read_parquet($files)", {"files": files})
    con.register("excluded", pa.table({"keyword": pa.array(sorted({k.lower() for k in excluded}), pa.string())}))
    con.execute(f"create or replace temp view kept as {load_sql('user_base_kept')}")
    lines: dict[str, list[str]] = {}
    for by in EXPORT_HEADERS:
        rows = con.execute(load_sql(f"user_base_by_{by}")).fetchall()
        lines[by] = ["|".join(f"{v:%Y-%m-%d}" if isinstance(v, dt.date) else str(safe_cell(v)) for v in row)
                     for row in rows]
    return lines


def _write(tmp: Path, target: Path, header: tuple[str, ...], lines: list[str], append: bool,
           previous_lines: int) -> int:
    """Fill the staged `tmp` for `target`: header + lines, or the published file + lines (O(bytes),
    no parsing of the past). Returns the data lines of the new file."""
    head = ("|".join(header) + "\n").encode("utf-8")
    body = "".join(line + "\n" for line in lines).encode("utf-8")
    expected = previous_lines + len(lines)
    if append:
        copy_and_append(tmp, target, head, body)
        return expected
    with open(tmp, "wb") as fh:
        fh.write(head + body)
    with open(tmp, "rb") as fh:
        written = sum(1 for _ in fh) - 1
    if written != expected:
        raise UserBaseExportError(f"{target}: staged file has {written} data lines, expected {expected}")
    return expected


def export_user_base(layout: Layout, excluded_services: tuple[str, ...]) -> dict[str, Any]:
    """Publish the three legacy exports (`User_Base/user_base_by_{service,category,cpc}.csv`) from
    the per-day files, appending when only later days were added, else rebuilding (module docstring).
    Returns what was done: mode, days, lines per export.

    Holds a lock from reading the manifest to recording the new one, so concurrent workers
    exporting different days cannot append a day twice or record a stale manifest.
    """
    with exclusive(writer_lock(layout, "user_base_export")):
        return _export_user_base(layout, excluded_services)


def _export_user_base(layout: Layout, excluded_services: tuple[str, ...]) -> dict[str, Any]:
    plan = Freshness(layout, Settings(excluded_services=excluded_services)).extension("user_base_export")
    meta = provenance.read(layout, layout.user_base_export("service")) if plan.days is not None else None
    previous = (meta or {}).get("lines")
    append = isinstance(previous, dict) and all(isinstance(previous.get(by), int) for by in EXPORT_HEADERS)
    if not append:
        log.info("user base exports: rebuilt from every per-day file (%s)",
                 plan.reason or "the sidecar does not record the exports' line counts")
    days = plan.days if append else sorted(plan.listing)
    files = [str(layout.user_base_daily(dt.date.fromisoformat(d))) for d in days]
    con = connect()
    try:
        con.execute("set threads = 2")
        if files:
            lines = _export_lines(con, files, excluded_services)
        else:
            lines = {by: [] for by in EXPORT_HEADERS}
    finally:
        con.close()
    counts: dict[str, int] = {}
    with contextlib.ExitStack() as stack:   # the three staged and checked before any is renamed
        for by, header in EXPORT_HEADERS.items():
            target = layout.user_base_export(by)
            tmp = stack.enter_context(staged(layout.staging, target))
            counts[by] = _write(tmp, target, header, lines[by], append, previous[by] if append else 0)
    mode = "append" if append else "rebuild"
    provenance.record(layout, layout.user_base_export("service"), inputs={}, params={}, rows=counts["service"],
                      output_hash=f"lines:{counts['service']}",
                      extra={"daily": plan.listing, "excluded_services": list(excluded_services),
                             "outputs": published_outputs(layout, "user_base_export"), "lines": counts, "mode": mode})
    log.info("user base exports: %s with %d day(s) read, %d days in total; lines %s", mode, len(days),
             len(plan.listing), ", ".join(f"{k} {v}" for k, v in counts.items()))
    return {"mode": mode, "days_read": len(days), "days": len(plan.listing), "lines": counts}
