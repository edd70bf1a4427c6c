"""The subscription lifecycle view as of a date, folded by DuckDB from the previous state and the new days.

How it is built: `subscription_state.sql` turns transaction rows into per-subscription
aggregates that merge exactly (`subscription_state_merge.sql`), and `subscription_view.sql`
turns a state into the 34 columns. A daily build merges the newest usable state (published
as `subscription_state/<day>.parquet` with its sidecar) with the state of the days after it;
the full build computes the state of every transaction file. Both give the same bytes.

Which subscriptions it holds: every subscription id with at least one ACT or RENO row dated
on or before the as-of date. ACT and RENO are the only events that say a subscription
exists and is billed (its user, CPC and activation); a DCT, CNR or RFND row alone refers to
a subscription whose start lies outside the loaded history, so it has no activation,
revenue or lifetime to report (it appears through `cvas query`). PPD rows are one-off
pay-per-download purchases: they have no subscription id and no lifecycle (no renewal,
deactivation or cancellation), so they are not in the view; `cvas query` shows them per user.

Decisions (LEGACY §8, DESIGN D2–D4, D6, D9; the SQL is `cvas/sql/subscription_view.sql`):

* as of the end of the date: ACT/RENO/DCT count by `trans_date`, CNR by `cancel_date`, RFND by
  `refnd_date`; events after the date, or without a date, are ignored;
* tie-breakers: the ACT/RENO rows of a subscription are ordered by trans_date, then ACT
  before RENO, then regular before UPGRADE (a free activation and its upgrade in the same
  second), then a hash of the remaining columns; "first" is the minimum of that order and
  "latest"/"current" the maximum. The loader keeps one row per (subscription_id,
  trans_date, kind) and a day's file holds only that day's rows, so the hash never decides
  in practice; it keeps the result deterministic regardless. Exact duplicate rows across
  files would break the unique-id check and fail the build loudly. DCT ties: (trans_date,
  channel_dct); CNR ties: (cancel_date, mode); the greatest wins, nulls last;
* the activation is the earliest regular (non-UPGRADE) ACT: `activation_trans_date` (else
  the first transaction's trans_date) and `activation_revenue` (else 0) are its own, and
  `missing_act_record` is true when there is none. `activation_date`, `_campaign` and
  `_channel` are the first transaction's act_date (request_ts), camp_name and channel, as
  the legacy; `activation_month` is always the month of `activation_date`;
* upgrades (D4): `has_upgraded`/`upgrade_date`/`upgraded_to_cpc` come from the latest ACT
  whose channel is UPGRADE and are false/null otherwise; `total_revenue` = activation +
  renewal revenue; `total_revenue_with_upgrade` adds the UPGRADE ACT charges (each ACT is
  counted once);
* status (D3): Deactivated if a qualifying DCT (channel null or not UPGRADE, D2) exists,
  else Cancelled if a CNR does, else Active; `end_date` follows the same order and
  `lifetime_days` runs from activation_date to end_date, else to the as-of date (D6);
* `cpc_list` holds the distinct non-null CPCs in order of first appearance (legacy: a null
  CPC was an element); `cpc_count` is its length; `refund_count` = Σ rfnd_cnt (D9) and the
  refund columns count RFND rows with a subscription id (sbnid) only;
* rows without a subscription id (ACT/RENO) have no lifecycle and are left out.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import logging
import os
import re
import shutil
import time
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from cvas.core import provenance
from cvas.core.freshness import Freshness, is_invalidated
from cvas.core.layout import Layout, day_of_name, days_in_dir, sidecar, transaction_files
from cvas.core.locking import exclusive
from cvas.core.publish import PublishError, staged
from cvas.core.schemas import VIEW_KINDS, spec
from cvas.sql import load_sql

log = logging.getLogger(__name__)

STATUSES: tuple[str, ...] = ("Active", "Cancelled", "Deactivated")

_STR, _INT, _FLT, _TS, _BOOL = pa.string(), pa.int64(), pa.float64(), pa.timestamp("us"), pa.bool_()

# LEGACY §8.3: the 34 columns of subscriptions.parquet, in order, as DuckDB writes them.
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

_AS_OF_DIR = re.compile(r"^as_of=(\d{4}-\d{2}-\d{2})$")


class SubscriptionViewError(PublishError):
    """Raised when a built view breaks its contract (columns, types, unique non-null ids,
    status values); the staged file is then discarded and nothing is published."""


def connect(threads: int | None = None, memory_limit: str | None = None,
            spill_dir: Path | None = None) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB connection (all cores unless `threads` is given). With
    `memory_limit` (DuckDB's syntax, e.g. `1GB`) DuckDB spills to `spill_dir` rather than
    growing past it: the full build over years of history would otherwise take GBs."""
    con = duckdb.connect()
    if threads:
        con.execute(f"set threads = {int(threads)}")
    if memory_limit:
        con.execute(f"set memory_limit = '{checked_memory_limit(memory_limit)}'")
        # without it DuckDB runs out of memory rather than spilling (the outputs are ordered by
        # their own ORDER BY, so their bytes do not change)
        con.execute("set preserve_insertion_order = false")
    if spill_dir is not None:
        spill_dir.mkdir(parents=True, exist_ok=True)
        con.execute(f"set temp_directory = {sql_path(spill_dir)}")
    return con


@contextlib.contextmanager
def view_connection(layout: Layout, threads: int | None = None, memory_limit: str | None = None):
    """A connection for building views under `layout`: past `memory_limit` DuckDB spills into a
    folder of this process in the staging area (outside every dataset), removed afterwards."""
    spill = layout.staging / f"duckdb-spill.{os.getpid()}"
    con = connect(threads, memory_limit, spill if memory_limit else None)
    try:
        yield con
    finally:
        con.close()
        shutil.rmtree(spill, ignore_errors=True)


def checked_memory_limit(value: str) -> str:
    """A DuckDB memory size such as `1GB` or `800MB` (it is formatted into SQL, so it is checked)."""
    if not re.fullmatch(r"\d+(\.\d+)?\s*(KB|MB|GB|TB|KiB|MiB|GiB|TiB)", value.strip(), flags=re.I):
        raise ValueError(f"duckdb_memory_limit {value!r} is not a size such as 1GB or 800MB")
    return value.strip()


def sql_path(path: Path | str) -> str:
    """A layout-made path as a SQL string literal (the only text ever formatted into SQL)."""
    return "'" + str(path).replace("'", "''") + "'"


def register_transactions(con: duckdb.DuckDBPyConnection, layout: Layout,
                          kinds: tuple[str, ...] = VIEW_KINDS, through: dt.date | None = None) -> dict[str, bool]:
    """Create one view per kind over exactly its published partitions (of days up to `through`
    when given): the files the layout names, never whatever else a glob of the folders finds.

    A kind with no file yet becomes an empty relation with its declared schema, so a young
    data root still gives a (smaller) view. Returns {kind: whether it has files}.
    """
    present = {}
    for kind in kinds:
        files = transaction_files(layout, kind, through)
        present[kind] = bool(files)
        if files:
            con.execute(f"create or replace temp view {kind} as select * from "
                        f"read_parquet([{', '.join(sql_path(f) for f in files)}], hive_partitioning = false)")
        else:
            con.register(kind, spec(kind).schema.empty_table())
    return present


def view_sql() -> str:
    """The view query over the `state` table (parameter $as_of)."""
    return load_sql("subscription_view")


def make_state(con: duckdb.DuckDBPyConnection, as_of: dt.date, name: str = "state") -> None:
    """The per-subscription aggregates of the registered transaction relations as of `as_of`,
    as the temp table `name` (subscription_state.sql)."""
    con.execute(f"create or replace temp table {name} as {load_sql('subscription_state')}", {"as_of": as_of})


def copy_view_from_state(con: duckdb.DuckDBPyConnection, as_of: dt.date, dest: Path) -> int:
    """Write the view as of `as_of` from the `state` table to `dest` as Parquet; returns rows."""
    (rows,) = con.execute(f"copy ({view_sql()}) to {sql_path(dest)} (format parquet, compression zstd)",
                          {"as_of": as_of}).fetchone()
    return int(rows)


def copy_view(con: duckdb.DuckDBPyConnection, as_of: dt.date, dest: Path) -> int:
    """The full build: the state of every registered transaction as of `as_of`, then the view
    written by DuckDB to `dest` as Parquet; returns rows."""
    make_state(con, as_of)
    return copy_view_from_state(con, as_of, dest)


def register_days(con: duckdb.DuckDBPyConnection, listing: list[tuple[str, str, Path, str]],
                  after: dt.date, through: dt.date) -> int:
    """One view per kind over the listed files of the days in (after, through]; returns files."""
    lo, hi = f"{after:%Y-%m-%d}", f"{through:%Y-%m-%d}"
    count = 0
    for kind in VIEW_KINDS:
        paths = sorted(str(p) for day, k, p, _ in listing if k == kind and lo < day <= hi)
        count += len(paths)
        if paths:
            files = ", ".join(sql_path(p) for p in paths)
            con.execute(f"create or replace temp view {kind} as select * from "
                        f"read_parquet([{files}], hive_partitioning = false)")
        else:
            con.register(kind, spec(kind).schema.empty_table())
    return count


def fold_inputs(con: duckdb.DuckDBPyConnection, layout: Layout, listing: list[tuple[str, str, Path, str]],
                base: dt.date, as_of: dt.date) -> str:
    """Prepare the fold of the published state as of `base` with the days after it, up to
    `as_of`: `prev_state` over that state's file, `new_state` what those days' transaction
    files add. Returns the merge query (subscription_state_merge.sql), run in one DuckDB pass."""
    register_days(con, listing, base, as_of)
    con.execute(f"create or replace temp view prev_state as select * from "
                f"read_parquet({sql_path(layout.subscription_state(base))})")
    make_state(con, as_of, "new_state")
    return load_sql("subscription_state_merge")


def state_is_usable(layout: Layout, day: dt.date, fresh: Freshness) -> bool:
    """Whether the published state as of `day` may be folded from: its view is fresh by the
    catalogue's one rule (view and state present, not invalidated, the transaction files up to
    `day` unchanged since they were built), no transaction file dated on or before `day` is
    marked for rebuild, and the state's own sidecar, written after it was published, records
    the same files and its row count (a state killed before its sidecar is redone, never used)."""
    if not fresh.state("subscriptions", day).fresh:
        return False
    root, key = layout.transactions_root(), f"{day:%Y-%m-%d}"
    if any(p.is_relative_to(root) and p.name[:10] <= key for p in fresh.marked):
        return False
    path = layout.subscription_state(day)
    meta = provenance.read(layout, path)
    view = provenance.read(layout, layout.subscriptions(day)) or {}
    if meta is None or meta.get("transactions") != view.get("transactions"):
        return False
    try:
        return pq.read_metadata(path).num_rows == meta.get("rows")
    except (OSError, pa.ArrowException):
        return False


def newest_usable_state(layout: Layout, as_of: dt.date) -> dt.date | None:
    """The newest state as of a day on or before `as_of` that is usable (state_is_usable)."""
    fresh = Freshness(layout)
    for day in sorted((d for d in days_in_dir(layout.subscription_state_root, ".parquet") if d <= as_of),
                      reverse=True):
        if state_is_usable(layout, day, fresh):
            return day
    return None


def check_view_file(path: Path, expected_rows: int, con: duckdb.DuckDBPyConnection | None = None) -> dict[str, int]:
    """Enforce the view contract on a written file: the 34 columns and types, the row count,
    `subscription_id` unique and not null, `subscription_status` within STATUSES.

    Returns the number of subscriptions per status.
    """
    schema = pq.read_schema(path)
    got = [(f.name, f.type) for f in schema]
    if [n for n, _ in got] != [n for n, _ in SUBSCRIPTION_COLUMNS]:
        raise SubscriptionViewError(f"{path}: columns {[n for n, _ in got]} differ from the 34 of LEGACY §8.3")
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


def as_of_days(layout: Layout) -> set[dt.date]:
    """The as-of dates with a published view (one listing of the subscriptions root)."""
    found: set[dt.date] = set()
    try:
        entries = list(os.scandir(layout.subscriptions_root))
    except FileNotFoundError:
        return found
    for entry in entries:
        m = _AS_OF_DIR.match(entry.name)
        if m and entry.is_dir():
            day = dt.date.fromisoformat(m.group(1))
            if layout.subscriptions(day).exists():
                found.add(day)
    return found


def transaction_listing(layout: Layout, kinds: tuple[str, ...] = VIEW_KINDS) -> list[tuple[str, str, Path, str]]:
    """Every transaction file of `kinds`, as (day, kind, path, "kind/month/file:size:mtime") from
    one scan per month directory: what views and states record they were built from."""
    entries = []
    for kind in kinds:
        root = layout.transactions_root(kind)
        try:
            months = [e for e in os.scandir(root) if e.name.startswith("year_month=") and e.is_dir()]
        except FileNotFoundError:
            continue
        for month in months:
            for f in os.scandir(month.path):
                day = day_of_name(f.name, ".parquet")
                # exactly the files the layout names: a stray file in the folder is never read
                if day is not None and layout.transactions(kind, day) == Path(f.path):
                    st = f.stat()
                    entries.append((f.name[:10], kind, Path(f.path),
                                    f"{kind}/{month.name}/{f.name}:{st.st_size}:{st.st_mtime_ns}"))
    return entries


def listing_digest(listing: list[tuple[str, str, Path, str]], through: dt.date) -> str:
    """The digest of the listed files dated on or before `through` (a reloaded day changes it)."""
    key = f"{through:%Y-%m-%d}"
    digest = hashlib.sha256("\n".join(sorted(e[3] for e in listing if e[0] <= key)).encode())
    return "sha256:" + digest.hexdigest()


def transaction_listing_digest(layout: Layout, through: dt.date, kinds: tuple[str, ...] = VIEW_KINDS) -> str:
    """A digest of (path, size, mtime) of every transaction file of `kinds` dated on or before
    `through`: what an as-of view was built from. A reloaded or backfilled day changes it."""
    return listing_digest(transaction_listing(layout, kinds), through)


def outside_retention(layout: Layout, as_of: dt.date, keep_days: int) -> bool:
    """Whether a view as of `as_of` would be pruned at once (older than the retention window
    that ends at the newest published as-of)."""
    days = as_of_days(layout)
    return bool(days) and as_of <= max(days) - dt.timedelta(days=keep_days)


def publish_latest(layout: Layout, as_of: dt.date) -> None:
    """Replace the legacy `subscriptions.parquet` with the as-of view, atomically.

    A hard link in the staging area renamed into place: no copy, and readers see the old
    file or the new one. Published files are never modified in place, so sharing the inode
    is safe. Falls back to a copy where links are not supported.
    """
    source = layout.subscriptions(as_of)
    with staged(layout.staging, layout.subscriptions_latest) as tmp:
        try:
            os.link(source, tmp)
        except OSError:
            shutil.copyfile(source, tmp)
    meta = provenance.read(layout, source) or {}
    provenance.record(layout, layout.subscriptions_latest, inputs={}, params={"as_of": str(as_of)},
                      rows=meta.get("rows"), output_hash=meta.get("output_hash"),
                      extra={"as_of": str(as_of), "transactions": meta.get("transactions")})


def prune_views(layout: Layout, keep_days: int) -> list[dt.date]:
    """Remove as-of views older than `keep_days` days before the newest one; returns their dates.

    The window is anchored on the newest published as-of, not the wall clock, so pruning
    is deterministic. The newest is always kept.
    """
    if keep_days < 1:
        raise ValueError(f"subscriptions_keep_days must be at least 1, got {keep_days}")
    days = as_of_days(layout)
    if not days:
        return []
    cutoff = max(days) - dt.timedelta(days=keep_days)
    pruned = sorted(d for d in days if d <= cutoff)
    for day in pruned:
        path = layout.subscriptions(day)
        meta = sidecar(layout, path)
        with contextlib.suppress(FileNotFoundError):
            meta.unlink()
        path.unlink()
        for directory in (path.parent, meta.parent):
            with contextlib.suppress(OSError):
                directory.rmdir()
    if pruned:
        log.info("subscription views: pruned %d as-of snapshot(s) up to %s (keep %d days)", len(pruned),
                 pruned[-1], keep_days)
    prune_states(layout, cutoff)
    return pruned


def prune_states(layout: Layout, cutoff: dt.date) -> None:
    """Remove the states as of `cutoff` or before (the view retention window), sidecars first;
    the newest state is always kept."""
    days = days_in_dir(layout.subscription_state_root, ".parquet")
    for day in sorted(d for d in days if d <= cutoff and d < max(days)):
        path = layout.subscription_state(day)
        sidecar(layout, path).unlink(missing_ok=True)
        path.unlink(missing_ok=True)


def build_subscription_view(layout: Layout, as_of: dt.date, *, keep_days: int = DEFAULT_KEEP_DAYS,
                            threads: int | None = None, full: bool = False,
                            memory_limit: str | None = None) -> dict:
    """Build and publish `subscriptions/as_of=<as_of>/subscriptions.parquet` and its state.

    The state as of `as_of` is folded from the newest usable state on or before it and the
    transaction files of the days after it (newest_usable_state); without one, with `full`, or
    when the view is marked for rebuild, it is built from every transaction file. DuckDB
    streams the state into the staging area, then writes the view from it; both ways give the
    same view bytes. The view is checked (check_view_file) and renamed into place, then the
    state, whose sidecar comes last (publish_view_and_state). When `as_of` is the newest
    published as-of, the legacy `Parquet_Data/aggregated/subscriptions.parquet` is replaced
    with it; views and states older than `keep_days` before the newest are then pruned.
    Publishing, the latest copy and pruning hold a lock, so concurrent builds of several as-of
    dates cannot leave an older view as the latest.
    """
    if keep_days < 1:
        raise ValueError(f"subscriptions_keep_days must be at least 1, got {keep_days}")
    t0 = time.monotonic()
    with view_connection(layout, threads, memory_limit) as con:
        with exclusive(layout.lock("subscriptions")):
            listing = transaction_listing(layout)   # under the lock, before reading: what the build reads
            # a view marked for rebuild (by `cvas verify` or by hand) is not trusted to fold from
            full = full or is_invalidated(layout, layout.subscriptions(as_of))
            base = None if full else newest_usable_state(layout, as_of)
            if base is None:
                register_transactions(con, layout, through=as_of)
                state_sql = load_sql("subscription_state")
            else:
                state_sql = fold_inputs(con, layout, listing, base, as_of)
            rows, status = publish_view_and_state(con, layout, as_of, state_sql, listing_digest(listing, as_of),
                                                  base)
            is_latest = as_of >= max(as_of_days(layout))
            if is_latest:
                publish_latest(layout, as_of)
            pruned = prune_views(layout, keep_days)
    elapsed = time.monotonic() - t0
    log.info("subscription view as of %s: %d subscriptions (%s) in %.2fs, %s%s", as_of, rows,
             ", ".join(f"{k} {v}" for k, v in status.items()), elapsed,
             f"folded from the state as of {base}" if base else "built from every transaction file",
             "; published as latest" if is_latest else "")
    return {"as_of": str(as_of), "rows": rows, "status": status, "latest": is_latest,
            "folded_from": str(base) if base else None, "pruned": [str(d) for d in pruned],
            "seconds": round(elapsed, 3)}


def publish_view_and_state(con: duckdb.DuckDBPyConnection, layout: Layout, as_of: dt.date, state_sql: str,
                           digest: str, base: dt.date | None) -> tuple[int, dict[str, int]]:
    """Stream `state_sql` into the staged state file, write and check the view from it, publish
    the view, then the state; returns (view rows, subscriptions per status).

    The state's old sidecar goes first and its new one is written last: a state is usable only
    once its sidecar names the files it was built from, so one killed anywhere in between is
    redone, never used."""
    target, state = layout.subscriptions(as_of), layout.subscription_state(as_of)
    params = {"as_of": as_of} if "$as_of" in state_sql else {}
    sidecar(layout, state).unlink(missing_ok=True)
    with staged(layout.staging, state) as state_tmp:
        # sorted, so the same inputs give the same bytes (DESIGN 7); snappy: the state is read
        # back once a day, where zstd's smaller file costs more CPU
        (state_rows,) = con.execute(f"copy (select * from ({state_sql}) order by subscription_id) to "
                                    f"{sql_path(state_tmp)} (format parquet, compression snappy)", params).fetchone()
        con.execute(f"create or replace temp view state as select * from read_parquet({sql_path(state_tmp)})")
        with staged(layout.staging, target) as tmp:
            rows = copy_view_from_state(con, as_of, tmp)
            status = check_view_file(tmp, rows, con)
        provenance.record(layout, target, inputs={}, params={"as_of": str(as_of)}, rows=rows,
                          extra={"as_of": str(as_of), "transactions": digest,
                                 "folded_from": str(base) if base else None})
    con.execute("drop view state")
    provenance.record(layout, state, inputs={}, params={"as_of": str(as_of)}, rows=int(state_rows),
                      extra={"as_of": str(as_of), "transactions": digest})
    return rows, status


def write_full_view(layout: Layout, as_of: dt.date, dest: Path, *, threads: int | None = None,
                    memory_limit: str | None = None) -> int:
    """The view as of `as_of` built from every transaction file, written to `dest` and published
    nowhere (the reference `cvas verify` compares the published view with); returns rows."""
    with view_connection(layout, threads, memory_limit) as con:
        register_transactions(con, layout, through=as_of)
        return copy_view(con, as_of, dest)


def read_view_meta(layout: Layout, path: Path) -> dict:
    """The sidecar of a published view (as-of and row count), {} when it has none."""
    return provenance.read(layout, path) or {}


__all__ = [
    "DEFAULT_KEEP_DAYS", "STATUSES", "SUBSCRIPTION_COLUMNS", "SUBSCRIPTION_SCHEMA", "SubscriptionViewError",
    "VIEW_KINDS", "as_of_days", "build_subscription_view", "check_view_file", "connect",
    "copy_view", "outside_retention", "prune_views", "publish_latest", "read_view_meta", "register_transactions",
    "transaction_listing_digest", "view_sql",
]
