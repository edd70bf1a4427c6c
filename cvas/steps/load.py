"""One day's raw extract CSV of one kind → a typed, validated, deduplicated Arrow table and its Parquet partition."""

from __future__ import annotations

import csv
import datetime as dt
import io
import logging
import mmap
import os
import re
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from cvas.core.csvcells import safe_cell
from cvas.core.csvlines import physical_lines, records
from cvas.core.batch import DaysFailed, each_day
from cvas.core.publish import publish_parquet, published_together, staged
from cvas.core.quality import write_quality
from cvas.core.schemas import FLT, INT, NUMERIC_RANGES, STR, TS, KindSpec, spec

log = logging.getLogger(__name__)

# Legacy null markers (legacy rule L3.2), kept as the contract: an unquoted empty field, `""`,
# `NULL` and `null` (quoted or not) are all null. A literal text "null" is therefore lost.
NULL_MARKERS = ("", "NULL", "null")

# Key columns that may be null (their rows are then deduplicated only against exact copies).
NULLABLE_KEY_COLUMNS: dict[str, frozenset[str]] = {
    "ppd": frozenset({"subscription_id"}),
    "rfnd": frozenset({"sbnid"}),
}
# Money columns: a charge or a refund amount is never negative (refunds are their own rows).
AMOUNT_COLUMNS = frozenset({"rev", "rfnd_amount"})
FLAG_VALUES = ("t", "f")      # instant_rfnd as PostgreSQL COPY writes a boolean
REJECT_COLUMNS = ("source_file", "line", "reason", "record")
_WORKERS = min(8, os.cpu_count() or 2)
_VERIFY = 2000          # located rejects checked against Arrow's values (an even sample beyond)
# Near-unique columns: dictionary encoding would be tried and abandoned, at a cost.
_NO_DICTIONARY = frozenset({"tmuserid", "msisdn", "subscription_id", "sbn_id", "sbnid"})

_BOM = b"\xef\xbb\xbf"
_CONTENT = re.compile(rb"[^\r\n]")
_INT64_MAX = 2**63 - 1
_INT64_MIN = -(2**63)
_INT_TEXT = re.compile(r"-?[0-9]+")
# What a float column accepts (non-finite values are rejected after the cast).
_FLOAT_RE = r"^[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?$"
# `YYYY-MM-DD[( |T)HH:MM:SS[.f{1,6}]]` with a real calendar date (leap years included) and
# a real time of day; no zone offset. RE2 has no look-ahead, hence the spelled-out year.
_YEAR = r"(?:[1-9][0-9]{3}|0[1-9][0-9]{2}|00[1-9][0-9]|000[1-9])"
_LEAP = r"(?:[0-9]{2}(?:0[48]|[2468][048]|[13579][26])|(?:0[48]|[2468][048]|[13579][26])00)"
_TS_RE = (
    rf"^(?:{_YEAR}-(?:(?:0[13578]|1[02])-(?:0[1-9]|[12][0-9]|3[01])|(?:0[469]|11)-(?:0[1-9]|[12][0-9]|30)"
    rf"|02-(?:0[1-9]|1[0-9]|2[0-8]))|{_LEAP}-02-29)"
    r"(?:[ T](?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](?:\.[0-9]{1,6})?)?$"
)
_TS_LENGTHS = pa.array([10, 19, 21, 22, 23, 24, 25, 26], pa.int64())


class ExtractFormatError(ValueError):
    """Raised when a raw extract is unusable as a whole: empty (0 bytes), a header that is not
    the kind's columns in order, a NUL byte, bytes that are not UTF-8, or CSV that cannot be
    parsed. The message names the file and the line; it never quotes data values."""


class RejectRatioExceeded(RuntimeError):
    """Raised by `load_day` when the share of rejected rows passes the limit. The rejects
    file and the quality report are published (for inspection), the Parquet partition is
    not. `.report` is the quality report."""

    def __init__(self, message: str, report: dict[str, Any]):
        super().__init__(message)
        self.report = report


@dataclass(frozen=True, slots=True)
class Reject:
    """One quarantined record: where it starts in the source file, why, and its raw text."""

    source_file: str
    line: int
    reason: str
    record: str
    reason_class: str = ""


@dataclass
class LoadResult:
    """The outcome of parsing one extract: the table to publish, the rejects, the report."""

    table: pa.Table
    rejects: list[Reject] = field(default_factory=list)
    report: dict[str, Any] = field(default_factory=dict)


# ----------------------------------------------------------------------------------------
# parsing


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
    body_start = _check_file(path, data, names)

    raw, bad_texts = _read_strings(path, data, body_start, names)
    n_bad_fields = len(bad_texts)
    checks, typed = _validate(ks, day, raw)
    if _last_record_cut_in_quotes(data, body_start, raw.num_rows, len(names)):
        cut = np.zeros(raw.num_rows, dtype=bool)
        cut[-1] = True
        # first, so that the row's reason class says what happened to it
        checks.insert(0, _Check("truncated_record", names[0], cut, lambda v: _CUT_REASON))
    bad = _any(checks, raw.num_rows)
    n_bad_rows = int(bad.sum()) if bad is not None else 0

    rejects: list[Reject] = []
    if n_bad_rows or n_bad_fields:
        rejects = _collect_rejects(ks, path, data, body_start, raw, checks, bad, bad_texts)

    if n_bad_rows:
        typed = typed.filter(pa.array(~bad))
    table, duplicates, conflicts = _dedup_sorted(ks, typed)
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


def _check_file(path: Path, data, names: list[str]) -> int:
    """The checks on the file as a whole (not empty, no NUL byte, the header, UTF-8);
    returns the byte offset where the data starts."""
    if not len(data):
        raise ExtractFormatError(f"{path}: empty file, no header")
    nul = data.find(b"\x00")
    if nul >= 0:
        encoding = likely_wide_encoding(data)
        hint = f": it looks like {encoding}; transactions must be UTF-8 (re-export it as UTF-8)" if encoding else ""
        raise ExtractFormatError(f"{path}: line {_line_of(data, nul)}: NUL byte in the file{hint}")
    body_start = check_header(path, data, names)
    if np.frombuffer(data, dtype=np.uint8).max(initial=0) >= 0x80:   # the usual extract is all ASCII
        _check_utf8(path, data)
    return body_start


def map_file(path: Path) -> mmap.mmap | bytes:
    """The file's bytes, memory-mapped (no copy; the mapping closes when unreferenced)."""
    with open(path, "rb") as fh:
        if os.fstat(fh.fileno()).st_size == 0:
            return b""
        return mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)


def _line_of(data: bytes, offset: int) -> int:
    """1-based physical line of a byte offset (\\n, \\r\\n and a lone \\r end a line)."""
    head = data[:offset]
    return head.count(b"\n") + head.count(b"\r") - head.count(b"\r\n") + 1


_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_ .-]{0,63}")


def _shown(name: str) -> str:
    """A header cell as it may appear in a message: column-like names only, never data."""
    return repr(name) if _NAME.fullmatch(name) else "<non-name value>"


def check_header(path: Path, data: bytes, names: list[str]) -> int:
    """Validate line 1 against `names`; return the byte offset where the data starts."""
    if not len(data):
        raise ExtractFormatError(f"{path}: empty file, no header")
    start = len(_BOM) if data[:len(_BOM)] == _BOM else 0
    nl = data.find(b"\n", start)
    cr = data.find(b"\r", start, nl if nl >= 0 else len(data))
    end = cr if cr >= 0 else nl if nl >= 0 else len(data)
    body = end + (2 if data[end:end + 2] == b"\r\n" else 1) if end < len(data) else len(data)
    try:
        text = data[start:end].decode("utf-8")
    except UnicodeDecodeError:
        raise ExtractFormatError(f"{path}: line 1: header is not valid UTF-8") from None
    if not text.strip():
        raise ExtractFormatError(f"{path}: empty file, no header" if not data[start:].strip()
                                 else f"{path}: line 1: empty header, expected {','.join(names)}")
    found = [cell.strip() for cell in next(csv.reader([text]))]
    if found == names:
        return body
    if not set(found) & set(names):
        raise ExtractFormatError(f"{path}: line 1: wrong header: none of the {len(names)} expected columns "
                                 f"{','.join(names)} found in its {len(found)} fields (is the header missing?)")
    missing = [n for n in names if n not in found]
    extra = [f for f in found if f not in names]
    parts = [f"expected {len(names)} columns {','.join(names)}; found {len(found)}"]
    if missing:
        parts.append("missing " + ", ".join(missing))
    if extra:
        parts.append("unexpected " + ", ".join(_shown(f) for f in extra))
    if not missing and not extra:
        pos = next(i for i, (a, b) in enumerate(zip(names, found)) if a != b)
        parts.append(f"columns out of order from position {pos + 1}: expected {names[pos]!r}, "
                     f"found {found[pos]!r}")
    raise ExtractFormatError(f"{path}: line 1: wrong header: " + "; ".join(parts))


def _read_strings(path: Path, data: bytes, body_start: int, names: list[str]) -> tuple[pa.Table, list[str]]:
    """Every record with the right field count as large_string columns, and the text of those
    with a wrong field count."""
    if not _CONTENT.search(data, body_start):
        return pa.table({n: pa.array([], STR) for n in names}), []
    bad_rows: list[str] = []

    def on_invalid(row) -> str:
        bad_rows.append(row.text)
        return "skip"

    try:
        # An Arrow-native mapping, not a buffer over a Python object: Arrow's worker threads
        # may drop the last reference after read_csv returns, and releasing a Python-backed
        # buffer then needs the GIL (an abort if the interpreter is exiting).
        with pa.memory_map(str(path)) as mapped:
            body = mapped.read_buffer().slice(body_start)
        table = pacsv.read_csv(
            pa.BufferReader(body),
            read_options=pacsv.ReadOptions(column_names=names),
            parse_options=pacsv.ParseOptions(newlines_in_values=True, invalid_row_handler=on_invalid),
            convert_options=pacsv.ConvertOptions(
                column_types={n: STR for n in names}, null_values=list(NULL_MARKERS),
                strings_can_be_null=True, quoted_strings_can_be_null=True),
        )
    except (pa.ArrowInvalid, UnicodeDecodeError) as exc:
        _check_utf8(path, data)
        if "straddling object" in str(exc):   # Arrow's wording for a record longer than its block
            line, length = _longest_line(data, body_start)
            raise ExtractFormatError(
                f"{path}: line {line}: a record of {length:,} bytes, longer than the CSV reader's block "
                f"({_BLOCK // 2**20} MiB): no field of an extract is that long (an unterminated quote, or a "
                "corrupted file?)") from None
        # Arrow's message quotes the row text (personal data): keep only its first clause.
        what = re.split(r":\s", str(exc).removeprefix("CSV parse error: "), maxsplit=1)[0]
        raise ExtractFormatError(f"{path}: not parseable as CSV ({what})") from None
    return table, bad_rows


_BLOCK = pacsv.ReadOptions().block_size
_WIDE_BOMS = ((b"\xff\xfe\x00\x00", "UTF-32 LE"), (b"\x00\x00\xfe\xff", "UTF-32 BE"),
              (b"\xff\xfe", "UTF-16 LE"), (b"\xfe\xff", "UTF-16 BE"))


def likely_wide_encoding(data) -> str | None:
    """The encoding a file with NUL bytes most likely has: UTF-16/32 by its byte order mark, or
    UTF-16 without one when every other byte of its start is NUL (ASCII text, two bytes a
    character: a spreadsheet's "Unicode text" export). None when it looks like neither."""
    head = bytes(data[:4096])
    for bom, name in _WIDE_BOMS:
        if head.startswith(bom):
            return f"{name} (byte order mark)"
    pairs = len(head) // 2
    if pairs >= 4:
        if head[1::2].count(0) >= 0.9 * pairs:
            return "UTF-16 LE (no byte order mark)"
        if head[0::2].count(0) >= 0.9 * pairs:
            return "UTF-16 BE (no byte order mark)"
    return None


def _longest_line(data, start: int) -> tuple[int, int]:
    """(1-based line, length in bytes) of the longest physical line from byte `start`."""
    arr = np.frombuffer(data, dtype=np.uint8)[start:]
    ends = np.concatenate((np.flatnonzero(arr == 10), [len(arr)]))
    lengths = np.diff(np.concatenate(([-1], ends))) - 1
    i = int(np.argmax(lengths))
    return _line_of(data, start) + i, int(lengths[i])


_CUT_REASON = "the file ends inside a quoted field: the last record is cut off (truncated file?)"


def _last_record_cut_in_quotes(data, body_start: int, n_rows: int, ncols: int) -> bool:
    """Whether the file ends inside a quoted field and that last record has the right field
    count (Arrow then reads it as a whole row; with a wrong count it is rejected anyway).

    Only a file without a final line break and with an odd number of quotes can end inside
    quotes; a stray quote inside an unquoted field (literal for Arrow and csv) also makes the
    count odd, so csv's strict mode, which stops with "unexpected end of data" only there,
    decides. Costs nothing for an extract that ends with a line break (every COPY output).
    """
    end = len(data)
    if not n_rows or end <= body_start or data[end - 1:end] in (b"\n", b"\r"):
        return False
    if np.count_nonzero(np.frombuffer(data, dtype=np.uint8)[body_start:] == ord('"')) % 2 == 0:
        return False
    text = str(data[body_start:], "utf-8")
    old_limit = csv.field_size_limit()
    csv.field_size_limit(max(old_limit, len(text) + 1))
    try:
        try:
            for _ in csv.reader(io.StringIO(text, newline=""), strict=True):
                pass
        except csv.Error as exc:
            if "unexpected end of data" not in str(exc):
                return False          # another strictness complaint first: cannot tell, keep Arrow's reading
        else:
            return False
        last: list[str] = []
        for fields in csv.reader(io.StringIO(text, newline="")):
            if fields:
                last = fields
    finally:
        csv.field_size_limit(old_limit)
    return len(last) == ncols


def _check_utf8(path: Path, data: bytes) -> None:
    try:
        str(data, "utf-8")
    except UnicodeDecodeError as exc:
        raise ExtractFormatError(f"{path}: line {_line_of(data, exc.start)}: bytes that are not UTF-8 "
                                 f"(offset {exc.start}); transactions must be UTF-8") from None


# ----------------------------------------------------------------------------------------
# validation: one boolean mask per check, computed on whole columns


@dataclass
class _Check:
    """A rule failed by the rows where `mask` is True; `describe(row)` says why for one row."""

    reason_class: str
    column: str
    mask: np.ndarray
    describe: Any
    classify: Any = None        # value -> reason class, when one rule has several

    def class_of(self, value: Any) -> str:
        return self.classify(value) if self.classify else self.reason_class


def _np(mask) -> np.ndarray:
    """A boolean Arrow (chunked) array as numpy, nulls as False."""
    if isinstance(mask, pa.ChunkedArray):
        mask = mask.combine_chunks() if mask.num_chunks != 1 else mask.chunk(0)
    return pc.fill_null(mask, False).to_numpy(zero_copy_only=False)


def _one_chunk(col: pa.ChunkedArray) -> pa.Array:
    """A column as one contiguous array (for kernels mixing it with numpy-made masks)."""
    return col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col


def _any(checks: list[_Check], n: int) -> np.ndarray | None:
    if not checks:
        return None
    out = np.zeros(n, dtype=bool)
    for check in checks:
        out |= check.mask
    return out


def _validate(ks: KindSpec, day: dt.date, raw: pa.Table) -> tuple[list[_Check], pa.Table]:
    """Type every column; return the failed checks (in reporting order) and the typed table
    (values that failed are null there)."""
    # Columns are independent and Arrow kernels release the GIL: type them in parallel.
    with ThreadPoolExecutor(max_workers=_WORKERS) as pool:
        results = list(pool.map(lambda nt: _type_column(nt[0], nt[1], raw.column(nt[0])), ks.columns))
    typed = {name: out for (name, _), (out, _) in zip(ks.columns, results)}
    checks = [check for _, check in results if check is not None]

    for name in [n for n in ks.names if n in AMOUNT_COLUMNS]:
        bad = _np(pc.less(typed[name], 0.0))
        if bad.any():
            checks.append(_Check("negative_amount", name, bad, lambda v, n=name: f"negative {n} ({v})"))

    checks += _range_checks(ks, typed)

    if ks.trans_type_id is not None:
        bad = _np(pc.not_equal(typed["trans_type_id"], ks.trans_type_id))
        if bad.any():
            checks.append(_Check("wrong_trans_type", "trans_type_id", bad,
                                 lambda v: f"trans_type_id {v} is not {ks.trans_type_id} ({ks.kind})"))

    date_col = ks.date_column
    day_text = day.isoformat()
    start = pa.scalar(dt.datetime.combine(day, dt.time()), TS)
    end = pa.scalar(dt.datetime.combine(day + dt.timedelta(days=1), dt.time()), TS)
    ts = typed[date_col]
    bad = _np(pc.or_(pc.less(ts, start), pc.greater_equal(ts, end)))
    if bad.any():
        checks.append(_Check("not_this_day", date_col, bad,
                             lambda v: f"{date_col} {v[:10]} is not the day {day_text}"))
    bad = _np(raw.column(date_col).is_null())
    if bad.any():
        checks.append(_Check("null_date", date_col, bad, lambda v: f"{date_col} is null"))

    nullable = NULLABLE_KEY_COLUMNS.get(ks.kind, frozenset())
    for name in ks.key:
        if name == date_col or name in nullable:
            continue
        bad = _np(raw.column(name).is_null())
        if bad.any():
            checks.append(_Check("null_key", name, bad, lambda v, n=name: f"{n} is null (key column)"))

    # Column order first, then row rules: a row's reason class is that of its first problem.
    order = {name: i for i, name in enumerate(ks.names)}
    rank = {"bad_integer": 0, "bad_number": 0, "bad_timestamp": 0, "bad_flag": 0}
    checks.sort(key=lambda c: (rank.get(c.reason_class, 1), order[c.column] if c.reason_class in rank else 0))
    return checks, pa.table(typed, schema=ks.schema)


def _range_checks(ks: KindSpec, typed: dict[str, pa.ChunkedArray]) -> list[_Check]:
    """Decision D15: a value outside its column's plausible range (NUMERIC_RANGES) is rejected
    (negative amounts have their own check)."""
    checks = []
    for name, typ in ks.columns:
        if typ not in (INT, FLT):
            continue
        low, high = NUMERIC_RANGES[name]
        col = typed[name]
        bad = np.zeros(len(col), dtype=bool)
        if low > _INT64_MIN and name not in AMOUNT_COLUMNS:
            bad |= _np(pc.less(col, low))
        if typ == FLT or high <= _INT64_MAX:      # beyond int64 the cast already refused it
            bad |= _np(pc.greater_equal(col, float(high) if typ == FLT else high))
        if bad.any():
            checks.append(_Check("out_of_range", name, bad, lambda v, n=name, lo=low, hi=high:
                                 f"{n} {v} is outside its plausible range ({lo} <= {n} < {hi})"))
    return checks


def _type_column(name: str, typ: pa.DataType, col: pa.ChunkedArray) -> tuple[pa.ChunkedArray, _Check | None]:
    """One column typed, and the check its bad values failed (None if all are good)."""
    if typ == INT:
        out, bad = _to_int(col)
        check = None if bad is None else _Check(
            "bad_integer", name, bad, _int_reason(name),
            lambda v: "int_overflow" if _INT_TEXT.fullmatch(v) else "bad_integer")
    elif typ == FLT:
        out, bad = _to_float(col)
        check = None if bad is None else _Check(
            "bad_number", name, bad, lambda v: f"{name} {v!r} is not a number")
    elif typ == TS:
        out, bad = _to_timestamp(col)
        check = None if bad is None else _Check(
            "bad_timestamp", name, bad, lambda v: f"{name} {v!r} is not a timestamp (YYYY-MM-DD[ HH:MM:SS[.ffffff]])")
    else:
        out, check = col, None
        if name == "instant_rfnd":
            bad = _np(pc.and_(col.is_valid(), pc.invert(pc.is_in(col, pa.array(FLAG_VALUES, STR)))))
            if bad.any():
                check = _Check("bad_flag", name, bad, lambda v: f"instant_rfnd {v!r} is not t or f")
    return out, check


def _contains_byte(col: pa.ChunkedArray, needles: bytes) -> bool:
    """Whether any value of a string column may contain one of `needles` (a scan of the raw
    character buffers: far cheaper than a per-value substring search)."""
    for chunk in col.chunks:
        data = chunk.buffers()[2]
        if data is not None and data.size:
            raw = np.frombuffer(data, dtype=np.uint8)
            if np.isin(raw, np.frombuffer(needles, dtype=np.uint8)).any():
                return True
    return False


def _to_int(col: pa.ChunkedArray) -> tuple[pa.ChunkedArray, np.ndarray | None]:
    """int64 values of `col` and the mask of non-null values that are not `-?[0-9]+` in range."""
    try:
        out = pc.cast(col, INT)
        # Arrow also reads hexadecimal ("0x1F"); we do not.
        if not _contains_byte(col, b"xX"):
            return out, None
    except pa.ArrowInvalid:
        pass
    col = _one_chunk(col)
    ok = pc.match_substring_regex(col, r"^-?[0-9]{1,18}$")
    ok = pc.or_kleene(ok, pc.and_(pc.match_substring_regex(col, r"^[0-9]{19}$"),
                                  pc.less_equal(col, "9223372036854775807")))
    ok = _np(ok)
    notnull = _np(col.is_valid())
    odd = np.flatnonzero(notnull & ~ok)
    if len(odd):   # leading zeros, 19-digit negatives, overflow, garbage: decided one by one
        values = col.take(pa.array(odd)).to_pylist()
        for i, v in zip(odd, values):
            ok[i] = _int_fits(v) is None
    bad = notnull & ~ok
    out = pc.cast(pc.if_else(pa.array(ok), col, pa.scalar(None, STR)), INT)
    return out, (bad if bad.any() else None)


def _int_fits(text: str) -> str | None:
    """None if `text` is an int64, else the problem."""
    if not _INT_TEXT.fullmatch(text):
        return "is not an integer"
    if not _INT64_MIN <= int(text) <= _INT64_MAX:
        return "does not fit int64"
    return None


def _int_reason(name: str):
    return lambda v: f"{name} {v if _INT_TEXT.fullmatch(v) else repr(v)} {_int_fits(v) or 'is not an integer'}"


def _to_float(col: pa.ChunkedArray) -> tuple[pa.ChunkedArray, np.ndarray | None]:
    """float64 values and the mask of non-null values that are not finite decimal numbers."""
    try:
        out = pc.cast(col, FLT)
    except pa.ArrowInvalid:
        col = _one_chunk(col)
        ok = pc.match_substring_regex(col, _FLOAT_RE)
        out = pc.cast(pc.if_else(ok, col, pa.scalar(None, STR)), FLT)
    bad = _np(pc.and_(col.is_valid(), pc.invert(pc.fill_null(pc.is_finite(out), False))))
    if bad.any():
        out = pc.if_else(pa.array(bad), pa.scalar(None, FLT), out)
        return out, bad
    return out, None


def _to_timestamp(col: pa.ChunkedArray) -> tuple[pa.ChunkedArray, np.ndarray | None]:
    """timestamp[us] values and the mask of non-null values not in the accepted formats."""
    try:
        out = pc.cast(col, TS)
        # Arrow also reads `YYYY-MM-DD HH` and `YYYY-MM-DD HH:MM`; the lengths rule them out.
        lengths = pc.binary_length(col)
        if pc.all(pc.is_in(lengths, _TS_LENGTHS)).as_py() is not False:
            return out, None
    except pa.ArrowInvalid:
        pass
    col = _one_chunk(col)
    ok = pc.match_substring_regex(col, _TS_RE)
    out = pc.cast(pc.if_else(ok, col, pa.scalar(None, STR)), TS)
    bad = _np(pc.and_(col.is_valid(), pc.invert(ok)))
    return out, (bad if bad.any() else None)


# ----------------------------------------------------------------------------------------
# rejects: per-row work only for the failing rows


def _collect_rejects(ks: KindSpec, path: Path, data, body_start: int, raw: pa.Table,
                     checks: list[_Check], bad: np.ndarray | None, bad_texts: list[str]) -> list[Reject]:
    """Rejects with their physical start line and raw text, in file order.

    Arrow's row index is not a line number (quoted newlines, blank lines, skipped rows).
    A vectorised scan finds the record boundaries (a newline ends a record when an even
    number of quotes precede it) and is checked against what Arrow read; if the check fails
    (e.g. a stray quote inside an unquoted field), Python's csv module, which splits records
    exactly as Arrow does, re-reads the file.
    """
    ncols = len(ks.names)
    rows = np.flatnonzero(bad) if bad is not None else np.zeros(0, dtype=np.int64)
    located = _locate_quick(data, body_start, raw, rows, bad_texts, ncols)
    if located is None:
        located = _locate_csv(path, data, body_start, raw, rows, len(bad_texts), ncols)
    source = str(path)
    # The failing values fetched per column in one go (a day can be entirely rejected), and
    # which checks each row failed as a bit code: one Python step per rejected row. Located
    # rows come in file order, which is the order of `rows`.
    values_of = {c.column: raw.column(c.column).take(pa.array(rows)).to_pylist() for c in checks}
    codes = np.zeros(len(rows), dtype=np.int64)
    for j, check in enumerate(checks):
        codes |= check.mask[rows].astype(np.int64) << j
    codes = codes.tolist()
    failed_of: dict[int, list[_Check]] = {}
    rejects = []
    k = 0
    for line, record, row, nfields in located:
        if row is None:
            reason = f"{nfields} fields, expected {ncols}"
            if record.count('"') % 2:
                reason += " (unterminated quoted field)"
            rejects.append(Reject(source, line, reason, record, "wrong_field_count"))
            continue
        code = codes[k]
        failed = failed_of.get(code)
        if failed is None:
            failed = failed_of[code] = [c for j, c in enumerate(checks) if code >> j & 1]
        values = [values_of[c.column][k] for c in failed]
        k += 1
        reasons = "; ".join(c.describe(v) for c, v in zip(failed, values))
        rejects.append(Reject(source, line, reasons, record, failed[0].class_of(values[0])))
    return rejects


# (physical line, raw record text, Arrow row index or None for a wrong field count, field count)
_Located = list[tuple[int, str, "int | None", "int | None"]]


def _fields(record: str) -> list[str]:
    return next(csv.reader(io.StringIO(record, newline="")), [])


def _locate_quick(data, body_start: int, raw: pa.Table, rows: np.ndarray, bad_texts: list[str],
                  ncols: int) -> _Located | None:
    """Locate the rejected records with numpy; None when the result cannot be trusted."""
    arr = np.frombuffer(data, dtype=np.uint8)[body_start:]
    newlines = np.flatnonzero(arr == 10)
    if data.find(b"\r", body_start) >= 0:
        crs = np.flatnonzero(arr == 13)
        if not np.isin(crs + 1, newlines, assume_unique=True).all():
            return None                               # a lone CR ends a line: use the csv module
    quotes = np.flatnonzero(arr == 34)
    ends = newlines[np.searchsorted(quotes, newlines) % 2 == 0]
    starts = np.concatenate(([0], ends + 1))
    ends = np.concatenate((ends, [len(arr)]))
    ends = ends - ((ends > starts) & (arr[np.maximum(ends - 1, 0)] == 13))   # CRLF
    keep = ends > starts                                                     # Arrow skips empty lines
    starts, ends = starts[keep], ends[keep]
    if len(starts) != raw.num_rows + len(bad_texts):
        return None

    malformed = np.zeros(len(starts), dtype=bool)
    if bad_texts:
        wanted = {t.encode("utf-8") for t in bad_texts}
        lengths = ends - starts
        candidates = np.flatnonzero(np.isin(lengths, np.fromiter((len(t) for t in wanted), dtype=np.int64)))
        for i in candidates:
            if bytes(arr[starts[i]:ends[i]]) in wanted:
                malformed[i] = True
        if malformed.sum() != len(bad_texts):
            return None
    record_of_row = np.flatnonzero(~malformed)
    records = np.concatenate((np.flatnonzero(malformed), record_of_row[rows]))
    row_of = np.concatenate((np.full(int(malformed.sum()), -1), rows))
    order = np.argsort(records, kind="stable")
    records, row_of = records[order], row_of[order]
    lines = _line_of(data, body_start) + np.searchsorted(newlines, starts[records])

    located: _Located = []
    for i, line, row in zip(records.tolist(), lines.tolist(), row_of.tolist()):
        record = bytes(arr[starts[i]:ends[i]]).decode("utf-8")
        located.append((line, record, None, len(_fields(record))) if row < 0 else (line, record, row, None))

    # Trust, but verify: a located record must hold exactly the values Arrow read for its row
    # (all of them up to _VERIFY, else an even sample; the counts above already agree).
    checked = [x for x in located if x[2] is not None]
    if len(checked) > _VERIFY:
        checked = [checked[int(i)] for i in np.linspace(0, len(checked) - 1, _VERIFY)]
    if checked:
        sample = pa.array([x[2] for x in checked])
        expected = zip(*(raw.column(c).take(sample).to_pylist() for c in raw.column_names))
        for (_, record, _, _), want in zip(checked, expected):
            if [None if f in NULL_MARKERS else f for f in _fields(record)] != list(want):
                return None
    return located


def _locate_csv(path: Path, data, body_start: int, raw: pa.Table, rows: np.ndarray, n_bad_fields: int,
                ncols: int) -> _Located:
    """Locate the rejected records by re-reading every record with the csv module (slow, exact)."""
    lines = list(physical_lines(data[body_start:].decode("utf-8")))
    first_line = _line_of(data, body_start)
    wanted = set(rows.tolist())
    located: _Located = []
    row = 0
    seen_bad_fields = 0
    for rec in records(lines):
        if not rec.fields:
            continue                          # a blank line: Arrow skips it too
        malformed = len(rec.fields) != ncols
        if malformed or row in wanted:
            line, text = first_line + rec.start - 1, _record_text(lines, rec.start - 1, rec.end)
            located.append((line, text, None, len(rec.fields)) if malformed else (line, text, row, None))
        seen_bad_fields += malformed
        row += not malformed
    if row != raw.num_rows or seen_bad_fields != n_bad_fields:
        raise ExtractFormatError(
            f"{path}: cannot locate rejected rows: the CSV reader found {raw.num_rows} well-formed and "
            f"{n_bad_fields} malformed records, the line scan {row} and {seen_bad_fields}")
    return located


def _record_text(lines: list[str], start: int, end: int) -> str:
    """The raw text of the record on physical lines [start, end), without its line end."""
    record = "".join(lines[start:end])
    if record.endswith("\r\n"):
        return record[:-2]
    if record.endswith(("\n", "\r")):
        return record[:-1]
    return record


# ----------------------------------------------------------------------------------------
# dedup and order


def sort_columns(ks: KindSpec) -> list[str]:
    """The output order: the primary date, the other key columns, then every other column in
    file order. It is the extraction SQL's ORDER BY, so a fresh extract is already sorted
    and the sort costs no data movement."""
    key = [ks.date_column] + [c for c in ks.key if c != ks.date_column]
    return key + [c for c in ks.names if c not in key]


def _dedup_sorted(ks: KindSpec, table: pa.Table) -> tuple[pa.Table, int, int]:
    """Remove exact copies (rows equal in every column, null equal to null) and sort by key then
    all columns, nulls last. Rows that share a key but differ in another column are all kept
    (decision D16: a key conflict never drops money; two renewals at the ambiguous hour of a DST
    change are two charges). Returns (table, copies removed, key conflicts): a key conflict is a
    kept row whose complete key equals the previous kept row's."""
    n = table.num_rows
    if n == 0:
        return table, 0, 0
    key = list(ks.key)
    if _is_sorted(table, sort_columns(ks)):
        idx = np.arange(n)
    else:
        # A stable sort by every column: exact copies become adjacent.
        idx = pc.sort_indices(table, sort_keys=[(c, "ascending") for c in sort_columns(ks)],
                              null_placement="at_end").to_numpy()
    # an exact copy has the previous row's key (null as null): compare whole rows only there
    same_key = _same_as_previous(table, key, idx)
    copy = np.zeros(n, dtype=bool)
    candidates = np.flatnonzero(same_key)
    if len(candidates):
        copy[candidates] = _rows_equal(table, idx[candidates], idx[candidates - 1])
    kept = idx[~copy]
    conflicts = 0
    if len(candidates) > int(copy.sum()):
        complete = np.ones(len(kept), dtype=bool)
        for c in key:
            complete &= _np(table.column(c).take(pa.array(kept)).is_valid())
        conflicts = int((_same_as_previous(table, key, kept) & complete & np.roll(complete, 1)).sum())
    removed = n - len(kept)
    if removed == 0 and (n < 2 or bool((np.diff(kept) == 1).all())):
        return table, 0, conflicts          # already in order, nothing removed: no copy
    return _take(table, kept), removed, conflicts


def _same_as_previous(table: pa.Table, columns: list[str], idx: np.ndarray) -> np.ndarray:
    """Row idx[i] equals row idx[i-1] in every one of `columns` (null equal to null); False for i=0."""
    n = len(idx)
    same = np.zeros(n, dtype=bool)
    if n < 2:
        return same
    same[1:] = True
    order = pa.array(idx)
    for c in columns:
        col = table.column(c).take(order)
        cur, prev = col.slice(1), col.slice(0, n - 1)
        same[1:] &= _np(pc.equal(cur, prev)) | (_np(cur.is_null()) & _np(prev.is_null()))
    return same


def _is_sorted(table: pa.Table, columns: list[str]) -> bool:
    """Whether rows are already in ascending order of `columns` (nulls last), ties allowed.

    Adjacent rows are compared column by column until every pair is decided, usually after
    the first two columns: much cheaper than sorting an extract that arrives in order.
    """
    n = table.num_rows
    if n < 2:
        return True
    undecided = np.ones(n - 1, dtype=bool)
    for name in columns:
        col = table.column(name)
        cur, prev = col.slice(1), col.slice(0, n - 1)
        cur_ok, prev_ok = _np(cur.is_valid()), _np(prev.is_valid())
        before = _np(pc.less(cur, prev)) | (cur_ok & ~prev_ok)       # a value after a null
        if (undecided & before).any():
            return False
        undecided &= _np(pc.equal(cur, prev)) | (~cur_ok & ~prev_ok)
        if not undecided.any():
            return True
    return True


def _rows_equal(table: pa.Table, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row a[i] == row b[i] in every column, null equal to null."""
    equal = np.ones(len(a), dtype=bool)
    if not len(a):
        return equal
    ia, ib = pa.array(a), pa.array(b)
    for name in table.column_names:
        col = table.column(name)
        x, y = col.take(ia), col.take(ib)
        same = pc.or_(pc.fill_null(pc.equal(x, y), False), pc.and_(x.is_null(), y.is_null()))
        equal &= _np(same)
    return equal


def _take(table: pa.Table, order: np.ndarray) -> pa.Table:
    """table.take(order), one column per thread (Arrow's string take is the slow part)."""
    indices = pa.array(order)
    names = table.column_names
    with ThreadPoolExecutor(max_workers=4) as pool:
        cols = list(pool.map(lambda name: table.column(name).take(indices).combine_chunks(), names))
    return pa.Table.from_arrays(cols, schema=table.schema)


# ----------------------------------------------------------------------------------------
# publishing


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
                    use_dictionary=[f.name for f in schema if f.name not in _NO_DICTIONARY and f.type != TS])


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
