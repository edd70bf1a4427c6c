"""The simulated source: the legacy extracts run read-only against the embedded DuckDB Nova made by cvas.simulator.simulate."""

from __future__ import annotations

import datetime as dt
import logging
from pathlib import Path

import duckdb

from cvas.core.schemas import spec
from cvas.sources import SourceError
from cvas.sql import for_duckdb, load_sql

log = logging.getLogger(__name__)


def _sql_path(path: Path) -> str:
    """A path as a SQL string literal."""
    return "'" + str(path).replace("'", "''") + "'"


class SimulatedSource:
    """Extracts from a simulated Nova DuckDB file, with the same SQL the ssh source runs on PostgreSQL.

    Output files follow PostgreSQL `COPY ... TO STDOUT WITH CSV HEADER`: comma, `"` quoting
    only when needed, NULL as an empty field, '' as `""`, timestamps `YYYY-MM-DD HH:MM:SS`,
    dates `YYYY-MM-DD`, numerics as plain decimals. DuckDB's CSV writer produces exactly
    that, streaming. The database is opened read-only, so many processes may extract at once.
    """

    name = "simulated"

    def __init__(self, database: Path) -> None:
        self.database = Path(database)

    def _connect(self) -> duckdb.DuckDBPyConnection:
        if not self.database.is_file():
            raise SourceError(f"simulated Nova database {self.database} does not exist; run the simulator first")
        try:
            return duckdb.connect(str(self.database), read_only=True)
        except duckdb.Error as exc:
            raise SourceError(f"cannot open simulated Nova database {self.database}: {exc}") from exc

    def simulated_range(self) -> tuple[dt.date, dt.date]:
        """The first and last simulated day (inclusive)."""
        con = self._connect()
        try:
            return self._range(con)
        finally:
            con.close()

    def _range(self, con: duckdb.DuckDBPyConnection) -> tuple[dt.date, dt.date]:
        try:
            row = con.execute("select start_date, end_date from sim_meta").fetchone()
        except duckdb.Error as exc:
            raise SourceError(f"{self.database} is not a simulated Nova database (no sim_meta): {exc}") from exc
        if row is None:
            raise SourceError(f"{self.database} has an empty sim_meta table")
        return row[0], row[1]

    def _check_day(self, con: duckdb.DuckDBPyConnection, day: dt.date) -> None:
        first, last = self._range(con)
        if not first <= day <= last:
            raise SourceError(f"{day} is outside the simulated range {first}..{last} of {self.database}")

    def _copy(self, sql_name: str, day: dt.date, dest: Path) -> int:
        sql = for_duckdb(load_sql(sql_name))
        params = {"start_ts": f"{day:%Y-%m-%d}", "end_ts": f"{day + dt.timedelta(days=1):%Y-%m-%d}"}
        params = {k: v for k, v in params.items() if f"${k}" in sql}
        con = self._connect()
        try:
            self._check_day(con, day)
            dest = Path(dest)
            dest.parent.mkdir(parents=True, exist_ok=True)
            (count,) = con.execute(f"copy ({sql}) to {_sql_path(dest)} (format csv, header)", params).fetchone()
        except duckdb.Error as exc:
            raise SourceError(f"{sql_name} for {day} failed on {self.database}: {exc}") from exc
        finally:
            con.close()
        return int(count)

    def extract_transactions(self, kind: str, day: dt.date, dest: Path) -> int:
        """Write `kind`'s rows of `day` to `dest` in the legacy CSV format; returns the data rows."""
        kind = spec(kind).kind
        count = self._copy(f"extract_{kind}", day, dest)
        log.info("simulated %s %s: %d rows", kind, day, count)
        return count

    def extract_user_base(self, day: dt.date, dest: Path) -> int:
        """Write the NBS snapshot at the end of `day` to `dest`; returns the data rows (groups)."""
        count = self._copy("nbs_snapshot", day, dest)
        log.info("simulated NBS snapshot %s: %d groups", day, count)
        return count
