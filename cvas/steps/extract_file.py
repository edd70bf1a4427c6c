"""An extract file as the loader reads it: mapped, its encoding and header checked, its records read as
text by Arrow's CSV reader (a cut last record and wide encodings named)."""

from __future__ import annotations

import csv
import io
import logging
import re
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv

from cvas.core.schemas import STR
from cvas.steps.load_contract import BOM, CONTENT, NULL_MARKERS, ExtractFormatError

log = logging.getLogger(__name__)

def check_file(path: Path, data, names: list[str]) -> int:
    """The checks on the file as a whole (not empty, no NUL byte, the header, UTF-8);
    returns the byte offset where the data starts."""
    if not len(data):
        raise ExtractFormatError(f"{path}: empty file, no header")
    nul = data.find(b"\x00")
    if nul >= 0:
        encoding = likely_wide_encoding(data)
        hint = f": it looks like {encoding}; transactions must be UTF-8 (re-export it as UTF-8)" if encoding else ""
        raise ExtractFormatError(f"{path}: line {line_of(data, nul)}: NUL byte in the file{hint}")
    body_start = check_header(path, data, names)
    if np.frombuffer(data, dtype=np.uint8).max(initial=0) >= 0x80:   # the usual extract is all ASCII
        _check_utf8(path, data)
    return body_start


def line_of(data: bytes, offset: int) -> int:
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
    start = len(BOM) if data[:len(BOM)] == BOM else 0
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


def read_strings(path: Path, data: bytes, body_start: int, names: list[str]) -> tuple[pa.Table, list[str]]:
    """Every record with the right field count as large_string columns, and the text of those
    with a wrong field count."""
    if not CONTENT.search(data, body_start):
        return pa.table({n: pa.array([], STR) for n in names}), []
    bad_rows: list[str] = []

    def on_invalid(row) -> str:
        bad_rows.append(row.text)
        return "skip"

    try:
        # An Arrow-native mapping, not a buffer over a Python object: Arrow's worker threads
        # may drop the last reference after read_csv returns, and releasing a Python-backed
        # buffer then needs the GIL (an abort if the interpreter is exiting). One thread: the
        # loader runs as one of several busy worker processes, where Arrow's parallel block
        # parsing cost a renewal day 4 ms more CPU than it saved.
        with pa.memory_map(str(path)) as mapped:
            body = mapped.read_buffer().slice(body_start)
        table = pacsv.read_csv(
            pa.BufferReader(body),
            read_options=pacsv.ReadOptions(column_names=names, use_threads=False),
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
    return line_of(data, start) + i, int(lengths[i])


CUT_REASON = "the file ends inside a quoted field: the last record is cut off (truncated file?)"


def last_record_cut_in_quotes(data, body_start: int, n_rows: int, ncols: int) -> bool:
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
        raise ExtractFormatError(f"{path}: line {line_of(data, exc.start)}: bytes that are not UTF-8 "
                                 f"(offset {exc.start}); transactions must be UTF-8") from None
