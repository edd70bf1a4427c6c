"""The rejected rows of an extract located: their physical lines and raw records, per-row work only for
the failing rows."""

from __future__ import annotations

import csv
import io
import logging
from pathlib import Path

import numpy as np
import pyarrow as pa

from cvas.core.csvlines import physical_lines, records
from cvas.core.schemas import KindSpec
from cvas.steps.extract_file import line_of
from cvas.steps.extract_types import Check
from cvas.steps.load_contract import NULL_MARKERS, VERIFY_SAMPLE, ExtractFormatError, Reject

log = logging.getLogger(__name__)

def collect_rejects(ks: KindSpec, path: Path, data, body_start: int, raw: pa.Table,
                     checks: list[Check], bad: np.ndarray | None, bad_texts: list[str]) -> list[Reject]:
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
    failed_of: dict[int, list[Check]] = {}
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
    lines = line_of(data, body_start) + np.searchsorted(newlines, starts[records])

    located: _Located = []
    for i, line, row in zip(records.tolist(), lines.tolist(), row_of.tolist()):
        record = bytes(arr[starts[i]:ends[i]]).decode("utf-8")
        located.append((line, record, None, len(_fields(record))) if row < 0 else (line, record, row, None))

    # Trust, but verify: a located record must hold exactly the values Arrow read for its row
    # (all of them up to VERIFY_SAMPLE, else an even sample; the counts above already agree).
    checked = [x for x in located if x[2] is not None]
    if len(checked) > VERIFY_SAMPLE:
        checked = [checked[int(i)] for i in np.linspace(0, len(checked) - 1, VERIFY_SAMPLE)]
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
    first_line = line_of(data, body_start)
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
