"""CSV records with the physical lines they span, so that an error can name the line of a file."""

from __future__ import annotations

import csv
import io
import mmap
import os
from pathlib import Path
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

# A record may be as large as a file (a quoted field cut by truncation runs to the end).
# Raised once for the process and never lowered: a restore by one reader while another
# thread is reading would make that one fail.
_FIELD_LIMIT = 2**31 - 1


@dataclass(frozen=True)
class CsvRecord:
    """One record: its fields ([] for a blank line) and the 1-based physical lines it spans."""

    start: int
    end: int
    fields: list[str]


class CsvLineError(csv.Error):
    """Raised when the csv module cannot read a record (e.g. strict mode and a file that ends
    inside quotes). `start` is the line where that record starts, `line` the last line read;
    the message is the csv module's own."""

    def __init__(self, reason: str, start: int, line: int) -> None:
        super().__init__(reason)
        self.start, self.line = start, line


def physical_lines(text: str) -> Iterator[str]:
    """The physical lines of `text`, line ends kept: \\n, \\r\\n and a lone \\r each end one."""
    return iter(io.StringIO(text, newline=""))


def records(lines: Iterable[str], **fmtparams) -> Iterator[CsvRecord]:
    """Every record of `lines` (physical lines with their ends, e.g. `physical_lines(text)` or
    a file opened with newline=""), blank lines included, in order.

    Quoted fields may hold line breaks, so a record spans lines `start`..`end`. `fmtparams`
    go to `csv.reader` (strict, delimiter, quoting). Lazy: the next line is read only when
    the next record is asked for, so a caller counting bytes as it feeds lines knows where
    each record ends.
    """
    reader = _reader(lines, fmtparams)
    start = 1
    try:
        for fields in reader:
            yield CsvRecord(start, reader.line_num, fields)
            start = reader.line_num + 1
    except csv.Error as exc:
        raise CsvLineError(str(exc), start, reader.line_num) from None


def count_records(lines: Iterable[str], **fmtparams) -> int:
    """The number of non-blank records of `lines` (as `records` splits them), at the csv
    module's own speed: no record objects. CsvLineError as `records` raises it."""
    reader = _reader(lines, fmtparams)
    try:
        return sum(1 for fields in reader if fields)
    except csv.Error as exc:
        raise CsvLineError(str(exc), reader.line_num, reader.line_num) from None


def count_records_quick(data) -> int | None:
    """`count_records` of a file's bytes `data` without the csv module, or None when this count
    cannot be sure to agree with it: a record ends at a line feed outside quotes (quotes
    counted by parity), and is counted unless empty. The parity agrees with the csv module
    when every opening quote starts a field (after `,`, a line feed, the file's start or a
    closing quote: `""`) and every closing quote ends one (before `,`, a line feed, a quote or
    the end); a file with a CR or NUL byte, or ending inside quotes, is left to the csv module."""
    import numpy as np

    arr = np.frombuffer(data, dtype=np.uint8)
    if not len(arr):
        return 0
    if data.find(b"\r") >= 0 or data.find(b"\x00") >= 0:
        return None
    newlines = np.flatnonzero(arr == 10)
    quotes = np.flatnonzero(arr == 34)
    if len(quotes):
        if len(quotes) % 2:
            return None                                   # ends inside quotes
        opening, closing = quotes[0::2], quotes[1::2]
        before = arr[np.maximum(opening - 1, 0)]
        after = arr[np.minimum(closing + 1, len(arr) - 1)]
        if not (np.isin(before, (44, 10, 34)) | (opening == 0)).all():
            return None
        if not (np.isin(after, (44, 10, 34)) | (closing == len(arr) - 1)).all():
            return None
        newlines = newlines[np.searchsorted(quotes, newlines) % 2 == 0]
    starts = np.concatenate(([0], newlines + 1))
    ends = np.concatenate((newlines, [len(arr)]))
    return int((ends > starts).sum())


def _reader(lines: Iterable[str], fmtparams: dict):
    """A csv.reader over `lines` that takes fields up to _FIELD_LIMIT."""
    if csv.field_size_limit() < _FIELD_LIMIT:
        csv.field_size_limit(_FIELD_LIMIT)
    return csv.reader(lines, **fmtparams)


def map_file(path: Path) -> mmap.mmap | bytes:
    """The file's bytes, memory-mapped (no copy; the mapping closes when unreferenced)."""
    with open(path, "rb") as fh:
        if os.fstat(fh.fileno()).st_size == 0:
            return b""
        return mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)

