"""The subscription lifecycle view as of a date, folded by DuckDB from the previous state and the new days.

How it is built: `subscription_state.sql` turns transaction rows into per-subscription
aggregates that merge exactly (`subscription_state_merge.sql`), and `subscription_view.sql`
turns a state into the 34 columns. View and state are folders of parts
(`subscription_part.sql`): `open-0.parquet` .. `open-3.parquet` hold the Active and Cancelled
subscriptions (by subscription id mod 4), one `deactivated-YYYY-MM.parquet` per deactivation
month holds the rest. A deactivated row no longer changes with the as-of date, so a daily
build merges the newest usable state (`subscription_state/<day>.parquet/`, with its sidecar)
with the state of the days after it and writes only the open parts and the months those
days touch; the other months are hard links to the previous view's and state's files. The
daily cost therefore follows the active base, not the history. The full build computes the
state of every transaction file. Both give the same bytes, part for part. Readers open the
folder as one table (DuckDB `read_parquet` of the folder, pandas, pyarrow, Spark); each part
is sorted by subscription id.

Which subscriptions it holds: every subscription id with at least one ACT or RENO row dated
on or before the as-of date. ACT and RENO are the only events that say a subscription
exists and is billed (its user, CPC and activation); a DCT, CNR or RFND row alone refers to
a subscription whose start lies outside the loaded history, so it has no activation,
revenue or lifetime to report (it appears through `cvas query`). PPD rows are one-off
pay-per-download purchases: they have no subscription id and no lifecycle (no renewal,
deactivation or cancellation), so they are not in the view; `cvas query` shows them per user.

Decisions (legacy rule L8, decisions D2, D3, D4, D6, D9; the SQL is `cvas/sql/subscription_view.sql`):

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
* upgrades (decision D4): `has_upgraded`/`upgrade_date`/`upgraded_to_cpc` come from the latest ACT
  whose channel is UPGRADE and are false/null otherwise; `total_revenue` = activation +
  renewal revenue; `total_revenue_with_upgrade` adds the UPGRADE ACT charges (each ACT is
  counted once);
* status (decision D3): Deactivated if a qualifying DCT (channel null or not UPGRADE, decision D2) exists,
  else Cancelled if a CNR does, else Active; `end_date` follows the same order and
  `lifetime_days` runs from activation_date to end_date, else to the as-of date (decision D6);
* `cpc_list` holds the distinct non-null CPCs in order of first appearance (legacy: a null
  CPC was an element); `cpc_count` is its length; `refund_count` = Σ rfnd_cnt (decision D9) and the
  refund columns count RFND rows with a subscription id (sbnid) only;
* rows without a subscription id (ACT/RENO) have no lifecycle and are left out.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import os
import re
import shutil
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from cvas import sql
from cvas.core import provenance
from cvas.core.catalogue import writer_lock
from cvas.core.freshness import invalidated, is_invalidated
from cvas.core.layout import (Layout, as_of_days, days_in_dir, part_stats, parts, sidecar, transaction_days,
                              transaction_digest, transaction_files)
from cvas.core.locking import exclusive
from cvas.core.publish import PublishError, staged_dir
from cvas.core.schemas import VIEW_KINDS, spec
from cvas.sql import load_sql, sql_path

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
# a view built without a usable state over more days than this is built a quarter at a time
# (chunked_state): the one-pass build of years of history takes GBs of memory
CHUNK_DAYS = 92


class SubscriptionViewError(PublishError):
    """Raised when a built view breaks its contract (columns, types, unique non-null ids,
    status values); the staged file is then discarded and nothing is published."""


def connect(threads: int | None = None, memory_limit: str | None = None,
            spill_dir: Path | None = None) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB connection (all cores unless `threads` is given). With
    `memory_limit` (DuckDB's syntax, e.g. `1GB`) DuckDB spills to `spill_dir` rather than
    growing past it: the full build over years of history would otherwise take GBs."""
    con = sql.connect(threads=threads or None)
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


def register_transactions(con: duckdb.DuckDBPyConnection, layout: Layout,
                          kinds: tuple[str, ...] = VIEW_KINDS, through: dt.date | None = None) -> dict[str, bool]:
    """Create one view per kind over exactly its published partitions (of days up to `through`
    when given): the files the layout names, never whatever else a glob of the folders finds.

    A kind with no file yet becomes an empty relation with its declared schema, so a young
    data root still gives a (smaller) view. Returns {kind: whether it has files}.
    """
    present = {}
    for kind in kinds:
        present[kind] = _register_files(con, kind, transaction_files(layout, kind, through))
    return present


def _register_files(con: duckdb.DuckDBPyConnection, kind: str, files: list[Path]) -> bool:
    if files:
        con.execute(f"create or replace temp view {kind} as select * from "
                    f"read_parquet([{', '.join(sql_path(f) for f in files)}], hive_partitioning = false)")
    else:
        con.register(kind, spec(kind).schema.empty_table())
    return bool(files)


def view_sql() -> str:
    """The view query over the `state` table (parameter $as_of), its rows in the order of `state`."""
    return load_sql("subscription_view")


def make_state(con: duckdb.DuckDBPyConnection, as_of: dt.date, name: str = "state", *, shared: bool = False) -> None:
    """The per-subscription aggregates of the registered transaction relations as of `as_of`,
    as the temp table `name` (subscription_state.sql); with `shared`, as a table of the
    in-memory database, which the cursors writing the parts see (_each_part: a temp table is
    its connection's own, and the faster one to build)."""
    con.execute(f"create or replace {'' if shared else 'temp '}table {name} as {load_sql('subscription_state')}",
                {"as_of": as_of})


# -- parts -------------------------------------------------------------------------------------

# The parts of the Active and Cancelled subscriptions, rewritten every day (subscription_part.sql's buckets).
OPEN_PARTS = ("open-0", "open-1", "open-2", "open-3")


# Parts written at once, each on a cursor of its own: a part smaller than one of DuckDB's row
# groups is sorted and written by one thread, so several go side by side. A fold writes two at
# a time (two quarter-size sorts of the active base in memory: the daily fold's memory is what
# the morning run is held to, a chunked build's what a backfill is); the one-pass build from
# every transaction file, four (about 0.15 s faster over a year, 100 MiB more).
FOLD_WRITERS = 2
BUILD_WRITERS = 4


def _each_part(con: duckdb.DuckDBPyConnection, sources: dict[str, str], write, writers: int) -> dict[str, Any]:
    """{part: write(cursor, part, rows_sql)} for every part of `sources`, `writers` at a time,
    the open parts (the largest) first. Each runs on a cursor of its own (its own temp views and
    session settings; `sources` may read files and the database's tables, not `con`'s temp
    objects). Every write is deterministic, so the bytes do not depend on which runs first."""
    order = sorted(sources, key=lambda name: (name not in OPEN_PARTS, name))

    def one(name: str):
        cursor = con.cursor()
        try:
            return write(cursor, name, sources[name])
        finally:
            cursor.close()

    with ThreadPoolExecutor(max_workers=writers) as pool:
        return dict(sorted(zip(order, pool.map(one, order))))


def _write_state_part(con: duckdb.DuckDBPyConnection, name: str, rows_sql: str, state_dir: Path) -> int | None:
    """Write one part's state file from its rows' query (parameter $part), sorted by
    subscription id (the same inputs give the same bytes, principle P7); returns its rows, or
    None for an empty part other than an open one, which is not written."""
    state_file = state_dir / f"{name}.parquet"
    # snappy: the state is read back once a day, where zstd's smaller file costs more CPU
    (rows,) = con.execute(f"copy ({rows_sql} order by subscription_id) to {sql_path(state_file)} "
                          f"(format parquet, compression snappy)",
                          {"part": name} if "$part" in rows_sql else {}).fetchone()
    if not rows and name not in OPEN_PARTS:
        state_file.unlink()
        return None
    return int(rows)


def _write_state_parts(con: duckdb.DuckDBPyConnection, sources: dict[str, str], state_dir: Path) -> dict[str, int]:
    """Write each part's state file (_write_state_part, _each_part, FOLD_WRITERS at a time: a
    chunked build's intermediate states). Returns {part: rows} of the parts written."""
    written = _each_part(con, sources, lambda cursor, name, rows_sql: _write_state_part(cursor, name, rows_sql,
                                                                                        state_dir), FOLD_WRITERS)
    return {name: rows for name, rows in written.items() if rows is not None}


def _write_part(con: duckdb.DuckDBPyConnection, as_of: dt.date, name: str, rows_sql: str, state_dir: Path,
                view_dir: Path) -> dict | None:
    """Write one part's state file (_write_state_part), then its view from that file, checked
    (check_view_file). Returns the facts for the sidecars, None for a part not written."""
    state_rows = _write_state_part(con, name, rows_sql, state_dir)
    if state_rows is None:
        return None
    state_file, view_file = state_dir / f"{name}.parquet", view_dir / f"{name}.parquet"
    con.execute(f"create or replace temp view state as select * from read_parquet({sql_path(state_file)})")
    try:
        view_rows = copy_view_from_state(con, as_of, view_file, state_sorted=True)
    finally:
        con.execute("drop view if exists state")
    return {"state_rows": state_rows, "rows": view_rows, "status": check_view_file(view_file, view_rows, con),
            "hash": provenance.file_hash(view_file), "state_hash": provenance.file_hash(state_file)}


def _write_parts(con: duckdb.DuckDBPyConnection, as_of: dt.date, sources: dict[str, str], state_dir: Path,
                 view_dir: Path, writers: int = BUILD_WRITERS) -> dict[str, dict]:
    """Write each part's state and view (_write_part, _each_part, `writers` at a time). Returns
    {part: facts for the sidecars} of the parts written."""
    written = _each_part(con, sources, lambda cursor, name, rows_sql: _write_part(cursor, as_of, name, rows_sql,
                                                                                  state_dir, view_dir), writers)
    return {name: facts for name, facts in written.items() if facts is not None}


def _sources(relation: str, names: set[str], carry: dict[str, Path]) -> dict[str, str]:
    """{part: the query of its rows}: those of `relation` in it, plus, for a part in `carry`,
    the rows of that earlier state file the new days do not touch (streamed from the file)."""
    sources = {}
    for name in names | set(OPEN_PARTS):
        sources[name] = f"select * exclude (part) from {relation} where part = $part"
        if name in carry:
            sources[name] += (f" union all select p.* from read_parquet({sql_path(carry[name])}) as p "
                              f"anti join new_state as n using (subscription_id)")
    return sources


def copy_view_from_state(con: duckdb.DuckDBPyConnection, as_of: dt.date, dest: Path, *,
                         state_sorted: bool = False) -> int:
    """Write the view as of `as_of` from the `state` relation to `dest` as Parquet, sorted by
    subscription id; returns rows. With `state_sorted` (`state` is one Parquet file sorted by
    subscription id, as _write_state_parts writes it) the rows keep that order (the view is a
    scan, a filter and projections: insertion_order) and are not sorted again, which saves
    the sort's time and memory and gives the same bytes.

    The state files themselves are always written by an ORDER BY: a filtered scan would keep
    their order too, but DuckDB cuts row groups where its input's batches end, so the full
    build and the fold (whose parts join the earlier state) would write the same rows in
    different bytes."""
    query = view_sql() if state_sorted else f"{view_sql()} order by subscription_id"
    with insertion_order(con):
        (rows,) = con.execute(f"copy ({query}) to {sql_path(dest)} (format parquet, compression zstd)",
                              {"as_of": as_of}).fetchone()
    return int(rows)


@contextlib.contextmanager
def insertion_order(con: duckdb.DuckDBPyConnection):
    """DuckDB keeps the order of the rows it reads while inside (`preserve_insertion_order`;
    the connection's own setting is restored after). A scan of one table or file, filters
    and projections then keep their input's order (DuckDB's documented guarantee)."""
    (before,) = con.execute("select current_setting('preserve_insertion_order')").fetchone()
    con.execute("set session preserve_insertion_order = true")   # this connection's: not its other cursors'
    try:
        yield con
    finally:
        con.execute(f"set session preserve_insertion_order = {'true' if before else 'false'}")


def full_state(con: duckdb.DuckDBPyConnection, layout: Layout, as_of: dt.date, scratch: Path) -> dict[str, str]:
    """The state of every transaction file up to `as_of`, each row with its part, streamed by
    DuckDB into the new folder `scratch` partitioned by part (`part=<name>/`, unsorted: each
    part's state file is sorted when it is written, so a sort of the whole history would be
    work done twice), so each part's rows are read back from its own files and years of history
    need not fit in memory. Returns {part: the query of its rows} for every part, with no
    earlier files to carry rows from."""
    register_transactions(con, layout, through=as_of)
    con.execute(load_sql("subscription_part"))
    con.execute(f"copy (select *, subscription_part(latest_dct, subscription_id) as part "
                f"from ({load_sql('subscription_state')})) "
                # uncompressed: read once, right after, then removed (snappy costs more CPU than it saves)
                f"to {sql_path(scratch)} (format parquet, compression uncompressed, partition_by (part))",
                {"as_of": as_of})
    for name in OPEN_PARTS:
        folder = scratch / f"part={name}"
        if not folder.is_dir():   # no subscription is open there: the part is still written, empty
            folder.mkdir(parents=True)
            con.execute(f"copy (select * from ({load_sql('subscription_state')}) where false) "
                        f"to {sql_path(folder / 'empty.parquet')} (format parquet)", {"as_of": as_of})
    return {d.name.removeprefix("part="): f"select * from read_parquet({sql_path(d / '*.parquet')}, "
                                          f"hive_partitioning = false)"
            for d in scratch.iterdir() if d.name.startswith("part=")}


def fold_state(con: duckdb.DuckDBPyConnection, layout: Layout, base: Path, after: dt.date,
               as_of: dt.date, rewrite: set[str] = frozenset()) -> dict[str, str]:
    """`folded_state`: the state in the folder `base` (as of `after`) folded with the transaction
    files of the days after it, up to `as_of`, in one DuckDB pass (subscription_state_merge.sql),
    for the parts those days change: the open parts, the deactivated months holding a
    subscription they touch, and the months of the deactivations they bring. Returns {part: the query of its
    rows} for those parts (`folded_state` holds the subscriptions the days touch; the others are
    streamed from the base's file of the part), and the parts named in `rewrite` (whose view
    part cannot be carried forward). The base's other parts are unchanged."""
    for kind in VIEW_KINDS:
        files = [layout.transactions(kind, after + dt.timedelta(days=i))
                 for i in range(1, (as_of - after).days + 1)]
        _register_files(con, kind, [f for f in files if f.exists()])
    make_state(con, as_of, "new_state", shared=True)
    con.execute(load_sql("subscription_part"))
    before = parts(base)
    closed = [path for name, path in before.items() if name not in OPEN_PARTS]
    touched: set[str] = set()
    if closed:
        touched = {Path(r[0]).stem for r in con.execute(
            f"select distinct filename from read_parquet([{', '.join(sql_path(p) for p in closed)}], "
            f"filename = true) as p semi join new_state as n using (subscription_id)").fetchall()}
    landing = {r[0] for r in con.execute("select distinct subscription_part(latest_dct, subscription_id) "
                                         "from new_state where latest_dct is not null").fetchall()}
    changed = touched | landing | set(OPEN_PARTS) | (set(rewrite) & set(before))
    files = [before[name] for name in sorted(changed) if name in before]
    con.execute(f"create or replace temp view prev_state as select * from "
                f"read_parquet([{', '.join(sql_path(p) for p in files)}])")
    con.execute(f"create or replace table folded_state as select *, "
                f"subscription_part(latest_dct, subscription_id) as part from ({load_sql('subscription_state_merge')})")
    return _sources("folded_state", changed, {name: before[name] for name in changed if name in before})


def _span(layout: Layout, as_of: dt.date) -> int:
    """Days from the first transaction file to `as_of`, both included (0 without any)."""
    days = [d for kind in VIEW_KINDS for d in transaction_days(layout, kind) if d <= as_of]
    return (as_of - min(days)).days + 1 if days else 0


def chunked_state(con: duckdb.DuckDBPyConnection, layout: Layout, as_of: dt.date, work: Path,
                  chunk_days: int, base: dt.date | None = None) -> tuple[dict[str, str], int]:
    """The state up to `as_of` in bounded memory, each intermediate state written as part files
    into `work` (a staging folder), never published. Without `base`: the first `chunk_days`
    days of the transaction files in full, then folded forward `chunk_days` at a time
    (fold_state). With `base` (a usable state more than `chunk_days` days before `as_of`, as a
    backfill after a gap finds it): folded forward from that state `chunk_days` at a time. Fold
    and full build agree byte for byte, so either equals full_state. Returns ({part: the query of
    its rows} over the last state's files, the passes over transaction files it made)."""
    if base is None:
        days = sorted({d for kind in VIEW_KINDS for d in transaction_days(layout, kind) if d <= as_of})
        start = min((days[0] if days else as_of) + dt.timedelta(days=chunk_days - 1), as_of)
        folder = work / "chunk-0"
        folder.mkdir(parents=True)
        _write_state_parts(con, full_state(con, layout, start, work / "first"), folder)
    else:
        start, folder = base, layout.subscription_state(base)   # published: read, never removed
    ends = [start] + [min(start + dt.timedelta(days=chunk_days * i), as_of)
                      for i in range(1, -(-(as_of - start).days // chunk_days) + 1)]
    for i, (after, end) in enumerate(zip(ends, ends[1:]), start=1):
        previous, folder = folder, work / f"chunk-{i}"
        folder.mkdir(parents=True)
        sources = fold_state(con, layout, previous, after, end)
        _write_state_parts(con, sources, folder)
        for name, path in parts(previous).items():
            if name not in sources:
                os.link(path, folder / path.name)
        if previous.is_relative_to(work):
            shutil.rmtree(previous)
    sources = {name: f"select * from read_parquet({sql_path(path)})" for name, path in parts(folder).items()}
    return sources, len(ends) - (base is not None)


def state_is_usable(layout: Layout, day: dt.date, marked: set[Path]) -> bool:
    """Whether the published state as of `day` may be folded from: its sidecar (written last, so a
    state killed before it is redone, never used) records the transaction files now present up
    to `day` (a change to any day up to it makes it unusable), every part is the file it recorded
    (size and mtime: a part edited in place is never folded from), and neither its view nor a
    transaction file dated on or before `day` is marked for rebuild."""
    path = layout.subscription_state(day)
    root, key = layout.transactions_root(), f"{day:%Y-%m-%d}"
    if layout.subscriptions(day) in marked or path in marked \
            or any(p.is_relative_to(root) and p.name[:10] <= key for p in marked):
        return False
    meta = provenance.read(layout, path)
    if meta is None or meta.get("transactions") != transaction_digest(layout, day, VIEW_KINDS):
        return False
    return not provenance.parts_damage(meta.get("parts"), part_stats(path))


def newest_usable_state(layout: Layout, as_of: dt.date) -> dt.date | None:
    """The newest state as of a day on or before `as_of` that is usable (state_is_usable)."""
    marked = invalidated(layout)
    for day in sorted((d for d in days_in_dir(layout.subscription_state_root, ".parquet") if d <= as_of),
                      reverse=True):
        if state_is_usable(layout, day, marked):
            return day
    return None


def unusable_view_parts(layout: Layout, base: dt.date) -> set[str]:
    """The parts of the view as of `base` that may not be carried into a later view: those that
    are not the files its sidecar recorded (edited in place, truncated, replaced, missing), or
    every part when the view or its sidecar is gone. They are written again from the state."""
    view = layout.subscriptions(base)
    meta = provenance.read(layout, view)
    names = set(parts(layout.subscription_state(base)))
    if meta is None:
        return names
    recorded, now = meta.get("parts") or {}, part_stats(view)
    return {n for n in names if n not in now or provenance.parts_damage({n: recorded.get(n)}, {n: now[n]})}


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


def outside_retention(layout: Layout, as_of: dt.date, keep_days: int) -> bool:
    """Whether a view as of `as_of` would be pruned at once (older than the retention window
    that ends at the newest published as-of)."""
    days = as_of_days(layout)
    return bool(days) and as_of <= max(days) - dt.timedelta(days=keep_days)


def publish_latest(layout: Layout) -> dict:
    """Replace the legacy `Parquet_Data/aggregated/subscriptions.parquet` with a copy of the
    newest as-of view, atomically (readers see the old view or the new one; DuckDB, pandas,
    pyarrow and Spark read the folder as one table). A copy, not links: an analyst who edits
    this folder in place changes no snapshot or state of cvas's. Its sidecar records the as-of
    and the parts' hashes, which are the view's (`expect` of `subscriptions_latest` in the
    catalogue: it is fresh only while it is exactly the newest as-of view). Files in the old
    folder that cvas did not write are set aside first (`set_strays_aside`)."""
    with exclusive(writer_lock(layout, "subscriptions")):
        return _copy_latest(layout)


def _copy_latest(layout: Layout) -> dict:
    """`publish_latest` for a caller holding the subscriptions lock."""
    days = as_of_days(layout)
    if not days:
        raise SubscriptionViewError("no subscription view is published yet: nothing to copy")
    as_of = max(days)
    source, target = layout.subscriptions(as_of), layout.subscriptions_latest
    meta = provenance.read(layout, source)
    problem = "no provenance sidecar" if meta is None else provenance.parts_damage(meta.get("parts"),
                                                                                  part_stats(source))
    if problem:
        raise SubscriptionViewError(f"{source.relative_to(layout.root)}: {problem}; it is rebuilt first "
                                    f"(`cvas backfill --start {as_of} --end {as_of}`)")
    sidecar(layout, target).unlink(missing_ok=True)
    set_strays_aside(layout, target)
    with staged_dir(layout.staging, target) as tmp:
        for path in parts(source).values():
            shutil.copyfile(path, tmp / path.name)
    return record_parts(layout, target, meta["parts"], rows=meta.get("rows"),
                        extra={"as_of": str(as_of), "transactions": meta.get("transactions")})


def _remove_output(layout: Layout, path: Path) -> None:
    """Remove a published view or state (a folder of parts), sidecar first; files in it that
    cvas did not write are set aside, never deleted."""
    sidecar(layout, path).unlink(missing_ok=True)
    set_strays_aside(layout, path)
    shutil.rmtree(path, ignore_errors=True)


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
        _remove_output(layout, path)
        for directory in (path.parent, sidecar(layout, path).parent):
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
        _remove_output(layout, layout.subscription_state(day))


def build_subscription_view(layout: Layout, as_of: dt.date, *, keep_days: int = DEFAULT_KEEP_DAYS,
                            threads: int | None = None, full: bool = False,
                            memory_limit: str | None = None, chunk_days: int = CHUNK_DAYS) -> dict:
    """Build and publish the view `subscriptions/as_of=<as_of>/subscriptions.parquet/` (a folder
    of parts, subscription_part.sql) and its state.

    The state as of `as_of` is folded from the newest usable state on or before it and the
    transaction files of the days after it (newest_usable_state, fold_state): only the parts
    those days change are written, the others are hard links to the previous view's and
    state's. Without a usable state, with `full`, or when the view is marked for rebuild, every
    part is built from every transaction file. Both ways give the same bytes. Each
    written view part is checked (check_view_file); the view folder is published, then the
    state's, whose sidecar comes last (publish_parts). Without a usable state over more than
    `chunk_days` days of history, the state is built `chunk_days` at a time (chunked_state: the
    same bytes in bounded memory); `full` builds it in one pass. When `as_of` is the newest published
    as-of, the legacy `Parquet_Data/aggregated/subscriptions.parquet` is replaced with it; views
    and states older than `keep_days` before the newest are then pruned. Publishing, the latest
    copy and pruning hold a lock, so concurrent builds of several as-of dates cannot leave an
    older view as the latest.
    """
    if keep_days < 1:
        raise ValueError(f"subscriptions_keep_days must be at least 1, got {keep_days}")
    t0 = time.monotonic()
    with view_connection(layout, threads, memory_limit) as con:
        with exclusive(writer_lock(layout, "subscriptions")):
            check_no_hole(layout, as_of)
            digest = transaction_digest(layout, as_of, VIEW_KINDS)   # under the lock, before reading: what the build reads
            # a view marked for rebuild (by `cvas verify` or by hand) is not trusted to fold from:
            # it is built from every transaction file, a quarter at a time as without a state
            rebuild = full or is_invalidated(layout, layout.subscriptions(as_of))
            base = None if rebuild else newest_usable_state(layout, as_of)
            work = layout.staging / f"subscription_state.build.{os.getpid()}"
            work.mkdir(parents=True)
            try:
                carry, writers, passes = None, FOLD_WRITERS, 1
                if base is not None and (as_of - base).days <= chunk_days:
                    # a view part that is not what its sidecar recorded is written again from the
                    # state, never linked forward
                    carry, sources = base, fold_state(con, layout, layout.subscription_state(base), base, as_of,
                                                      rewrite=unusable_view_parts(layout, base))
                elif base is None and (full or _span(layout, as_of) <= chunk_days):
                    writers, sources = BUILD_WRITERS, full_state(con, layout, as_of, work / "full")
                else:   # a long history without a state, or a fold over a long gap (a backfill after it)
                    sources, passes = chunked_state(con, layout, as_of, work, chunk_days, base)
                rows, status, written = publish_parts(con, layout, as_of, sources, digest, carry=carry,
                                                      folded_from=base, writers=writers)
            finally:
                shutil.rmtree(work, ignore_errors=True)
            is_latest = as_of >= max(as_of_days(layout))
            if is_latest:
                _copy_latest(layout)
            pruned = prune_views(layout, keep_days)
    elapsed = time.monotonic() - t0
    log.info("subscription view as of %s: %d subscriptions (%s) in %.2fs, %s%s (%d part(s) written)%s", as_of,
             rows, ", ".join(f"{k} {v}" for k, v in status.items()), elapsed,
             f"folded from the state as of {base}" if base else "built from every transaction file",
             f" in {passes} passes of at most {chunk_days} days" if passes > 1 else "", written,
             "; published as latest" if is_latest else "")
    return {"as_of": str(as_of), "rows": rows, "status": status, "latest": is_latest,
            "folded_from": str(base) if base else None, "passes": passes, "parts_written": written,
            "pruned": [str(d) for d in pruned], "seconds": round(elapsed, 3)}


class ViewGapError(SubscriptionViewError):
    """Raised when a view would be built over a day whose transactions are not loaded: the view as
    of a day needs every day of history up to it."""


def missing_days(layout: Layout, as_of: dt.date) -> dict[dt.date, list[str]]:
    """{day: kinds without a published partition} of the days from the first loaded day up to
    `as_of` that lack the partition of a kind the view reads (an empty extract is a partition; a
    kind with no partition at all, on a young data root, reads as empty)."""
    loaded = {kind: days for kind in VIEW_KINDS
              if (days := {d for d in transaction_days(layout, kind) if d <= as_of})}
    every = set().union(*loaded.values())
    if not every:
        return {}
    days = [min(every) + dt.timedelta(days=i) for i in range((as_of - min(every)).days + 1)]
    holes = {day: [k for k in loaded if day not in loaded[k]] for day in days}
    return {day: kinds for day, kinds in holes.items() if kinds}


def check_no_hole(layout: Layout, as_of: dt.date) -> None:
    """Refuse to build the view as of `as_of` over a missing day (ViewGapError, naming it)."""
    holes = missing_days(layout, as_of)
    if holes:
        first, last = min(holes), max(holes)
        more = f" and {len(holes) - 1} more day(s) up to {last}" if len(holes) > 1 else ""
        raise ViewGapError(
            f"the subscription view as of {as_of} needs every day up to it: {first} has no "
            f"{', '.join(holes[first])} transactions loaded{more}. Nothing was published for the view; build "
            f"the missing days first (`cvas backfill --start {first} --end {last}`), then run again")


def publish_parts(con: duckdb.DuckDBPyConnection, layout: Layout, as_of: dt.date, sources: dict[str, str],
                  digest: str, *, carry: dt.date | None, folded_from: dt.date | None,
                  writers: int) -> tuple[int, dict[str, int], int]:
    """Write the parts of `sources` (state and view, `writers` at a time), link the other parts
    of the state as of `carry` (`sources` then holds only the parts a fold from it changed;
    without `carry`, every part), publish the view folder, then the state's; returns (view rows,
    subscriptions per status, parts written). The view's sidecar records the state it was folded
    from (`folded_from`).

    The state's old sidecar goes first and its new one is written last: a state is usable only
    once its sidecar names the files it was built from, so one killed anywhere in between is
    redone, never used."""
    target, state = layout.subscriptions(as_of), layout.subscription_state(as_of)
    carried = _carried_parts(layout, carry, set(sources))
    if carried:   # read before the state's sidecar goes: `carry` may be this very day's state
        before_view = provenance.read(layout, layout.subscriptions(carry))["parts"]
        before_state = provenance.read(layout, layout.subscription_state(carry))["parts"]
    sidecar(layout, state).unlink(missing_ok=True)
    set_strays_aside(layout, target)
    set_strays_aside(layout, state)
    with staged_dir(layout.staging, state) as state_tmp:
        with staged_dir(layout.staging, target) as view_tmp:
            written = _write_parts(con, as_of, sources, state_tmp, view_tmp, writers)
            for name, (view_part, state_part) in carried.items():
                os.link(view_part, view_tmp / view_part.name)
                os.link(state_part, state_tmp / state_part.name)
        view_meta = {n: {"rows": w["rows"], "hash": w["hash"], "status": w["status"]} for n, w in written.items()}
        state_meta = {n: {"rows": w["state_rows"], "hash": w["state_hash"]} for n, w in written.items()}
        if carried:
            view_meta |= {n: before_view[n] for n in carried}
            state_meta |= {n: before_state[n] for n in carried}
        rows = sum(p["rows"] for p in view_meta.values())
        status: dict[str, int] = {}
        for p in view_meta.values():
            for k, v in p["status"].items():
                status[k] = status.get(k, 0) + v
        record_parts(layout, target, view_meta, rows=rows, extra={
            "as_of": str(as_of), "transactions": digest, "folded_from": str(folded_from) if folded_from else None})
    record_parts(layout, state, state_meta, rows=sum(p["rows"] for p in state_meta.values()),
                 extra={"as_of": str(as_of), "transactions": digest})
    return rows, dict(sorted(status.items())), len(written)


def record_parts(layout: Layout, output: Path, meta: dict[str, dict], *, rows: int, extra: dict) -> dict:
    """Write the sidecar of a published folder output: each part's facts (rows, hash) with its
    [size, mtime_ns] as published (the cheap damage check, `provenance.parts_damage`), and the
    hash of the whole (`parts_hash`). Called just after the folder is published."""
    stats = part_stats(output)
    recorded = {n: p | dict(zip(("size", "mtime_ns"), stats.get(n) or (None, None))) for n, p in meta.items()}
    return provenance.record(layout, output, inputs={}, params={"as_of": extra.get("as_of")}, rows=rows,
                             output_hash=provenance.parts_hash({f"{n}.parquet": p["hash"] for n, p in meta.items()}),
                             extra=extra | {"parts": recorded})


def set_strays_aside(layout: Layout, folder: Path) -> list[Path]:
    """Move every file of the folder output `folder` that is not one of its parts (an analyst's
    file, a copy) to `<data root>/_set_aside/<its path>/<time>/`, with a warning, before cvas
    replaces or removes the folder: readers of the folder never meet it again, and it is kept."""
    try:
        entries = [Path(e.path) for e in os.scandir(folder)]
    except (FileNotFoundError, NotADirectoryError):
        return []
    named = set(parts(folder).values())
    strays = sorted(p for p in entries if p not in named)
    if not strays:
        return []
    dest = layout.set_aside / folder.relative_to(layout.root) / dt.datetime.now().strftime("%Y%m%dT%H%M%S%f")
    dest.mkdir(parents=True, exist_ok=True)
    for path in strays:
        os.replace(path, dest / path.name)
    log.warning("%s: %d file(s) cvas did not write (%s) moved to %s before replacing the folder",
                folder.relative_to(layout.root), len(strays), ", ".join(p.name for p in strays),
                dest.relative_to(layout.root))
    return [dest / p.name for p in strays]


def _carried_parts(layout: Layout, base: dt.date | None, changed: set[str]) -> dict[str, tuple[Path, Path]]:
    """{part: (view file, state file)} of the base's parts the new days leave as they are."""
    if base is None:
        return {}
    views, states = parts(layout.subscriptions(base)), parts(layout.subscription_state(base))
    return {name: (views[name], states[name]) for name in states if name not in changed}


def write_full_view(layout: Layout, as_of: dt.date, dest: Path, *, threads: int | None = None,
                    memory_limit: str | None = None) -> int:
    """The view as of `as_of` built from every transaction file, written to the new folder
    `dest` (its parts) and published nowhere (the reference `cvas verify` compares the
    published view with); returns rows."""
    dest.mkdir(parents=True)
    scratch = dest.with_name(dest.name + ".state")
    scratch.mkdir()
    try:
        with view_connection(layout, threads, memory_limit) as con:
            sources = full_state(con, layout, as_of, scratch / "full")
            return sum(w["rows"] for w in _write_parts(con, as_of, sources, scratch, dest).values())
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


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


__all__ = [
    "DEFAULT_KEEP_DAYS", "OPEN_PARTS", "STATUSES", "SUBSCRIPTION_COLUMNS", "SUBSCRIPTION_SCHEMA",
    "SubscriptionViewError", "VIEW_KINDS", "as_of_days", "build_subscription_view", "check_view_file", "connect",
    "outside_retention", "parts", "prune_views", "publish_latest", "read_view_meta", "read_view_table",
    "register_transactions", "transaction_digest", "view_sql", "write_full_view",
]
