"""The simulated source: the legacy extracts run read-only against the embedded DuckDB Nova made by cvas.simulator.simulate."""

from __future__ import annotations

import datetime as dt
import logging
from pathlib import Path

import duckdb

from cvas.core.batch import contiguous_runs
from cvas.core.schemas import spec
from cvas.sources import SourceError
from cvas.sql import connect, extract_query, for_duckdb, load_sql, sql_path

log = logging.getLogger(__name__)


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
            return connect(str(self.database), read_only=True)
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

    def _copy(self, sql_name: str, day: dt.date, dest: Path, sql: str | None = None,
              variables: dict[str, str] | None = None) -> int:
        sql = for_duckdb(sql if sql is not None else load_sql(sql_name))
        params = {"start_ts": f"{day:%Y-%m-%d}", "end_ts": f"{day + dt.timedelta(days=1):%Y-%m-%d}", **(variables or {})}
        params = {k: v for k, v in params.items() if f"${k}" in sql}
        con = self._connect()
        try:
            self._check_day(con, day)
            dest = Path(dest)
            dest.parent.mkdir(parents=True, exist_ok=True)
            (count,) = con.execute(f"copy ({sql}) to {sql_path(dest)} (format csv, header)", params).fetchone()
        except duckdb.Error as exc:
            raise SourceError(f"{sql_name} for {day} failed on {self.database}: {exc}") from exc
        finally:
            con.close()
        return int(count)

    def extract_transactions(self, kind: str, day: dt.date, dest: Path) -> int:
        """Write `kind`'s rows of `day` to `dest` in the legacy CSV format; returns the data rows."""
        kind = spec(kind).kind
        sql, variables = extract_query(kind)
        count = self._copy(f"extract_{kind}", day, dest, sql, variables)
        log.info("simulated %s %s: %d rows", kind, day, count)
        return count

    def extract_transactions_days(self, kind: str, days: list[dt.date], dest_of) -> dict[dt.date, int]:
        """Write `kind`'s rows of each of `days` to `dest_of(day)`; returns the data rows per day.

        One query per run of consecutive days (at most a month) fills a temporary table in the
        extract's order; each day's file is then that table's rows of the day, in the same order,
        through the same CSV writer: byte for byte the one-day extract.
        """
        ks = spec(kind)
        sql, variables = extract_query(ks.kind)
        sql = for_duckdb(sql)
        names = ", ".join(f'"{n}"' for n in ks.names)
        counts: dict[dt.date, int] = {}
        con = self._connect()
        try:
            for run in contiguous_runs(days):
                self._check_day(con, run[0])
                self._check_day(con, run[-1])
                params = {"start_ts": f"{run[0]:%Y-%m-%d}", "end_ts": f"{run[-1] + dt.timedelta(days=1):%Y-%m-%d}",
                          **variables}
                con.execute(f"create or replace temp table extract_run as select *, "
                            f"cast({ks.date_column} as date) as extract_day from ({sql})", params)
                for day in run:
                    dest = Path(dest_of(day))
                    dest.parent.mkdir(parents=True, exist_ok=True)
                    (count,) = con.execute(f"copy (select {names} from extract_run where extract_day = $day) "
                                           f"to {sql_path(dest)} (format csv, header)", {"day": day}).fetchone()
                    counts[day] = int(count)
        except duckdb.Error as exc:
            raise SourceError(f"extract_{ks.kind} for {days[0]}..{days[-1]} failed on {self.database}: {exc}") from exc
        finally:
            con.close()
        log.info("simulated %s %d days %s..%s: %d rows", kind, len(days), min(days), max(days), sum(counts.values()))
        return counts

    def extract_user_base(self, day: dt.date, dest: Path) -> int:
        """Write the NBS snapshot at the end of `day` to `dest`; returns the data rows (groups)."""
        count = self._copy("nbs_snapshot", day, dest)
        log.info("simulated NBS snapshot %s: %d groups", day, count)
        return count
