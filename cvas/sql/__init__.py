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


# The extraction query of each kind and its own psql variables besides the day's window: ACT and RENO
# are one query over their trans_type_id (a psql variable, bound on psql's command line on Nova and as
# a parameter in DuckDB); every other kind has a file of its own.
_EXTRACTS = {"act": ("extract_charges", {"trans_type_id": "1"}), "reno": ("extract_charges", {"trans_type_id": "2"})}


def extract_query(kind: str) -> tuple[str, dict[str, str]]:
    """The extraction SQL of `kind` (psql variable syntax) and the variables it takes besides
    start_ts and end_ts."""
    name, variables = _EXTRACTS.get(kind, (f"extract_{kind}", {}))
    return load_sql(name), dict(variables)


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
