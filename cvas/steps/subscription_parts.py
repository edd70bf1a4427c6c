"""The subscription view's parts: the state of every transaction file (full, chunked) or folded from
an earlier state, and each part's state and view written, several at a time."""

from __future__ import annotations

import datetime as dt
import logging
import os
import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import duckdb

from cvas.core import provenance
from cvas.core.catalogue import days_of
from cvas.core.layout import Layout, parts
from cvas.core.schemas import VIEW_KINDS
from cvas.sql import load_sql, sql_path
from cvas.steps.subscription_contract import OPEN_PARTS, check_view_file
from cvas.steps.subscription_duckdb import (copy_view_from_state, make_state, register_files, register_transactions,
                                           view_connection)

log = logging.getLogger(__name__)

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


def write_parts(con: duckdb.DuckDBPyConnection, as_of: dt.date, sources: dict[str, str], state_dir: Path,
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
               as_of: dt.date, rewrite: set[str] = frozenset(), scratch: Path | None = None) -> dict[str, str]:
    """`folded_state`: the state in the folder `base` (as of `after`) folded with the transaction
    files of the days after it, up to `as_of`, in one DuckDB pass (subscription_state_merge.sql),
    for the parts those days change: the open parts, the deactivated months holding a
    subscription they touch, and the months of the deactivations they bring. Returns {part: the query of its
    rows} for those parts (`folded_state` holds the subscriptions the days touch; the others are
    streamed from the base's file of the part), and the parts named in `rewrite` (whose view
    part cannot be carried forward). The base's other parts are unchanged. With `scratch` (a
    new folder), the rows of every changed part are first streamed there in one pass
    (`_partitioned_sources`), as when most parts change (a fold over many days)."""
    for kind in VIEW_KINDS:
        files = [layout.transactions(kind, after + dt.timedelta(days=i))
                 for i in range(1, (as_of - after).days + 1)]
        register_files(con, kind, [f for f in files if f.exists()])
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
    carry = {name: before[name] for name in changed if name in before}
    if scratch is not None:
        return _partitioned_sources(con, changed, carry, scratch)
    return _sources("folded_state", changed, carry)


def _partitioned_sources(con: duckdb.DuckDBPyConnection, names: set[str], carry: dict[str, Path],
                         scratch: Path) -> dict[str, str]:
    """`_sources` of `folded_state` with every part's rows streamed once into the new folder
    `scratch`, partitioned by part (`part=<name>/`, as `full_state` does): the carried rows the
    new days do not touch are found by one anti join over every carried file, not one per part
    (each of which would build the new state's hash table again). A part left without rows
    reads as empty."""
    carried = ""
    if carry:
        files = ", ".join(sql_path(path) for path in carry.values())
        carried = (f" union all select p.* exclude (filename), regexp_extract(p.filename, '([^/]+)[.]parquet$', 1) "
                   f"from read_parquet([{files}], filename = true) as p anti join new_state as n using (subscription_id)")
    con.execute(f"copy (select * from folded_state{carried}) to {sql_path(scratch)} "
                f"(format parquet, compression uncompressed, partition_by (part))")
    return {name: (f"select * from read_parquet({sql_path(scratch / f'part={name}' / '*.parquet')}, "
                   f"hive_partitioning = false)" if (scratch / f"part={name}").is_dir()
                   else "select * exclude (part) from folded_state where false")
            for name in names | set(OPEN_PARTS)}


def history_span(layout: Layout, as_of: dt.date) -> int:
    """Days from the first transaction file to `as_of`, both included (0 without any)."""
    days = [d for kind in VIEW_KINDS for d in days_of(layout, "transactions", kind) if d <= as_of]
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
        days = sorted({d for kind in VIEW_KINDS for d in days_of(layout, "transactions", kind) if d <= as_of})
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
        sources = fold_state(con, layout, previous, after, end, scratch=work / f"scratch-{i}")
        _write_state_parts(con, sources, folder)
        shutil.rmtree(work / f"scratch-{i}")
        for name, path in parts(previous).items():
            if name not in sources:
                os.link(path, folder / path.name)
        if previous.is_relative_to(work):
            shutil.rmtree(previous)
    sources = {name: f"select * from read_parquet({sql_path(path)})" for name, path in parts(folder).items()}
    return sources, len(ends) - (base is not None)


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
            return sum(w["rows"] for w in write_parts(con, as_of, sources, scratch, dest).values())
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
