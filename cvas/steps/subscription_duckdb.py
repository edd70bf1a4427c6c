"""The subscription view's DuckDB: connections that spill within a memory limit, the transaction
relations of exactly the published files, the state and view queries."""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import os
import re
import shutil
from pathlib import Path

import duckdb

from cvas import sql
from cvas.core.layout import (Layout, transaction_files)
from cvas.core.schemas import VIEW_KINDS, spec
from cvas.sql import load_sql, sql_path

log = logging.getLogger(__name__)

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
        present[kind] = register_files(con, kind, transaction_files(layout, kind, through))
    return present


def register_files(con: duckdb.DuckDBPyConnection, kind: str, files: list[Path]) -> bool:
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
