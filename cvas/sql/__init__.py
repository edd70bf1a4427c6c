"""SQL files of cvas, loaded by name; values are always bound as parameters, never formatted in (paths
where DuckDB takes no parameter: `sql_path`)."""

from __future__ import annotations

import re
from functools import lru_cache
from importlib import resources

# Extraction SQL uses psql variable syntax (:'name') so the very same file runs through
# `psql -v name=value` on Nova; for DuckDB the references become named parameters ($name).
_PSQL_VAR = re.compile(r":'([A-Za-z_][A-Za-z0-9_]*)'")


@lru_cache(maxsize=None)
def load_sql(name: str) -> str:
    """The text of `cvas/sql/<name>.sql`."""
    return resources.files(__package__).joinpath(f"{name}.sql").read_text(encoding="utf-8")


def for_duckdb(sql: str) -> str:
    """Turn psql variable references into DuckDB named parameters."""
    return _PSQL_VAR.sub(lambda m: f"${m.group(1)}", sql)


def sql_path(path) -> str:
    """A path as a SQL string literal, quotes doubled: the one way a path is written into SQL
    text where DuckDB takes no parameter (COPY ... TO, a glob, SET temp_directory)."""
    return "'" + str(path).replace("'", "''") + "'"


def connect(database: str = ":memory:", *, read_only: bool = False, threads: int | None = None):
    """A DuckDB connection as cvas runs them: without the progress bar, which DuckDB otherwise
    prints to stdout for any query over two seconds (cron mails and logs, not a terminal)."""
    import duckdb

    con = duckdb.connect(database, read_only=read_only)
    con.execute("set enable_progress_bar = false")
    if threads is not None:
        con.execute(f"set threads = {int(threads)}")
    return con
