"""Feed health: a loaded (kind, day) compared with the same weekday of the trailing four weeks.

The legacy's worst incident was a feed that delivered stale extracts for weeks unnoticed.
Each load is checked the day it arrives and the verdict published beside its quality
report: `health/<kind>/<date>.json` exists exactly for the flagged days, so one listing
finds them. A flagged day is still published. The check reads
only the four same-weekday quality reports, the stat of the last few landing copies
(hashing only those of the same size) and the day's Parquet footer: its cost does not
grow with history.

Reasons (each flagged separately):
- `empty`: no rows where every day of the history had at least EMPTY_MIN_HISTORY_ROWS;
- `below_band` / `above_band`: rows outside [LOW_RATIO, HIGH_RATIO] x the median of the
  history, by more than NOISE_SIGMAS x sqrt(median) (so small feeds are not flagged for noise);
- `identical_extract`: the landing copy is byte-identical to an earlier day's;
- `one_timestamp`: every row carries the same timestamp in the kind's date column (not for
  RFND, whose refnd_date is a date by construction).
The volume checks need MIN_HISTORY of the WEEKS same weekdays; before that only the
identical and one-timestamp checks apply.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import math
import os
import statistics
from dataclasses import asdict, dataclass, field
from pathlib import Path

import pyarrow.parquet as pq

from cvas.core.layout import Layout
from cvas.core.publish import write_text_atomic
from cvas.core.quality import read_quality
from cvas.core.schemas import spec
from cvas.core.timing import phase

log = logging.getLogger(__name__)

WEEKS = 4
MIN_HISTORY = 3
LOW_RATIO, HIGH_RATIO = 0.5, 2.0
NOISE_SIGMAS = 4.0
IDENTICAL_LOOKBACK_DAYS = 7
MIN_ROWS_ONE_TIMESTAMP = 10
EMPTY_MIN_HISTORY_ROWS = 10  # "the norm is non-empty": every same weekday had at least this many rows
# the extraction casts RFND's timestamp to a date (refnd_date): one value a day is its normal shape
DATE_ONLY_KINDS = ("rfnd",)

EMPTY, BELOW, ABOVE, IDENTICAL, ONE_TIMESTAMP = "empty", "below_band", "above_band", "identical_extract", "one_timestamp"
REASONS = (EMPTY, BELOW, ABOVE, IDENTICAL, ONE_TIMESTAMP)
CHECK_MODES = ("warn", "fail")


@dataclass
class FeedHealth:
    """The verdict on one (kind, day): its rows, the history it was compared with, the flags."""

    kind: str
    date: str
    rows: int
    history: dict[str, int] = field(default_factory=dict)   # same-weekday day -> rows read
    expected: float | None = None
    band: tuple[float, float] | None = None
    flags: dict[str, str] = field(default_factory=dict)     # reason -> detail

    @property
    def flagged(self) -> bool:
        return bool(self.flags)

    def describe(self) -> str:
        return "; ".join(f"{reason}: {detail}" for reason, detail in self.flags.items())


def volume_flags(rows: int, history: list[int]) -> tuple[float | None, tuple[float, float] | None, dict[str, str]]:
    """(expected rows, band, flags) of a day's row count against its same-weekday history."""
    if len(history) < MIN_HISTORY:
        return None, None, {}
    expected = float(statistics.median(history))
    slack = NOISE_SIGMAS * math.sqrt(expected)
    low = min(expected * LOW_RATIO, expected - slack)
    high = max(expected * HIGH_RATIO, expected + slack)
    flags = {}
    if rows == 0 and min(history) >= EMPTY_MIN_HISTORY_ROWS:
        flags[EMPTY] = f"no rows; the last {len(history)} same weekdays had {min(history):,}..{max(history):,}"
    elif rows < low:
        flags[BELOW] = f"{rows:,} rows, expected about {expected:,.0f} (band {max(low, 0):,.0f}..{high:,.0f})"
    elif rows > high:
        flags[ABOVE] = f"{rows:,} rows, expected about {expected:,.0f} (band {max(low, 0):,.0f}..{high:,.0f})"
    return expected, (max(low, 0.0), high), flags


def _rows_read(layout: Layout, kind: str, day: dt.date) -> int | None:
    try:
        return int((read_quality(layout.quality(kind, day)) or {})["rows_read"])
    except (KeyError, TypeError, ValueError):
        return None


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def identical_to(layout: Layout, kind: str, day: dt.date, candidates: list[dt.date]) -> dt.date | None:
    """The most recent of `candidates` whose landing copy has the same bytes as `day`'s."""
    own = layout.raw(kind, day)
    size = os.stat(own).st_size
    own_hash = None
    for other in sorted(candidates, reverse=True):
        path = layout.raw(kind, other)
        try:
            if os.stat(path).st_size != size:
                continue
        except FileNotFoundError:
            continue
        own_hash = own_hash or _sha256(own)
        if _sha256(path) == own_hash:
            return other
    return None


def single_timestamp(partition: Path, column: str) -> str | None:
    """The one value of `column` when every row of the Parquet file has it (from the footer's statistics)."""
    meta = pq.read_metadata(partition)
    if meta.num_rows < MIN_ROWS_ONE_TIMESTAMP:
        return None
    index = meta.schema.to_arrow_schema().get_field_index(column)
    values = set()
    for i in range(meta.num_row_groups):
        stats = meta.row_group(i).column(index).statistics
        if stats is None or not stats.has_min_max or stats.null_count:
            return None
        values |= {stats.min, stats.max}
    return str(values.pop()) if len(values) == 1 else None


def assess(layout: Layout, kind: str, day: dt.date) -> FeedHealth:
    """The feed-health verdict of a loaded (kind, day)."""
    rows = _rows_read(layout, kind, day) or 0
    weeks = [day - dt.timedelta(weeks=w) for w in range(1, WEEKS + 1)]
    history = {d: n for d in weeks if (n := _rows_read(layout, kind, d)) is not None}
    expected, band, flags = volume_flags(rows, list(history.values()))
    health = FeedHealth(kind, str(day), rows, {str(d): n for d, n in history.items()}, expected, band, flags)
    if rows > 0:
        recent = [day - dt.timedelta(days=i) for i in range(1, IDENTICAL_LOOKBACK_DAYS + 1)]
        twin = identical_to(layout, kind, day, sorted(set(recent) | set(weeks)))
        if twin is not None:
            health.flags[IDENTICAL] = f"the landing copy is byte-identical to {twin}'s"
        partition = layout.transactions(kind, day)
        if kind not in DATE_ONLY_KINDS and partition.exists() and (ts := single_timestamp(partition, spec(kind).date_column)):
            health.flags[ONE_TIMESTAMP] = f"all {rows:,} rows have {spec(kind).date_column} = {ts}"
    return health


@phase("feed health")
def check_feed(layout: Layout, kind: str, day: dt.date) -> FeedHealth:
    """Assess a loaded (kind, day); publish the verdict when flagged, else remove an older one."""
    health = assess(layout, kind, day)
    target = layout.health(kind, day)
    if health.flagged:
        write_text_atomic(layout.staging, target, json.dumps(asdict(health), indent=1) + "\n")
        log.info("feed health %s %s flagged: %s", kind, day, health.describe())
    else:
        target.unlink(missing_ok=True)
    return health


def read_health(layout: Layout, kind: str, day: dt.date) -> FeedHealth | None:
    """The published verdict of (kind, day), or None when there is none (or it is unreadable)."""
    try:
        data = json.loads(layout.health(kind, day).read_text(encoding="utf-8"))
        data["band"] = tuple(data["band"]) if data.get("band") else None
        return FeedHealth(**data)
    except (FileNotFoundError, ValueError, TypeError):
        return None
