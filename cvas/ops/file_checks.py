"""What makes a published file unsound: a view that differs from its reference, a rejects file or an
export CSV whose header, field counts or line count are not what was recorded."""

from __future__ import annotations

import csv
from pathlib import Path

import pyarrow.parquet as pq

from cvas.core import provenance
from cvas.core.layout import parts
from cvas.sql import connect, load_sql, sql_path
from cvas.steps.load_contract import REJECT_COLUMNS


def view_difference(published: Path, reference: Path) -> str | None:
    """None when two subscription views are the same file; else what differs first: the
    columns and types, the first subscription (by id) whose row differs and its first differing
    column, a subscription held by one only, or, rows and values alike, the row order or bytes."""
    got, want = (pq.read_schema(next(iter(parts(p).values()), p) if p.is_dir() else p) for p in (published, reference))
    if not got.equals(want):
        return f"columns or types differ ({', '.join(f'{f.name} {f.type}' for f in got if f not in want) or 'order'})"
    if provenance.file_hash(published) == provenance.file_hash(reference):
        return None
    con = connect()
    try:
        for name, path in (("published", published), ("reference", reference)):
            con.execute(f"create view {name} as select * from read_parquet({sql_path(path)})")
        row = con.execute(load_sql("view_difference")).fetchone()
        if row is None:
            (unsorted,) = con.execute("select count(*) from (select subscription_id < lag(subscription_id) "
                                      "over () as down from published) where down").fetchone()
            return "same rows and values " + ("but not sorted by subscription_id" if unsorted else
                                              "in the same order, different file bytes (encoding)")
    finally:
        con.close()
    sub_id, only_in, p_row, r_row = row
    if only_in:
        return f"subscription {sub_id} is only in the {only_in} view"
    column = next(name for name in p_row if p_row[name] != r_row[name])
    return f"subscription {sub_id}: {column} differs"


def rejects_problem(path: Path, expected: int | None) -> str | None:
    """Why a rejects file is unsound, or None."""
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            reader = csv.reader(fh, strict=True)
            header = next(reader, None)
            rows = sum(1 for _ in reader)
    except FileNotFoundError:
        return "rejects file missing"
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        return f"rejects file unreadable ({type(exc).__name__})"
    if header is None or tuple(header) != REJECT_COLUMNS:
        return "rejects file has the wrong header"
    if expected is not None and rows != expected:
        return f"{rows} rejected rows, the quality report says {expected}"
    return None


def csv_problem(path: Path, header: tuple[str, ...], delimiter: str, lines: int | None = None) -> str | None:
    """Why an export CSV is unsound (header, field counts, data line count), or None."""
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            reader = csv.reader(fh, delimiter=delimiter, strict=True,
                                quoting=csv.QUOTE_MINIMAL if delimiter == "," else csv.QUOTE_NONE)
            found = next(reader, None)
            if found is None or tuple(found) != tuple(header):
                return "wrong or missing header"
            rows = 0
            for fields in reader:
                rows += 1
                if len(fields) != len(header):
                    return f"record {rows + 1}: {len(fields)} fields, expected {len(header)}"
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        return f"unreadable ({type(exc).__name__})"
    if lines is not None and rows != lines:
        return f"{rows} data lines, its sidecar says {lines}"
    return None
