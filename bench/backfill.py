"""The backfill figures of issue 22: `cvas backfill` of a year from the directory source against one
bare DuckDB `COPY … PARTITION_BY` pass over the same CSVs, and where the backfill's time goes."""

from __future__ import annotations

import datetime as dt
import json
import shutil
import time
from pathlib import Path

# the task families of a backfill, by the phase of the profile their run time counts under
FAMILY_PHASE = {
    "FetchTransactions": "fetch/copy", "LoadTransactions": "parse and load", "DailyCounters": "counters",
    "FetchUserBase": "user base", "AggregateUserBase": "user base", "ExportUserBase": "user base",
    "SubscriptionView": "view", "ExportCounters": "exports", "MasterCpc": "exports", "DailyReport": "report",
}
# the phases counted inside task runs (cvas.core.timing), taken out of their family's phase
CARVED = ("sidecars and hashing", "fsync", "feed health")
ORDER = ("fetch/copy", "parse and load", "feed health", "sidecars and hashing", "fsync", "counters", "user base",
         "view", "exports", "report")


def bare_partitioned(drops, start: dt.date, end: dt.date, out: Path) -> tuple[float, int]:
    """Seconds DuckDB alone takes to turn every day file of the range into typed Parquet, one
    `COPY (select … from read_csv([every day's file], columns=…)) TO … (PARTITION_BY (year_month,
    day))` per kind: the same CSVs, types and file granularity (a file per kind and day in its
    month folder) as the backfill's partitions, in the engine's best single pass. Returns the
    seconds and the rows converted."""
    import duckdb

    from cvas.core.schemas import INT, FLT, KINDS, TS, spec

    duck = {INT: "BIGINT", FLT: "DOUBLE", TS: "TIMESTAMP"}
    days = [start + dt.timedelta(days=i) for i in range((end - start).days + 1)]
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    con = duckdb.connect()
    rows = 0
    t = time.perf_counter()
    for kind in KINDS:
        ks = spec(kind)
        files = ", ".join(f"'{drops.daily_file(kind, d)}'" for d in days)
        columns = ", ".join(f"'{n}': '{duck.get(t, 'VARCHAR')}'" for n, t in ks.columns)
        date = ks.date_column
        (n,) = con.execute(
            f"copy (select *, strftime({date}, '%Y-%m') as year_month, cast({date} as date) as day "
            f"from read_csv([{files}], header=true, columns={{{columns}}})) "
            f"to '{out / kind}' (format parquet, compression zstd, partition_by (year_month, day))").fetchone()
        rows += n
    seconds = time.perf_counter() - t
    con.close()
    shutil.rmtree(out, ignore_errors=True)
    return seconds, rows


def read_profile(logs: list[Path]) -> list[dict]:
    """The `profile` lines of a run's logs (tasks/base.py `_log_run_time`): one per task run."""
    runs = []
    for path in logs:
        for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
            head, sep, body = line.partition(": profile ")
            if sep and head.endswith("cvas.tasks"):
                runs.append(json.loads(body))
    return runs


def breakdown(runs: list[dict], wall: float) -> tuple[dict[str, float], float, float]:
    """Seconds per phase summed over the task runs (each run's time under its family's phase,
    less what it counted under the carved phases), the seconds of wall time during which some
    task ran, and the seconds summed over every task run."""
    phases = dict.fromkeys(ORDER, 0.0)
    for run in runs:
        carved = {name: s for name, s in run["phases"].items() if name in CARVED}
        family = FAMILY_PHASE.get(run["family"], run["family"])
        phases[family] = phases.get(family, 0.0) + run["seconds"] - sum(carved.values())
        for name, s in carved.items():
            phases[name] += s
    spans = sorted((r["start"], r["start"] + r["seconds"]) for r in runs)
    covered, reach = 0.0, None
    for a, b in spans:
        if reach is None or a > reach:
            covered += b - a
            reach = b
        elif b > reach:
            covered += b - reach
            reach = b
    return phases, min(covered, wall), sum(r["seconds"] for r in runs)
