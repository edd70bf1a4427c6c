"""What a load promises: the null markers, the typed values it accepts, the reject file's columns, its
errors, and what it returns."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa


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


VERIFY_SAMPLE = 2000          # located rejects checked against Arrow's values (an even sample beyond)


# Near-unique columns: dictionary encoding would be tried and abandoned, at a cost.
NO_DICTIONARY = frozenset({"tmuserid", "msisdn", "subscription_id", "sbn_id", "sbnid"})


BOM = b"\xef\xbb\xbf"


CONTENT = re.compile(rb"[^\r\n]")


INT64_MAX = 2**63 - 1


INT64_MIN = -(2**63)


INT_TEXT = re.compile(r"-?[0-9]+")


# What a float column accepts (non-finite values are rejected after the cast).
FLOAT_RE = r"^[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?$"


# `YYYY-MM-DD[( |T)HH:MM:SS[.f{1,6}]]` with a real calendar date (leap years included) and
# a real time of day; no zone offset. RE2 has no look-ahead, hence the spelled-out year.
_YEAR = r"(?:[1-9][0-9]{3}|0[1-9][0-9]{2}|00[1-9][0-9]|000[1-9])"


_LEAP = r"(?:[0-9]{2}(?:0[48]|[2468][048]|[13579][26])|(?:0[48]|[2468][048]|[13579][26])00)"


TS_RE = (
    rf"^(?:{_YEAR}-(?:(?:0[13578]|1[02])-(?:0[1-9]|[12][0-9]|3[01])|(?:0[469]|11)-(?:0[1-9]|[12][0-9]|30)"
    rf"|02-(?:0[1-9]|1[0-9]|2[0-8]))|{_LEAP}-02-29)"
    r"(?:[ T](?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](?:\.[0-9]{1,6})?)?$"
)


TS_LENGTHS = pa.array([10, 19, 21, 22, 23, 24, 25, 26], pa.int64())


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
