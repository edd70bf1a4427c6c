"""Copy a simulated Nova (the DuckDB file) into PostgreSQL, so both engines hold the same data."""

from __future__ import annotations

import logging
import re
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path

import duckdb

from cvas.sql import connect

log = logging.getLogger(__name__)


class NovaLoadError(RuntimeError):
    """Raised when the PostgreSQL copy of the simulated Nova cannot be made or does not match."""


# DuckDB type -> PostgreSQL type giving the same text in COPY … CSV (numeric(10,2) prints
# "1.50" in both; timestamp without time zone prints "YYYY-MM-DD HH:MM:SS[.ffffff]" in both).
_SIMPLE_TYPES = {
    "VARCHAR": "text", "BIGINT": "bigint", "INTEGER": "integer", "SMALLINT": "smallint",
    "TINYINT": "smallint", "BOOLEAN": "boolean", "DATE": "date", "TIMESTAMP": "timestamp",
    "TIMESTAMP WITH TIME ZONE": "timestamptz", "DOUBLE": "double precision", "FLOAT": "real",
    "HUGEINT": "numeric(38, 0)", "UBIGINT": "numeric(20, 0)", "UINTEGER": "bigint", "USMALLINT": "integer",
    "TIME": "time", "BLOB": "bytea",
}
_DECIMAL = re.compile(r"DECIMAL\((\d+),\s*(\d+)\)")
# Columns the extraction SQL filters a day on: indexed so a day's extract does not scan history.
_WINDOW_COLUMNS = ("tlog_ts", "timestamp")


def pg_type(duckdb_type: str) -> str:
    """The PostgreSQL column type for a DuckDB column type."""
    t = duckdb_type.upper()
    if t in _SIMPLE_TYPES:
        return _SIMPLE_TYPES[t]
    m = _DECIMAL.fullmatch(t)
    if m:
        return f"numeric({m.group(1)}, {m.group(2)})"
    raise NovaLoadError(f"no PostgreSQL type for DuckDB type {duckdb_type}")


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def duckdb_tables(con: duckdb.DuckDBPyConnection) -> dict[str, list[tuple[str, str]]]:
    """The base tables of the main schema with their (column, DuckDB type), in a stable order."""
    rows = con.execute("""
        select c.table_name, c.column_name, c.data_type
        from information_schema.columns as c
        join information_schema.tables as t
          on t.table_schema = c.table_schema and t.table_name = c.table_name
        where c.table_schema = 'main' and t.table_type = 'BASE TABLE'
        order by c.table_name, c.ordinal_position
    """).fetchall()
    tables: dict[str, list[tuple[str, str]]] = {}
    for table, column, typ in rows:
        tables.setdefault(table, []).append((column, typ))
    return tables


def _psql(psql_argv: Sequence[str], script: str, what: str) -> str:
    argv = [*psql_argv, "-X", "-q", "--no-password", "-v", "ON_ERROR_STOP=1", "-f", "-"]
    proc = subprocess.run(argv, input=script.encode(), capture_output=True)
    if proc.returncode != 0:
        err = proc.stderr.decode("utf-8", "replace").strip().splitlines()
        first = next((ln for ln in err if "ERROR" in ln or "FATAL" in ln), err[0] if err else "no message")
        raise NovaLoadError(f"{what}: psql exited {proc.returncode}: {first[:300]}")
    return proc.stdout.decode()


def load_into_postgres(duckdb_path: Path, dsn: str = "", *, psql: str = "psql",
                       psql_args: Sequence[str] = (), tables: Sequence[str] | None = None) -> dict[str, int]:
    """Replace the Nova tables in PostgreSQL with those of `duckdb_path`; returns rows per table.

    `dsn` is a libpq connection string or URI given to `psql -d` (empty: psql's defaults
    and PG* variables); `psql_args` are more psql options (e.g. ["-h", sockdir, "-p", "5433"]).
    Every table of the DuckDB file (or those named) is dropped, re-created with matching
    types and filled in one transaction, so readers see the old or the new Nova. Row
    counts are checked against DuckDB afterwards.
    """
    duckdb_path = Path(duckdb_path)
    if not duckdb_path.is_file():
        raise NovaLoadError(f"no simulated Nova at {duckdb_path}")
    argv = [psql, *psql_args, *(["-d", dsn] if dsn else [])]
    con = connect(str(duckdb_path), read_only=True)
    try:
        found = duckdb_tables(con)
        names = list(tables) if tables is not None else sorted(found)
        missing = [n for n in names if n not in found]
        if missing:
            raise NovaLoadError(f"{duckdb_path} has no table {', '.join(missing)}")
        expected: dict[str, int] = {}
        with tempfile.TemporaryDirectory(prefix="nova_pg.") as tmp:
            lines = ["BEGIN;"]
            for name in names:
                columns = found[name]
                csv_path = Path(tmp) / f"{name}.csv"
                text_cols = [c for c, t in columns if t.upper() == "VARCHAR"]
                # quoting text values keeps "" (empty) apart from NULL and a lone \. from end-of-data
                force = f", force_quote ({', '.join(_ident(c) for c in text_cols)})" if text_cols else ""
                con.execute(f"copy {_ident(name)} to {_literal(str(csv_path))} (format csv, header false{force})")
                expected[name] = con.execute(f"select count(*) from {_ident(name)}").fetchone()[0]
                ddl = ", ".join(f"{_ident(c)} {pg_type(t)}" for c, t in columns)
                lines.append(f"DROP TABLE IF EXISTS {_ident(name)} CASCADE;")
                lines.append(f"CREATE TABLE {_ident(name)} ({ddl});")
                lines.append(f"\\copy {_ident(name)} from {_literal(str(csv_path))} with (format csv)")
                for col in _WINDOW_COLUMNS:
                    if any(c == col for c, _ in columns):
                        lines.append(f"CREATE INDEX ON {_ident(name)} ({_ident(col)});")
            lines.append("COMMIT;")
            lines += [f"ANALYZE {_ident(n)};" for n in names]
            _psql(argv, "\n".join(lines) + "\n", f"loading {duckdb_path} into PostgreSQL")
    finally:
        con.close()
    counts_sql = " UNION ALL ".join(f"SELECT {_literal(n)}, count(*) FROM {_ident(n)}" for n in names)
    out = _psql([*argv, "-A", "-t", "-F", "\t"], counts_sql + ";\n", "counting loaded rows")
    loaded = {name: int(n) for name, n in (ln.split("\t") for ln in out.splitlines() if ln)}
    if loaded != expected:
        raise NovaLoadError(f"row counts differ after loading: DuckDB {expected}, PostgreSQL {loaded}")
    log.info("loaded simulated Nova into PostgreSQL: %s", ", ".join(f"{t} {n}" for t, n in loaded.items()))
    return loaded
