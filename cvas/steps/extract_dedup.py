"""An extract's rows deduplicated and ordered: exact copies merged, rows that differ in any column kept
(key conflicts counted), the order the partition is written in."""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from cvas.core.schemas import KindSpec
from cvas.steps.extract_types import as_numpy

log = logging.getLogger(__name__)

def sort_columns(ks: KindSpec) -> list[str]:
    """The output order: the primary date, the other key columns, then every other column in
    file order. It is the extraction SQL's ORDER BY, so a fresh extract is already sorted
    and the sort costs no data movement."""
    key = [ks.date_column] + [c for c in ks.key if c != ks.date_column]
    return key + [c for c in ks.names if c not in key]


def dedup_sorted(ks: KindSpec, table: pa.Table) -> tuple[pa.Table, int, int]:
    """Remove exact copies (rows equal in every column, null equal to null) and sort by key then
    all columns, nulls last. Rows that share a key but differ in another column are all kept
    (decision D16: a key conflict never drops money; two renewals at the ambiguous hour of a DST
    change are two charges). Returns (table, copies removed, key conflicts): a key conflict is a
    kept row whose complete key equals the previous kept row's."""
    n = table.num_rows
    if n == 0:
        return table, 0, 0
    key = list(ks.key)
    in_order = _is_sorted(table, sort_columns(ks))
    if in_order:
        idx = np.arange(n)
    else:
        # A stable sort by every column: exact copies become adjacent.
        idx = pc.sort_indices(table, sort_keys=[(c, "ascending") for c in sort_columns(ks)],
                              null_placement="at_end").to_numpy()
    # an exact copy has the previous row's key (null as null): compare whole rows only there
    same_key = _same_as_previous(table, key, None if in_order else idx)
    copy = np.zeros(n, dtype=bool)
    candidates = np.flatnonzero(same_key)
    if len(candidates):
        copy[candidates] = _rows_equal(table, idx[candidates], idx[candidates - 1])
    kept = idx[~copy]
    conflicts = 0
    if len(candidates) > int(copy.sum()):
        complete = np.ones(len(kept), dtype=bool)
        for c in key:
            complete &= as_numpy(table.column(c).take(pa.array(kept)).is_valid())
        conflicts = int((_same_as_previous(table, key, kept) & complete & np.roll(complete, 1)).sum())
    removed = n - len(kept)
    if removed == 0 and (n < 2 or bool((np.diff(kept) == 1).all())):
        return table, 0, conflicts          # already in order, nothing removed: no copy
    if in_order:                            # the copies dropped, the order kept: a filter, cheaper than a take
        return table.filter(pa.array(~copy)).combine_chunks(), removed, conflicts
    return _take(table, kept), removed, conflicts


def _same_as_previous(table: pa.Table, columns: list[str], idx: np.ndarray | None) -> np.ndarray:
    """Row idx[i] equals row idx[i-1] in every one of `columns` (null equal to null); False for i=0.
    `idx` None: the table's rows in place."""
    n = table.num_rows if idx is None else len(idx)
    same = np.zeros(n, dtype=bool)
    if n < 2:
        return same
    same[1:] = True
    order = None if idx is None else pa.array(idx)
    for c in columns:
        col = table.column(c) if order is None else table.column(c).take(order)
        cur, prev = col.slice(1), col.slice(0, n - 1)
        same[1:] &= as_numpy(pc.equal(cur, prev)) | (as_numpy(cur.is_null()) & as_numpy(prev.is_null()))
    return same


def _is_sorted(table: pa.Table, columns: list[str]) -> bool:
    """Whether rows are already in ascending order of `columns` (nulls last), ties allowed.

    Adjacent rows are compared column by column until every pair is decided, usually after
    the first two columns: much cheaper than sorting an extract that arrives in order.
    """
    n = table.num_rows
    if n < 2:
        return True
    pairs = None   # the adjacent pairs (by their first row) still undecided; None: every pair
    for name in columns:
        col = table.column(name)
        if pairs is None:
            cur, prev = col.slice(1), col.slice(0, n - 1)
        else:
            cur, prev = col.take(pa.array(pairs + 1)), col.take(pa.array(pairs))
        cur_ok, prev_ok = as_numpy(cur.is_valid()), as_numpy(prev.is_valid())
        before = as_numpy(pc.less(cur, prev)) | (cur_ok & ~prev_ok)       # a value after a null
        if before.any():
            return False
        tied = as_numpy(pc.equal(cur, prev)) | (~cur_ok & ~prev_ok)
        pairs = np.flatnonzero(tied) if pairs is None else pairs[tied]
        if not len(pairs):
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
        equal &= as_numpy(same)
    return equal


def _take(table: pa.Table, order: np.ndarray) -> pa.Table:
    """table.take(order), one column per thread (Arrow's string take is the slow part)."""
    indices = pa.array(order)
    names = table.column_names
    with ThreadPoolExecutor(max_workers=4) as pool:
        cols = list(pool.map(lambda name: table.column(name).take(indices).combine_chunks(), names))
    return pa.Table.from_arrays(cols, schema=table.schema)
