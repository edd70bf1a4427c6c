"""An extract's text columns typed and validated, one boolean mask per check over whole columns: ids that
fit int64, amounts, timestamps with their accepted forms, the day, the plausible ranges."""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from cvas.core.schemas import FLT, INT, NUMERIC_RANGES, STR, TS, KindSpec
from cvas.steps.load_contract import (AMOUNT_COLUMNS, FLAG_VALUES, FLOAT_RE, INT64_MAX, INT64_MIN, INT_TEXT,
                                      NULLABLE_KEY_COLUMNS, TS_LENGTHS, TS_RE)

log = logging.getLogger(__name__)

@dataclass
class Check:
    """A rule failed by the rows where `mask` is True; `describe(row)` says why for one row."""

    reason_class: str
    column: str
    mask: np.ndarray
    describe: Any
    classify: Any = None        # value -> reason class, when one rule has several

    def class_of(self, value: Any) -> str:
        return self.classify(value) if self.classify else self.reason_class


def as_numpy(mask) -> np.ndarray:
    """A boolean Arrow (chunked) array as numpy, nulls as False."""
    if isinstance(mask, pa.ChunkedArray):
        mask = mask.combine_chunks() if mask.num_chunks != 1 else mask.chunk(0)
    return pc.fill_null(mask, False).to_numpy(zero_copy_only=False)


def _one_chunk(col: pa.ChunkedArray) -> pa.Array:
    """A column as one contiguous array (for kernels mixing it with numpy-made masks)."""
    return col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col


def any_failed(checks: list[Check], n: int) -> np.ndarray | None:
    if not checks:
        return None
    out = np.zeros(n, dtype=bool)
    for check in checks:
        out |= check.mask
    return out


def validate(ks: KindSpec, day: dt.date, raw: pa.Table) -> tuple[list[Check], pa.Table]:
    """Type every column; return the failed checks (in reporting order) and the typed table
    (values that failed are null there)."""
    # One column after another: a thread per column cost more than it saved, even for ten days'
    # rows at once (the workers load other kinds meanwhile), and three times the work on a small day.
    results = [_type_column(name, typ, raw.column(name)) for name, typ in ks.columns]
    typed = {name: out for (name, _), (out, _) in zip(ks.columns, results)}
    checks = [check for _, check in results if check is not None]

    for name in [n for n in ks.names if n in AMOUNT_COLUMNS]:
        bad = as_numpy(pc.less(typed[name], 0.0))
        if bad.any():
            checks.append(Check("negative_amount", name, bad, lambda v, n=name: f"negative {n} ({v})"))

    checks += _range_checks(ks, typed)

    if ks.trans_type_id is not None:
        bad = as_numpy(pc.not_equal(typed["trans_type_id"], ks.trans_type_id))
        if bad.any():
            checks.append(Check("wrong_trans_type", "trans_type_id", bad,
                                 lambda v: f"trans_type_id {v} is not {ks.trans_type_id} ({ks.kind})"))

    date_col = ks.date_column
    day_text = day.isoformat()
    start = pa.scalar(dt.datetime.combine(day, dt.time()), TS)
    end = pa.scalar(dt.datetime.combine(day + dt.timedelta(days=1), dt.time()), TS)
    ts = typed[date_col]
    bad = as_numpy(pc.or_(pc.less(ts, start), pc.greater_equal(ts, end)))
    if bad.any():
        checks.append(Check("not_this_day", date_col, bad,
                             lambda v: f"{date_col} {v[:10]} is not the day {day_text}"))
    bad = as_numpy(raw.column(date_col).is_null())
    if bad.any():
        checks.append(Check("null_date", date_col, bad, lambda v: f"{date_col} is null"))

    nullable = NULLABLE_KEY_COLUMNS.get(ks.kind, frozenset())
    for name in ks.key:
        if name == date_col or name in nullable:
            continue
        bad = as_numpy(raw.column(name).is_null())
        if bad.any():
            checks.append(Check("null_key", name, bad, lambda v, n=name: f"{n} is null (key column)"))

    # Column order first, then row rules: a row's reason class is that of its first problem.
    order = {name: i for i, name in enumerate(ks.names)}
    rank = {"bad_integer": 0, "bad_number": 0, "bad_timestamp": 0, "bad_flag": 0}
    checks.sort(key=lambda c: (rank.get(c.reason_class, 1), order[c.column] if c.reason_class in rank else 0))
    return checks, pa.table(typed, schema=ks.schema)


def _range_checks(ks: KindSpec, typed: dict[str, pa.ChunkedArray]) -> list[Check]:
    """Decision D15: a value outside its column's plausible range (NUMERIC_RANGES) is rejected
    (negative amounts have their own check)."""
    checks = []
    for name, typ in ks.columns:
        if typ not in (INT, FLT):
            continue
        low, high = NUMERIC_RANGES[name]
        col = typed[name]
        bad = np.zeros(len(col), dtype=bool)
        if low > INT64_MIN and name not in AMOUNT_COLUMNS:
            bad |= as_numpy(pc.less(col, low))
        if typ == FLT or high <= INT64_MAX:      # beyond int64 the cast already refused it
            bad |= as_numpy(pc.greater_equal(col, float(high) if typ == FLT else high))
        if bad.any():
            checks.append(Check("out_of_range", name, bad, lambda v, n=name, lo=low, hi=high:
                                 f"{n} {v} is outside its plausible range ({lo} <= {n} < {hi})"))
    return checks


def _type_column(name: str, typ: pa.DataType, col: pa.ChunkedArray) -> tuple[pa.ChunkedArray, Check | None]:
    """One column typed, and the check its bad values failed (None if all are good)."""
    if typ == INT:
        out, bad = _to_int(col)
        check = None if bad is None else Check(
            "bad_integer", name, bad, _int_reason(name),
            lambda v: "int_overflow" if INT_TEXT.fullmatch(v) else "bad_integer")
    elif typ == FLT:
        out, bad = _to_float(col)
        check = None if bad is None else Check(
            "bad_number", name, bad, lambda v: f"{name} {v!r} is not a number")
    elif typ == TS:
        out, bad = _to_timestamp(col)
        check = None if bad is None else Check(
            "bad_timestamp", name, bad, lambda v: f"{name} {v!r} is not a timestamp (YYYY-MM-DD[ HH:MM:SS[.ffffff]])")
    else:
        out, check = col, None
        if name == "instant_rfnd":
            bad = as_numpy(pc.and_(col.is_valid(), pc.invert(pc.is_in(col, pa.array(FLAG_VALUES, STR)))))
            if bad.any():
                check = Check("bad_flag", name, bad, lambda v: f"instant_rfnd {v!r} is not t or f")
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
    ok = as_numpy(ok)
    notnull = as_numpy(col.is_valid())
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
    if not INT_TEXT.fullmatch(text):
        return "is not an integer"
    if not INT64_MIN <= int(text) <= INT64_MAX:
        return "does not fit int64"
    return None


def _int_reason(name: str):
    return lambda v: f"{name} {v if INT_TEXT.fullmatch(v) else repr(v)} {_int_fits(v) or 'is not an integer'}"


def _to_float(col: pa.ChunkedArray) -> tuple[pa.ChunkedArray, np.ndarray | None]:
    """float64 values and the mask of non-null values that are not finite decimal numbers."""
    try:
        out = pc.cast(col, FLT)
    except pa.ArrowInvalid:
        col = _one_chunk(col)
        ok = pc.match_substring_regex(col, FLOAT_RE)
        out = pc.cast(pc.if_else(ok, col, pa.scalar(None, STR)), FLT)
    bad = as_numpy(pc.and_(col.is_valid(), pc.invert(pc.fill_null(pc.is_finite(out), False))))
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
        if pc.all(pc.is_in(lengths, TS_LENGTHS)).as_py() is not False:
            return out, None
    except pa.ArrowInvalid:
        pass
    col = _one_chunk(col)
    ok = pc.match_substring_regex(col, TS_RE)
    out = pc.cast(pc.if_else(ok, col, pa.scalar(None, STR)), TS)
    bad = as_numpy(pc.and_(col.is_valid(), pc.invert(ok)))
    return out, (bad if bad.any() else None)
