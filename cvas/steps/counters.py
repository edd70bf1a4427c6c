"""Daily per-CPC counters from one day's partitions, and the legacy counter exports."""

from __future__ import annotations

import datetime as dt
import logging
import queue
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from cvas.core.csvcells import safe_text_columns
from cvas.steps.exclusions import Exclusions
from cvas.core.batch import each_day
from cvas.core.publish import PublishError, copy_and_append, publish_parquet, published_together, staged, write_parquet
from cvas.core.schemas import COUNTER_SCHEMA, KINDS, NUMERIC_RANGES, SERVICE_EXPORT_COLUMNS
from cvas.sql import connect, load_sql, sql_path

log = logging.getLogger(__name__)


class CounterInputError(RuntimeError):
    """Raised when a day's transaction partition needed by the counters is missing."""


def _connect() -> duckdb.DuckDBPyConnection:
    return connect(threads=2)


def counters_connection(exclusions: Exclusions) -> duckdb.DuckDBPyConnection:
    """A DuckDB connection holding the exclusion sets, for the counters of one or many days."""
    con = _connect()
    con.register("ex_msisdn", pa.table({"v": pa.array(sorted(exclusions.msisdn), pa.large_string())}))
    con.register("ex_tmuserid", pa.table({"v": pa.array(sorted(exclusions.tmuserid), pa.large_string())}))
    return con


def compute_daily_counters(day: dt.date, partitions: dict[str, Path], exclusions: Exclusions,
                           computed_at: dt.datetime, con: duckdb.DuckDBPyConnection | None = None) -> pa.Table:
    """The counters of `day` from exactly that day's six partitions (no other file is read);
    `con`, a `counters_connection(exclusions)`, serves many days (one is opened otherwise)."""
    return compute_counters_of_days({day: partitions}, exclusions, computed_at, con=con)[day]


def compute_counters_of_days(partitions: dict[dt.date, dict[str, Path]], exclusions: Exclusions,
                             computed_at: dt.datetime, con: duckdb.DuckDBPyConnection | None = None
                             ) -> dict[dt.date, pa.Table]:
    """{day: its counters} of every day of `partitions` ({day: {kind: the day's partition}}) in one
    DuckDB query grouped by day: each day's table is exactly what it alone gives (its rows come
    from its own six partitions only, which `daily_counters.sql` groups by day first)."""
    days = sorted(partitions)
    for day in days:
        missing = [k for k in KINDS if k not in partitions[day] or not Path(partitions[day][k]).exists()]
        if missing:
            raise CounterInputError(f"counters for {day}: missing transaction partition(s) for {', '.join(missing)}")
    tables = {kind: pa.concat_tables([_day_table(day, partitions[day][kind], kind) for day in days]) for kind in KINDS}
    session = con or counters_connection(exclusions)
    try:
        for kind in KINDS:
            session.register(kind, tables[kind])
        table = session.execute(load_sql("daily_counters"), {"last_updated": computed_at}).fetch_arrow_table()
        for kind in KINDS:
            session.unregister(kind)
    finally:
        if con is None:
            session.close()
    table = table.cast(COUNTER_SCHEMA)
    dates = table.column("date").to_numpy()
    null_cpc = Counter(d for k in KINDS for d in tables[k].filter(tables[k].column("cpc").is_null())
                       .column("day").to_pylist())
    out = {}
    for day in days:
        first, end = (np.searchsorted(dates, np.datetime64(day), side=side) for side in ("left", "right"))
        out[day] = table.slice(first, end - first)
        if null_cpc[day]:
            log.warning("counters %s: %d transaction row(s) without a CPC are not counted", day, null_cpc[day])
        log.info("counters %s: %d CPC rows", day, out[day].num_rows)
    return out


# the columns daily_counters.sql reads of each kind: the counted values and the exclusion keys
COUNTED_COLUMNS = {
    "act": ("cpc", "channel_act", "rev", "msisdn", "tmuserid"), "reno": ("cpc", "rev", "msisdn", "tmuserid"),
    "dct": ("cpc", "channel_dct", "msisdn", "tmuserid"), "ppd": ("cpc", "rev", "msisdn", "tmuserid"),
    "cnr": ("cpc", "tmuserid"), "rfnd": ("cpc", "rfnd_cnt", "rfnd_amount", "tmuserid"),
}


def _day_table(day: dt.date, path: Path, kind: str) -> pa.Table:
    """The counted columns of one day's partition of `kind`, range-checked, with its day as the
    column `day`."""
    # ParquetFile, not read_table: the latter adds `year_month` from the directory name
    table = pq.ParquetFile(path).read(columns=list(COUNTED_COLUMNS[kind]))
    _check_ranges(day, path, table)
    return table.append_column("day", pa.repeat(pa.scalar(day, pa.date32()), table.num_rows))


def _check_ranges(day: dt.date, path: Path, table: pa.Table) -> None:
    """A partition loaded before the plausible ranges existed (decision D15) may hold values that
    would crash or falsify the counters: refuse it, naming the file, the day and the column."""
    for name in table.column_names:
        if name not in NUMERIC_RANGES:
            continue
        low, high = NUMERIC_RANGES[name]
        col = table.column(name)
        floating = pa.types.is_floating(col.type)
        tests = [pc.less(col, pa.scalar(float(low) if floating else low, col.type))] if low > -(2**63) else []
        if floating or high < 2**63:       # beyond int64 nothing is
            tests.append(pc.greater_equal(col, pa.scalar(float(high) if floating else high, col.type)))
        bad = sum(pc.sum(t).as_py() or 0 for t in tests)
        if bad:
            raise CounterInputError(
                f"counters for {day}: {path}: {bad} row(s) with {name} outside its plausible range ({low} <= {name} < "
                f"{high}); reload the day (`cvas invalidate --dataset transactions`): the loader now quarantines such "
                "rows, naming their line in the landing copy")


def build_daily_counters(day: dt.date, partitions: dict[str, Path], exclusions: Exclusions,
                         out: Path, staging: Path, computed_at: dt.datetime | None = None,
                         con: duckdb.DuckDBPyConnection | None = None) -> int:
    """Compute and publish one day's counters; returns the number of CPC rows (0 is a valid day).
    `con` as in `compute_daily_counters`."""
    table = compute_daily_counters(day, partitions, exclusions, computed_at or dt.datetime.now().replace(microsecond=0),
                                   con=con)
    publish_parquet(staging, out, table)
    return table.num_rows


def build_counters_days(layout, days: list[dt.date], inputs_of: Callable[[dt.date], dict[str, Path]],
                        exclusions: Exclusions, threads: int = 2, group: int = 8) -> dict[dt.date, int]:
    """Build and publish the counters of `days` with their sidecars; returns CPC rows per day.

    `inputs_of(day)` are the files the day's sidecar records (its six partitions by kind, and
    what else the catalogue names), fingerprinted before they are read. Up to `group`
    consecutive days are computed in one query (compute_counters_of_days), `threads` groups at
    once, each thread on its own connection holding the exclusion sets; the days are published
    in order, together (`published_together`), and a day that fails, fails alone (`each_day`:
    a group that fails is computed again a day at a time, so its good days are published)."""
    from cvas.core import provenance

    connections: queue.Queue[duckdb.DuckDBPyConnection] = queue.Queue()
    for _ in range(threads):
        connections.put(counters_connection(exclusions))

    def compute_group(some: list[dt.date]) -> dict[dt.date, tuple[dict, pa.Table] | Exception]:
        inputs = {day: inputs_of(day) for day in some}
        # fingerprinted before reading: a file replaced meanwhile shows as changed
        read = {day: provenance.fingerprints(inputs[day]) for day in some}
        con = connections.get()
        try:
            def count(these: list[dt.date]) -> dict[dt.date, pa.Table]:
                return compute_counters_of_days({d: {k: inputs[d][k] for k in KINDS} for d in these}, exclusions,
                                                dt.datetime.now().replace(microsecond=0), con=con)
            try:
                tables: dict[dt.date, pa.Table | Exception] = dict(count(some))
            except Exception:  # noqa: BLE001 - counted again a day at a time: each day's error is its own
                if len(some) == 1:
                    raise
                tables = {}
                for day in some:
                    try:
                        tables[day] = count([day])[day]
                    except Exception as exc:  # noqa: BLE001 - raised by the day's publish
                        tables[day] = exc
            return {day: t if isinstance(t, Exception) else (read[day], t) for day, t in tables.items()}
        finally:
            connections.put(con)

    def publish(day: dt.date) -> int:
        got = computed[day].result()[day]
        if isinstance(got, Exception):
            raise got
        read, table = got
        publish_parquet(layout.staging, layout.daily_counters(day), table)
        provenance.record(layout, layout.daily_counters(day), inputs=read, params={"date": str(day)},
                          rows=table.num_rows)
        return table.num_rows

    ordered = sorted(days)
    try:
        with ThreadPoolExecutor(threads) as pool:
            computed = {}
            for i in range(0, len(ordered), group):
                future = pool.submit(compute_group, ordered[i:i + group])
                computed.update(dict.fromkeys(ordered[i:i + group], future))
            with published_together(layout.staging):
                return each_day("counters", ordered, publish)
    finally:
        while not connections.empty():
            connections.get().close()


def export_counters(daily_files: list[Path], master: pa.Table, excluded_services: tuple[str, ...],
                    cpc_out: Path, service_out: Path, staging: Path, append: bool = False) -> dict[str, int]:
    """Rebuild `Counters_CPC.parquet` (all CPCs, decision D7) and `Counters_Service.csv` (excluded services
    dropped, RFC 4180 quoting, decision D10) from the per-day counter files, each replaced atomically.

    With `append`, `daily_files` are days after every day of the published exports: their rows
    are added after the published ones. Both files are ordered by date first and each CSV line
    is quoted on its own values, so this gives the bytes of a rebuild while reading one per-day
    file per new day (the published Parquet is read as one file, the CSV copied as bytes)."""
    con = _connect()
    try:
        files = [str(p) for p in sorted(daily_files)]
        if files:
            counters = con.execute("select * from read_parquet($files) order by date, cpc", {"files": files}).fetch_arrow_table()
            counters = counters.cast(COUNTER_SCHEMA)
        else:
            counters = COUNTER_SCHEMA.empty_table()
        con.register("counters", counters)
        con.register("master", master)
        con.register("excluded", pa.table({"keyword": pa.array([k.lower() for k in excluded_services], pa.string())}))
        service = con.execute(load_sql("export_counters_service")).fetch_arrow_table()
        if tuple(service.column_names) != SERVICE_EXPORT_COLUMNS:
            raise PublishError(f"service export columns {service.column_names} differ from the contract")
        cpc = pa.concat_tables([_published_counters(cpc_out), counters]).combine_chunks() if append else counters
        # both written and checked before either is renamed
        with staged(staging, cpc_out) as cpc_tmp, staged(staging, service_out) as service_tmp:
            write_parquet(cpc_tmp, cpc_out, cpc)
            _write_service_csv(con, service, service_tmp, service_out, append)
    finally:
        con.close()
    log.info("exports: %s of %d day(s): %d new counter rows (%d in all); %d new service rows",
             "append" if append else "rebuild", len(daily_files), counters.num_rows, cpc.num_rows, service.num_rows)
    return {"days": len(daily_files), "cpc_rows": cpc.num_rows, "service_rows": service.num_rows}


def _published_counters(path: Path) -> pa.Table:
    table = pq.ParquetFile(path).read()
    if not table.schema.equals(COUNTER_SCHEMA):
        raise PublishError(f"{path}: its schema is not the counters' ({table.schema}); delete it to rebuild the "
                           "exports from every per-day file")
    return table


def _write_service_csv(con: duckdb.DuckDBPyConnection, service: pa.Table, tmp: Path, target: Path,
                       append: bool) -> None:
    """Fill the staged `tmp` for `target` with `service` as RFC 4180 CSV with a header, its text
    cells safe for spreadsheets (D18); with
    `append`, the published file's bytes followed by the new rows' lines."""
    rows = tmp.with_name("rows.csv") if append else tmp
    con.register("service_rows", safe_text_columns(service))
    con.execute(f"copy service_rows to {sql_path(rows)} (header, delimiter ',')")
    written = con.execute("select count(*) from read_csv($rows, header=true, all_varchar=true)",
                          {"rows": str(rows)}).fetchone()[0]
    if written != service.num_rows:
        raise PublishError(f"{target}: staged CSV has {written} rows, expected {service.num_rows}")
    if append:
        header, newline, body = rows.read_bytes().partition(b"\n")
        copy_and_append(tmp, target, header + newline, body)
