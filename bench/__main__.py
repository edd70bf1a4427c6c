"""`python -m bench`: the benchmark table. Each figure is the median of several runs.

Environment knobs: BENCH_NEW_PER_DAY (scale, default 500 ≈ 20k+ transactions a day),
BENCH_HISTORY (days of history for the flatness check, default 180), BENCH_REPEAT (3).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
NEW_PER_DAY = int(os.environ.get("BENCH_NEW_PER_DAY", "500"))
HISTORY = int(os.environ.get("BENCH_HISTORY", "180"))
REPEAT = max(3, int(os.environ.get("BENCH_REPEAT", "3")))
START = dt.date(2025, 1, 1)


def median_of(fn, repeat=REPEAT):
    values = [fn() for _ in range(repeat)]
    return statistics.median(values), values


def write_cfg(work: Path, nova: Path) -> Path:
    cfg = work / "luigi.cfg"
    cfg.write_text(f"""[core]
autoload_range = false
[retcode]
task_failed = 30
scheduling_error = 35
not_run = 25
missing_data = 20
already_running = 10
unhandled_exception = 40
[cvas]
data_root = {work / 'data'}
source = simulated
master_xlsx = {nova / 'Master_CPCs.xlsx'}
exclusions = {nova / 'Users_No_Limits.csv'}
workers = 2
batch_days = 31
[simulated_source]
database = {nova / 'nova.duckdb'}
""")
    return cfg


def run_cvas(cfg: Path, *args: str) -> float:
    env = dict(os.environ, LUIGI_CONFIG_PATH=str(cfg))
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "tasks.cli", *args], cwd=REPO, env=env, check=True,
                   stdout=subprocess.DEVNULL)
    return time.perf_counter() - t0


def step_in_subprocess(cfg: Path, code: str) -> dict:
    """Run one step in a fresh interpreter; returns its wall time and peak RSS (MiB)."""
    env = dict(os.environ, LUIGI_CONFIG_PATH=str(cfg))
    wrapper = ("import resource, time, json\nt0 = time.perf_counter()\n" + code +
               "\nprint(json.dumps({'s': time.perf_counter() - t0, "
               "'rss_mib': resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))")
    out = subprocess.run([sys.executable, "-c", wrapper], cwd=REPO, env=env, check=True, capture_output=True,
                         text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


INCREMENT = """
import datetime as dt, luigi
from tasks.pipeline import DailyPipeline
r = luigi.build([DailyPipeline(date=dt.date.fromisoformat('{day}'))], local_scheduler=True, workers=1,
                detailed_summary=True, log_level='WARNING')
assert r.status.name.startswith('SUCCESS'), r.summary_text
"""


def increment(cfg: Path, work: Path, day: dt.date) -> float:
    """Time of one daily increment (fetch + load + counters + exports) for `day`, median of REPEAT:
    between runs the day's outputs are removed so each run does the same work."""
    from cvas.layout import Layout
    from cvas.schemas import KINDS

    lay = Layout(work / "data")

    def once():
        for kind in KINDS:
            for p in (lay.raw(kind, day), lay.transactions(kind, day)):
                p.unlink(missing_ok=True)
        lay.daily_counters(day).unlink(missing_ok=True)
        return step_in_subprocess(cfg, INCREMENT.format(day=day))["s"]

    return median_of(once)[0]


def rows_of_day(work: Path, day: dt.date) -> int:
    import pyarrow.parquet as pq

    from cvas.layout import Layout
    from cvas.schemas import KINDS

    lay = Layout(work / "data")
    return sum(pq.read_metadata(lay.transactions(k, day)).num_rows for k in KINDS)


def main() -> None:
    sys.path.insert(0, str(REPO))
    from cvas.simulate import simulate

    work = Path(tempfile.mkdtemp(prefix="cvas-bench-"))
    nova = work / "nova"
    figures: list[tuple[str, str]] = [("cores", str(os.cpu_count())), ("scale", f"{NEW_PER_DAY} new subscriptions/day")]
    try:
        days = HISTORY + 1
        t0 = time.perf_counter()
        simulate(nova, START, days, new_per_day=NEW_PER_DAY, seed=3)
        figures.append((f"simulate {days} days", f"{time.perf_counter() - t0:.1f} s"))
        cfg = write_cfg(work, nova)

        # history of 30 days, then the increment of day 31
        d30 = START + dt.timedelta(days=30)
        t = run_cvas(cfg, "backfill", "--start", str(START), "--end", str(d30 - dt.timedelta(days=1)))
        rows = sum(rows_of_day(work, START + dt.timedelta(days=i)) for i in range(30))
        figures.append(("backfill 30 days", f"{t:.1f} s, {rows / t:,.0f} rows/s ({rows:,} rows)"))
        inc30 = increment(cfg, work, d30)
        figures.append(("daily increment @30 days history", f"{inc30:.2f} s ({rows_of_day(work, d30):,} rows)"))

        # extend the history to HISTORY days, then the increment of the next day
        dN = START + dt.timedelta(days=HISTORY)
        t = run_cvas(cfg, "backfill", "--start", str(d30), "--end", str(dN - dt.timedelta(days=1)))
        rows = sum(rows_of_day(work, d30 + dt.timedelta(days=i)) for i in range(HISTORY - 30))
        figures.append((f"backfill {HISTORY - 30} more days", f"{t:.1f} s, {rows / t:,.0f} rows/s"))
        incN = increment(cfg, work, dN)
        figures.append((f"daily increment @{HISTORY} days history", f"{incN:.2f} s ({rows_of_day(work, dN):,} rows)"))
        figures.append((f"increment ratio {HISTORY}/30 (target <= 1.2)", f"{incN / inc30:.2f}"))

        # no-op decision over the whole built range
        noop, _ = median_of(lambda: run_cvas(cfg, "backfill", "--start", str(START), "--end", str(dN)))
        figures.append((f"no-op backfill over {HISTORY + 1} built days (local)", f"{noop:.2f} s"))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if os.environ.get("BENCH_SSH", "1") == "1":
        from bench.ssh_fetch import run as ssh_run

        r = ssh_run(repeat=REPEAT)
        figures.append((f"ssh+psql fetch, one {r['kind']} day ({r['rows']:,} rows)",
                        f"{r['ssh_s']:.2f} s, {r['ssh_rows_s']:,.0f} rows/s"))
        figures.append(("local psql, same query (the limit)",
                        f"{r['local_s']:.2f} s, {r['local_rows_s']:,.0f} rows/s; ssh/local {r['ssh_vs_local']:.0%}"))
    width = max(len(k) for k, _ in figures)
    print(f"cvas benchmark, {dt.date.today()}, {os.cpu_count()} cores, median of {REPEAT} runs where repeated")
    for k, v in figures:
        print(f"  {k:<{width}}  {v}")


if __name__ == "__main__":
    main()
