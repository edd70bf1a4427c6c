"""The subscription view's contract: its 34 columns and statuses, its parts, its errors, the check of
a written part, and the readers of a published view."""

from __future__ import annotations

import logging
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from cvas.core import provenance
from cvas.core.layout import (Layout, parts)
from cvas.core.publish import PublishError
from cvas.sql import sql_path
from cvas.steps.subscription_duckdb import connect

log = logging.getLogger(__name__)

STATUSES: tuple[str, ...] = ("Active", "Cancelled", "Deactivated")


_STR, _INT, _FLT, _TS, _BOOL = pa.string(), pa.int64(), pa.float64(), pa.timestamp("us"), pa.bool_()


# legacy rule L8.3: the 34 columns of subscriptions.parquet, in order, as DuckDB writes them.
SUBSCRIPTION_COLUMNS: tuple[tuple[str, pa.DataType], ...] = (
    ("subscription_id", _INT), ("tmuserid", _STR), ("msisdn", _STR), ("cpc_list", pa.list_(_INT)),
    ("cpc_count", _INT), ("first_cpc", _INT), ("current_cpc", _INT), ("has_upgraded", _BOOL),
    ("upgrade_date", _TS), ("upgraded_to_cpc", _INT), ("activation_date", _TS), ("activation_trans_date", _TS),
    ("missing_act_record", _BOOL), ("activation_campaign", _STR), ("activation_channel", _STR),
    ("activation_revenue", _FLT), ("activation_month", _STR), ("renewal_count", _INT), ("renewal_revenue", _FLT),
    ("last_renewal_date", _TS), ("first_renewal_date", _TS), ("last_activity_date", _TS),
    ("deactivation_date", _TS), ("deactivation_mode", _STR), ("cancellation_date", _TS),
    ("cancellation_mode", _STR), ("refund_count", _INT), ("total_refunded", _FLT), ("last_refund_date", _TS),
    ("total_revenue", _FLT), ("total_revenue_with_upgrade", _FLT), ("subscription_status", _STR),
    ("lifetime_days", _INT), ("end_date", _TS),
)


SUBSCRIPTION_SCHEMA = pa.schema([pa.field(n, t) for n, t in SUBSCRIPTION_COLUMNS])


DEFAULT_KEEP_DAYS = 7


# a view built without a usable state over more days than this is built a year at a time
# (chunked_state): one pass over a year fits DuckDB in 1GB (about 6 s at 30,000 rows a day);
# one over years of history would spill for most of its time
CHUNK_DAYS = 366


class SubscriptionViewError(PublishError):
    """Raised when a built view breaks its contract (columns, types, unique non-null ids,
    status values); the staged file is then discarded and nothing is published."""


# The parts of the Active and Cancelled subscriptions, rewritten every day (subscription_part.sql's buckets).
OPEN_PARTS = ("open-0", "open-1", "open-2", "open-3")


def check_view_file(path: Path, expected_rows: int, con: duckdb.DuckDBPyConnection | None = None) -> dict[str, int]:
    """Enforce the view contract on a written part file: the 34 columns and types, the row
    count, `subscription_id` unique and not null, `subscription_status` within STATUSES.

    Returns the number of subscriptions per status.
    """
    schema = pq.read_schema(path)
    got = [(f.name, f.type) for f in schema]
    if [n for n, _ in got] != [n for n, _ in SUBSCRIPTION_COLUMNS]:
        raise SubscriptionViewError(f"{path}: columns {[n for n, _ in got]} differ from the 34 of legacy rule L8.3")
    wrong = [f"{n}: {t} (expected {e})" for (n, t), (_, e) in zip(got, SUBSCRIPTION_COLUMNS) if not t.equals(e)]
    if wrong:
        raise SubscriptionViewError(f"{path}: column types differ: {'; '.join(wrong)}")
    own = con is None
    con = con or connect()
    try:
        rows, distinct, null_ids, bad_status, by_status = con.execute(
            f"select count(*), count(distinct subscription_id), count(*) - count(subscription_id), "
            f"count(*) filter (where subscription_status is null "
            f"or not list_contains($statuses, subscription_status)), "
            f"histogram(subscription_status) "
            f"from read_parquet({sql_path(path)})", {"statuses": list(STATUSES)}).fetchone()
    finally:
        if own:
            con.close()
    if rows != expected_rows:
        raise SubscriptionViewError(f"{path}: {rows} rows written, the query returned {expected_rows}")
    if null_ids or distinct != rows:
        raise SubscriptionViewError(f"{path}: subscription_id must be unique and not null "
                                    f"({rows} rows, {distinct} distinct ids, {null_ids} null)")
    if bad_status:
        raise SubscriptionViewError(f"{path}: {bad_status} row(s) with a status outside {', '.join(STATUSES)}")
    return {k: int(v) for k, v in sorted((by_status or {}).items())}


class ViewGapError(SubscriptionViewError):
    """Raised when a view would be built over a day whose transactions are not loaded: the view as
    of a day needs every day of history up to it."""


def read_view_table(path: Path) -> pa.Table:
    """A published view (a folder of parts, or the single file of earlier versions) as one
    Arrow table in the 34 columns, sorted by subscription id."""
    files = list(parts(path).values()) if Path(path).is_dir() else [Path(path)]
    tables = [pq.ParquetFile(f).read() for f in files]   # ParquetFile: no `as_of=` column from the path
    table = pa.concat_tables(tables) if tables else SUBSCRIPTION_SCHEMA.empty_table()
    return table.sort_by("subscription_id")


def read_view_meta(layout: Layout, path: Path) -> dict:
    """The sidecar of a published view (as-of and row count), {} when it has none."""
    return provenance.read(layout, path) or {}
