"""`python -m bench`: the benchmark table of cvas. Figures are printed, never asserted.

Each timed figure is the median of BENCH_REPEAT (>= 3) runs unless it is a one-off build
(backfills), which is said in its label. Knobs: BENCH_NEW_PER_DAY (scale of the 1M-row
day, default 500), BENCH_YEARS (no-op check, default 3), BENCH_SSH (1/0), BENCH_REPEAT (3);
for the batched backfill and adoption figures BENCH_BATCH_NEW_PER_DAY (750, ~30k
transactions a day), BENCH_BATCH_DAYS (365) and BENCH_BATCH_YEARS (3; 0 or 1 skips the
multi-year run). Those backfills are `cvas backfill` processes as users run them: the
directory source (the simulated Nova's extracts written as drops first, untimed), luigi.cfg's
own workers, the peak RSS of the whole process tree; each against one bare DuckDB `COPY …
PARTITION_BY` pass per kind over the same drops, timed right after it, and with its profile
(where its time goes, from the run's log: bench/backfill.py). `python -m bench backfill`
(make bench-backfill) runs only those backfills, without adoption.

The first table, `cvas daily` at growing history, times exactly what `make daily` runs: a
fresh `cvas daily --date D` process (every task of DailyPipeline, interpreter start included,
the directory source, luigi.cfg's own workers) on one steady-state history grown 30 -> 365 ->
1,095 days (each mark snapshot by a hard-linked copy), the median of BENCH_DAILY_REPEAT
rounds that each time every mark in turn, then the peak memory of its whole process tree in
one more run (PSS summed over the tree, and RSS summed and of the largest process).
Knobs: BENCH_DAILY_MARKS (days of history, default 30,365,1095), BENCH_DAILY_NEW_PER_DAY
(scale, default 800, about 30k transactions a day), BENCH_DAILY_REPEAT (timed runs per mark,
default 5, each on a hard-linked copy of the history).
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
YEARS = int(os.environ.get("BENCH_YEARS", "3"))
REPEAT = max(3, int(os.environ.get("BENCH_REPEAT", "3")))
# the history ends yesterday: `cvas daily` refuses a day that is not over (preflight, exit 6)
_LONGEST = max(int(x) for x in os.environ.get("BENCH_DAILY_MARKS", "30,365,1095").split(","))
START = dt.date.today() - dt.timedelta(days=_LONGEST + 1)
CFG = """[core]
autoload_range = false
scheduler_host = 127.0.0.1
scheduler_port = {port}
[retcode]
task_failed = 30
scheduling_error = 35
not_run = 25
missing_data = 20
already_running = 10
unhandled_exception = 40
[cvas]
data_root = {root}
source = simulated
master_xlsx = {nova}/Master_CPCs.xlsx
exclusions = {nova}/Users_No_Limits.csv
workers = 1
log_dir = {work}/log
subscriptions_keep_days = 7
[simulated_source]
database = {nova}/nova.duckdb
"""

figures: list[tuple[str, str]] = []


def say(label: str, value: str) -> None:
    figures.append((label, value))
    print(f"  {label}: {value}", file=sys.stderr, flush=True)


def median(fn, repeat=REPEAT) -> float:
    return statistics.median(fn() for _ in range(repeat))


def configure(work: Path, root: Path, nova: Path, port: int = 8082, drops: Path | None = None,
              workers: int | None = 1) -> Path:
    """The luigi.cfg of a bench run on `root`: the simulated source on `nova`, or the directory
    source on `drops`; `workers` None keeps the shipped default (what users run)."""
    cfg = work / f"luigi-{root.name}.cfg"
    text = CFG.format(root=root, nova=nova, work=work, port=port)
    if drops is not None:
        text = text.replace("source = simulated", "source = directory") + f"[directory_source]\nroot = {drops}\n"
    if workers != 1:
        text = text.replace("workers = 1\n", "" if workers is None else f"workers = {workers}\n")
    cfg.write_text(text)
    os.environ["LUIGI_CONFIG_PATH"] = str(cfg)
    import luigi.configuration
    from luigi.task_register import Register

    luigi.configuration.add_config_path(str(cfg))  # later files override earlier ones
    Register.clear_instance_cache()
    return cfg


def in_subprocess(cfg: Path, code: str) -> dict:
    """Run `code` in a fresh interpreter; returns its wall time `s` and peak RSS `mib`."""
    # VmHWM is the peak of this process's own address space; ru_maxrss would carry the
    # parent's peak across exec on Linux
    wrapper = ("import time, json\nt0 = time.perf_counter()\n" + code +
               "\nhwm = [l for l in open('/proc/self/status') if l.startswith('VmHWM')][0].split()[1]"
               "\nprint(json.dumps({'s': time.perf_counter() - t0, 'mib': int(hwm) / 1024}))")
    out = subprocess.run([sys.executable, "-c", wrapper], cwd=REPO, env=dict(os.environ, LUIGI_CONFIG_PATH=str(cfg)),
                         check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def timed_backfill(start: dt.date, end: dt.date) -> tuple[float, float]:
    """(wall seconds, seconds inside task run()) of an in-process backfill with one worker."""
    import luigi

    from tasks.pipeline import run_backfill

    spent = []

    @luigi.Task.event_handler(luigi.Event.PROCESSING_TIME)
    def _processing(task, seconds):  # noqa: ARG001
        spent.append(seconds)

    t0 = time.perf_counter()
    code = run_backfill(start, end, progress=lambda _: None)
    wall = time.perf_counter() - t0
    luigi.Task._event_callbacks.get(luigi.Task, {}).get(luigi.Event.PROCESSING_TIME, set()).discard(_processing)
    if code:
        raise SystemExit(f"backfill {start}..{end} failed with exit code {code}")
    return wall, sum(spent)


def rows_between(layout, start: dt.date, end: dt.date) -> int:
    import pyarrow.parquet as pq

    from cvas.core.schemas import KINDS

    n, day = 0, start
    while day <= end:
        n += sum(pq.read_metadata(layout.transactions(k, day)).num_rows for k in KINDS)
        day += dt.timedelta(days=1)
    return n


def bare_load_ratio(layout, day: dt.date) -> tuple[float, float, int]:
    """load_day of the day's RENO extract vs DuckDB's bare CSV→Parquet conversion of the same file."""
    import duckdb

    from cvas.steps.load import load_day

    raw = layout.raw("reno", day)
    scratch = layout.root / ".staging" / "bench-load"
    scratch.mkdir(parents=True, exist_ok=True)

    def ours():
        t = time.perf_counter()
        load_day("reno", day, raw, scratch / "x.parquet", scratch / "r.csv", scratch / "q.json", layout.staging)
        return time.perf_counter() - t

    def bare():
        t = time.perf_counter()
        con = duckdb.connect()
        con.execute(f"copy (select * from read_csv('{raw}', header=true)) to '{scratch / 'b.parquet'}'")
        con.close()
        return time.perf_counter() - t

    ours(), bare()
    o, b = median(ours), median(bare)
    shutil.rmtree(scratch, ignore_errors=True)
    return o, b, sum(1 for _ in open(raw)) - 1


STEP = {
    "fetch (all kinds)": "from tasks.steps.transactions import FetchTransactions as T; import luigi, datetime as dt\n"
                         "luigi.build([T(date=dt.date.fromisoformat('{day}'), kind=k) for k in "
                         "('act','reno','dct','cnr','rfnd','ppd')], local_scheduler=True, workers=1, log_level='WARNING')",
    "load (all kinds)": "from tasks.steps.transactions import LoadTransactions as T; import luigi, datetime as dt\n"
                        "luigi.build([T(date=dt.date.fromisoformat('{day}'), kind=k) for k in "
                        "('act','reno','dct','cnr','rfnd','ppd')], local_scheduler=True, workers=1, log_level='WARNING')",
    "counters": "from tasks.steps.counters import DailyCounters as T; import luigi, datetime as dt\n"
                "luigi.build([T(date=dt.date.fromisoformat('{day}'))], local_scheduler=True, workers=1, log_level='WARNING')",
    "exports": "from tasks.steps.counters import ExportCounters as T; import luigi, datetime as dt\n"
               "luigi.build([T(date=dt.date.fromisoformat('{day}'))], local_scheduler=True, workers=1, log_level='WARNING')",
    "subscription view": "from tasks.steps.subscriptions import SubscriptionView as T; import luigi, datetime as dt\n"
                         "luigi.build([T(date=dt.date.fromisoformat('{day}'))], local_scheduler=True, workers=1, "
                         "log_level='WARNING')",
    "user base": "from tasks.steps.user_base import ExportUserBase as T; import luigi, datetime as dt\n"
                 "luigi.build([T(date=dt.date.fromisoformat('{day}'))], local_scheduler=True, workers=1, log_level='WARNING')",
    "report": "from tasks.analyst.report import DailyReport as T; import luigi, datetime as dt\n"
              "luigi.build([T(date=dt.date.fromisoformat('{day}'))], local_scheduler=True, workers=1, log_level='WARNING')",
}


def step_memory(cfg: Path, layout, day: dt.date) -> None:
    """Peak RSS of each step of one day, each run alone in a fresh interpreter."""
    from cvas.core.schemas import KINDS

    for kind in KINDS:
        layout.raw(kind, day).unlink(missing_ok=True)
        layout.transactions(kind, day).unlink(missing_ok=True)
    for p in (layout.daily_counters(day), layout.user_base_snapshot(day), layout.user_base_daily(day),
              layout.subscriptions(day)):
        shutil.rmtree(p) if p.is_dir() else p.unlink(missing_ok=True)   # the view is a folder of parts
    for name, code in STEP.items():
        r = in_subprocess(cfg, code.format(day=day))
        say(f"peak memory: {name}", f"{r['mib']:,.0f} MiB ({r['s']:.2f} s incl. interpreter start)")


def million_row_day(work: Path) -> None:
    """Load + counters of a synthetic day of ~1M transactions (RENO rows replicated with new ids)."""
    import duckdb

    from cvas.simulator.simulate import simulate

    nova = work / "nova-1m"
    info = simulate(nova, START, 1, new_per_day=NEW_PER_DAY, seed=5)
    root = work / "data-1m"
    cfg = configure(work, root, nova)
    from cvas.core.layout import Layout
    from tasks.config import layout as cfg_layout

    lay: Layout = cfg_layout()
    r = in_subprocess(cfg, STEP["fetch (all kinds)"].format(day=START))
    raw = lay.raw("reno", START)
    con = duckdb.connect()
    n = con.execute(f"select count(*) from read_csv('{raw}', header=true, all_varchar=true)").fetchone()[0]
    copies = max(1, 1_000_000 // max(n, 1))
    tmp = raw.with_suffix(".big")
    con.execute(f"""copy (select r.* replace (cast(cast(r.subscription_id as hugeint) + c.i * 1000000000 as varchar)
                     as subscription_id)
                   from read_csv('{raw}', header=true, all_varchar=true) r, range({copies}) c(i)
                   order by r.trans_date, cast(r.subscription_id as hugeint) + c.i * 1000000000)
                   to '{tmp}' (header true)""")
    con.close()
    os.replace(tmp, raw)
    total = sum(1 for _ in open(raw)) - 1
    for name in ("load (all kinds)", "counters"):
        r = in_subprocess(cfg, STEP[name].format(day=START))
        say(f"1M-row day: {name} ({total:,} RENO rows)", f"{r['s']:.1f} s, peak {r['mib']:,.0f} MiB")
    o, b, n = bare_load_ratio(lay, START)
    say(f"1M-row day: load of the RENO file ({n:,} rows)", f"{o:.2f} s vs bare DuckDB CSV->Parquet {b:.2f} s: "
        f"ratio {o / b:.2f} (target <= 2)")
    del info


def fabricate_years(work: Path, template_root: Path, template_day: dt.date, years: int) -> tuple[Path, dt.date, dt.date]:
    """A fully built tree of `years` years, each day a copy of one real built day (with its own
    provenance sidecars), to time the no-op decision on realistic file counts."""
    from cvas.core import provenance
    from cvas.core.layout import Layout
    from cvas.core.schemas import KINDS
    from cvas.core.freshness import counter_inputs

    src, dst = Layout(template_root), Layout(work / "data-fabricated-years")
    start = dt.date(2023, 1, 1)
    end = start + dt.timedelta(days=365 * years - 1)
    # in publication order: a load publishes its report and rejects before its partition
    files = lambda lay, d: ([lay.raw(k, d) for k in KINDS] + [lay.quality(k, d) for k in KINDS]  # noqa: E731
                            + [lay.rejects(k, d) for k in KINDS] + [lay.transactions(k, d) for k in KINDS]
                            + [lay.daily_counters(d), lay.user_base_snapshot(d), lay.user_base_daily(d)])
    day = start
    while day <= end:
        for a, b in zip(files(src, template_day), files(dst, day)):
            b.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(a, b)
        for k in KINDS:
            provenance.record(dst, dst.transactions(k, day), inputs={"raw": dst.raw(k, day)}, params={}, rows=None)
        provenance.record(dst, dst.daily_counters(day), inputs=counter_inputs(dst, day, Path(os.environ["CVAS_EXCL"])),
                          params={}, rows=None)
        provenance.record(dst, dst.user_base_daily(day), inputs={"snapshot": dst.user_base_snapshot(day)},
                          params={}, rows=None)
        day += dt.timedelta(days=1)
    for name in ("Counters", "User_Base", "MASTERCPC.csv", "subscriptions", "Parquet_Data/aggregated",
                 "_meta/Counters", "_meta/User_Base", "_meta/MASTERCPC.csv.json"):
        if (template_root / name).exists() and not (dst.root / name).exists():
            if (template_root / name).is_dir():
                shutil.copytree(template_root / name, dst.root / name)
            else:
                shutil.copyfile(template_root / name, dst.root / name)
    return dst.root, start, end


DECIDE = """
import datetime as dt
from tasks.pipeline import planned_steps
steps = planned_steps(dt.date.fromisoformat('{start}'), dt.date.fromisoformat('{end}'))
assert not steps, steps[:5]
"""


def decide(cfg: Path, start: dt.date, end: dt.date) -> float:
    """The backfill decision (coverage grid + plan from listings and sidecars) in a fresh process."""
    return median(lambda: in_subprocess(cfg, DECIDE.format(start=start, end=end))["s"])


def noop_cli(cfg: Path, start: dt.date, end: dt.date) -> float:
    """`cvas backfill` over a fully built range, process start included."""
    env = dict(os.environ, LUIGI_CONFIG_PATH=str(cfg))

    def once():
        t = time.perf_counter()
        out = subprocess.run([sys.executable, "-m", "tasks.cli", "backfill", "--start", str(start), "--end", str(end)],
                             cwd=REPO, env=env, check=True, capture_output=True, text=True).stdout
        assert "nothing to do" in out, out
        return time.perf_counter() - t

    return median(once)


# -- cvas daily at growing history ---------------------------------------------------------

DAILY_MARKS = tuple(int(x) for x in os.environ.get("BENCH_DAILY_MARKS", "30,365,1095").split(","))
DAILY_NEW_PER_DAY = int(os.environ.get("BENCH_DAILY_NEW_PER_DAY", "800"))
DAILY_REPEAT = max(1, int(os.environ.get("BENCH_DAILY_REPEAT", "5")))
DAYS = max(DAILY_MARKS)   # the history every other figure is measured on

STEP_TIMES = """
import json, sys, time, luigi
spent = {{}}

@luigi.Task.event_handler(luigi.Event.PROCESSING_TIME)
def _processing(task, seconds):
    spent[task.task_family] = spent.get(task.task_family, 0.0) + seconds

from tasks.cli import main
code = main(["daily", "--date", "{day}"])
print(json.dumps({{"code": code, "spent": spent}}))
"""


class CommandFailed(SystemExit):
    """A timed command exited non-zero: the message shows the end of its output (its summary
    names the failed tasks), and the bench keeps its work directory (logs, data root) to look at."""

    def __init__(self, cmd: list[str], code: int, out: Path):
        def tail(path: Path) -> str:
            return "".join(path.read_text(encoding="utf-8", errors="replace").splitlines(keepends=True)[-30:])
        super().__init__(f"{' '.join(cmd)} failed with exit code {code}; the end of its output ({out}):\n"
                         f"{tail(out)}\nand of its stderr ({out.with_suffix('.err')}):\n{tail(out.with_suffix('.err'))}")


def keep_on_failure(work: Path):
    """Remove the work directory; when the bench failed, keep its logs, the commands' output and
    configurations (tens of GB of data roots and drops are removed all the same) and say where."""
    def finish(failed: bool) -> None:
        if not failed:
            shutil.rmtree(work, ignore_errors=True)
            return
        for entry in work.iterdir() if work.is_dir() else []:
            if entry.is_dir() and entry.name != "log":
                shutil.rmtree(entry, ignore_errors=True)
            elif entry.is_file() and entry.suffix not in (".out", ".err", ".cfg", ".log"):
                entry.unlink(missing_ok=True)
        print(f"bench failed: its logs and the failed command's output are kept in {work}", file=sys.stderr)
    return finish


def _hwm(pid: int) -> int:
    """The peak resident set of process `pid` since its exec, in bytes (0 once it is gone)."""
    try:
        with open(f"/proc/{pid}/status") as fh:
            return next((int(line.split()[1]) * 1024 for line in fh if line.startswith("VmHWM:")), 0)
    except OSError:
        return 0


def _smaps(pid: int) -> tuple[int, int]:
    """(Rss, Pss) of process `pid` in bytes, (0, 0) once it is gone."""
    try:
        with open(f"/proc/{pid}/smaps_rollup") as fh:
            fields = {line.split(":")[0]: int(line.split()[1]) * 1024 for line in fh if line[:4] in ("Rss:", "Pss:")}
    except (OSError, ValueError):
        return 0, 0
    return fields.get("Rss", 0), fields.get("Pss", 0)


def timed_run(cmd: list[str], env: dict, out: Path) -> float:
    """Run `cmd` to its end, its stdout into `out`: its wall seconds, with nothing sampling it
    (tree_sample's polling takes CPU from the run on a 2-core machine)."""
    with open(out, "w") as fh:
        t0 = time.perf_counter()
        with open(out.with_suffix(".err"), "w") as err:
            code = subprocess.run(cmd, cwd=REPO, env=env, stdout=fh, stderr=err).returncode
        wall = time.perf_counter() - t0
    if code:
        raise CommandFailed(cmd, code, out)
    return wall


def tree_run(cmd: list[str], env: dict, out: Path) -> tuple[float, float]:
    """Run `cmd` to its end, its stdout into `out`: (wall seconds, peak RSS in MiB of its whole
    process tree: the tree's resident sets summed every 10 ms, with the largest peak of any one
    of its processes as a floor for what sampling might miss). See tree_sample."""
    got = tree_sample(cmd, env, out)
    return got["wall"], max(got["rss"], got["process"])


def tree_sample(cmd: list[str], env: dict, out: Path, pss: bool = False) -> dict[str, float]:
    """Run `cmd` to its end, its stdout into `out`, sampling its process tree every 10 ms:
    `wall` seconds; in MiB the peak of the tree's summed RSS (each forked task process counts
    the pages it shares with its parent again), with `pss` the peak of its summed PSS (shared
    pages split between the processes sharing them: the memory the tree takes from the
    machine; reading smaps costs run time, so such a run is not timed), and `process`, the
    largest peak of any one process (VmHWM, counted from its exec). Not wait4's ru_maxrss: on
    Linux it keeps the forking parent's size across exec, so a bench process holding a
    simulation would be counted as the child's peak."""
    import psutil

    with open(out, "w") as fh:
        t0 = time.perf_counter()
        err = open(out.with_suffix(".err"), "w")   # noqa: SIM115 - closed when the run ends
        proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=fh, stderr=err)
        root, peak = psutil.Process(proc.pid), {"rss": 0, "pss": 0, "process": 0}
        while proc.poll() is None:
            try:
                tree = [root.pid] + [p.pid for p in root.children(recursive=True)]
                sampled = [_smaps(pid) if pss else (psutil.Process(pid).memory_info().rss, 0) for pid in tree]
            except psutil.Error:
                sampled, tree = [], []
            peak["rss"] = max(peak["rss"], sum(r for r, _ in sampled))
            peak["pss"] = max(peak["pss"], sum(p for _, p in sampled))
            peak["process"] = max([peak["process"]] + [_hwm(pid) for pid in tree])
            time.sleep(0.01)
        wall = time.perf_counter() - t0
        err.close()
    if proc.returncode:
        raise CommandFailed(cmd, proc.returncode, out)
    return {"wall": wall} | {k: v / 2**20 for k, v in peak.items()}


def linked_copy(src: Path, dst: Path) -> None:
    """A copy of a data root whose files are hard links: outputs are only ever replaced by a
    rename, never written in place, so a run on the copy leaves the original as it was."""
    shutil.copytree(src, dst, copy_function=os.link)


def daily_runs(work: Path, snapshots: dict[int, Path], nova: Path) -> dict[int, dict]:
    """`cvas daily` of the day after each mark's history (`snapshots`: {days of history: a
    hard-linked copy of the data root at that mark}) as `make daily` runs it: a fresh process,
    the directory source (the day's drops written first, untimed), luigi.cfg's own `workers`
    (a forked process per task). DAILY_REPEAT rounds, each timing one run per mark in turn, so
    the VM's drift (its CPU speed varies by 10-20% over minutes) falls on every mark alike
    and the ratio between marks means something; each run on a fresh linked copy of the
    snapshot after the page cache's dirty data is written out (a writeback of the copy's setup
    would land in the timed run's fsyncs). Then per mark one run sampling memory (tree_sample
    with PSS: reading smaps costs run time, so it is not timed) and one in one process with a per-task
    timer for the breakdown (a forked task's timer would stay in its process).
    Returns {mark: {"walls", "memory", "spent" (seconds per task), "rows" (of the day)}}."""
    from cvas.core.layout import Layout

    cvas = str(Path(sys.executable).with_name("cvas"))
    out = {mark: {"walls": []} for mark in snapshots}

    def one(mark: int, how: str) -> None:
        day = START + dt.timedelta(days=mark)
        drops = work / f"drops-{day}"
        if not drops.exists():
            write_drops(nova, drops, day, day)
        copy = work / f"daily-run-{mark}"
        linked_copy(snapshots[mark], copy)
        cfg = configure(work, copy, nova, drops=drops, workers=1 if how == "steps" else None)
        env = dict(os.environ, LUIGI_CONFIG_PATH=str(cfg))
        cmd = [cvas, "daily", "--date", str(day)]
        os.sync()
        try:
            if how == "time":
                out[mark]["walls"].append(timed_run(cmd, env, work / "daily.out"))
            elif how == "memory":
                out[mark]["memory"] = tree_sample(cmd, env, work / "daily.out", pss=True)
            else:
                tree_run([sys.executable, "-c", STEP_TIMES.format(day=day)], env, work / "daily.out")
                out[mark]["spent"] = json.loads((work / "daily.out").read_text().strip().splitlines()[-1])["spent"]
                out[mark]["rows"] = rows_between(Layout(copy), day, day)
        finally:
            shutil.rmtree(copy, ignore_errors=True)

    for _ in range(DAILY_REPEAT):
        for mark in sorted(snapshots):
            one(mark, "time")
    for mark in sorted(snapshots):
        one(mark, "memory")
        one(mark, "steps")
    return out


def daily_at_history(work: Path) -> tuple[Path, Path, float, float, int]:
    """`cvas daily` of the day after 30, 365 and 1,095 days of steady-state history: one
    simulated Nova, one data root backfilled up to each mark in turn and snapshot there (a
    hard-linked copy), then the daily runs of every mark (daily_runs). Returns the root (built
    up to the last mark), the Nova, and the backfill's wall seconds, seconds in task run() and
    transaction rows."""
    from cvas.core.layout import Layout
    from cvas.simulator.simulate import simulate

    nova = work / "nova-daily"
    t = time.perf_counter()
    simulate(nova, START, max(DAILY_MARKS) + 1, new_per_day=DAILY_NEW_PER_DAY, seed=3, steady=True)
    say(f"cvas daily: simulate {max(DAILY_MARKS) + 1} steady days at {DAILY_NEW_PER_DAY} new/day (one-off)",
        f"{time.perf_counter() - t:.1f} s")
    root = work / "data-daily"
    done, walls, spent_all, rows_all, snapshots = 0, 0.0, 0.0, 0, {}
    for mark in sorted(DAILY_MARKS):
        lay = Layout(root)
        configure(work, root, nova)
        wall, in_tasks = timed_backfill(START + dt.timedelta(days=done), START + dt.timedelta(days=mark - 1))
        walls, spent_all = walls + wall, spent_all + in_tasks
        rows_all += rows_between(lay, START + dt.timedelta(days=done), START + dt.timedelta(days=mark - 1))
        say(f"cvas daily: backfill of days {done + 1}..{mark} (one-off, history only)", f"{wall:.0f} s")
        done = mark
        snapshots[mark] = work / f"history-{mark}"
        linked_copy(root, snapshots[mark])
    results = daily_runs(work, snapshots, nova)
    totals = {}
    for mark, got in sorted(results.items()):
        totals[mark] = statistics.median(got["walls"])
        memory, spent = got["memory"], got["spent"]
        say(f"cvas daily @{mark} days of history (whole process, every DailyPipeline task, median of "
            f"{len(got['walls'])} rounds)", f"{totals[mark]:.2f} s, runs {', '.join(f'{w:.2f}' for w in got['walls'])} s")
        say(f"  @{mark}: peak memory of the process tree",
            f"PSS {memory['pss']:,.0f} MiB (RSS summed over its processes {memory['rss']:,.0f} MiB; "
            f"largest process {memory['process']:,.0f} MiB)")
        for family, seconds in sorted(spent.items(), key=lambda kv: -kv[1]):
            say(f"  @{mark}: {family} run()", f"{seconds:.2f} s")
        say(f"  @{mark}: interpreter, imports, scheduling (the rest)", f"{totals[mark] - sum(spent.values()):.2f} s")
        say(f"  @{mark}: transactions of the increment day", f"{got['rows']:,} rows")
    for mark in snapshots:
        shutil.rmtree(snapshots[mark], ignore_errors=True)
    if 30 in totals and max(totals) != 30:
        last = max(totals)
        say(f"cvas daily ratio {last}/30 (target <= 1.2)", f"{totals[last] / totals[30]:.2f}")
    return root, nova, walls, spent_all, rows_all


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# -- batched backfill and adoption (issue 13) ----------------------------------------------------

BATCH_NEW_PER_DAY = int(os.environ.get("BENCH_BATCH_NEW_PER_DAY", "750"))   # ~30k transactions a day
BATCH_DAYS = int(os.environ.get("BENCH_BATCH_DAYS", "365"))
BATCH_YEARS = int(os.environ.get("BENCH_BATCH_YEARS", "3"))                 # 0 skips the long backfill

def write_drops(nova: Path, drops: Path, start: dt.date, end: dt.date) -> None:
    """Nova's extracts of [start, end] as the directory source's drops (`Daily_Data/<day>/`,
    `User_Base/NBS_BASE/`): what a backfill of history reads in production, as the legacy
    did. Written by the simulated source's own range extracts, before any clock starts."""
    from cvas.core.schemas import KINDS
    from cvas.sources.directory import DirectorySource
    from cvas.sources.simulated import SimulatedSource

    source, out = SimulatedSource(nova / "nova.duckdb"), DirectorySource(drops)
    days = [start + dt.timedelta(days=i) for i in range((end - start).days + 1)]
    for kind in KINDS:
        source.extract_transactions_days(kind, days, lambda day, kind=kind: out.daily_file(kind, day))
    for day in days:
        out.user_base_file(day).parent.mkdir(parents=True, exist_ok=True)
        source.extract_user_base(day, out.user_base_file(day))


def cvas_run(work: Path, root: Path, nova: Path, drops: Path, *commands: list[str]) -> tuple[float, float]:
    """`cvas <command>` for each of `commands` in turn on `root`, as users run it: the directory
    source on `drops`, luigi.cfg's own workers; (wall seconds, peak RSS MiB of the process tree)."""
    cfg = configure(work, root, nova, drops=drops, workers=None)
    env = dict(os.environ, LUIGI_CONFIG_PATH=str(cfg))
    cvas = str(Path(sys.executable).with_name("cvas"))
    runs = [tree_run([cvas, *command], env, work / "cvas.out") for command in commands]
    return sum(wall for wall, _ in runs), max(peak for _, peak in runs)


def backfill_year(work: Path, days: int, label: str) -> dict:
    """`cvas backfill` of `days` steady-state days from the directory source (the whole process
    tree, every output), its profile (bench.backfill), and one bare DuckDB `COPY … PARTITION_BY`
    pass per kind over the same day files, timed right after it (the ratio is taken within one
    run: the machine's speed drifts between runs)."""
    from bench.backfill import bare_partitioned, breakdown, read_profile
    from cvas.core.layout import Layout
    from cvas.simulator.simulate import simulate
    from cvas.sources.directory import DirectorySource

    nova, drops, root = work / f"nova-{label}", work / f"drops-{label}", work / f"data-{label}"
    if root.exists():   # a backfill from nothing: another figure's tree there would be refreshed, not built
        raise SystemExit(f"bench: {root} exists already; each backfill figure needs a data root of its own")
    t = time.perf_counter()
    info = simulate(nova, START, days, new_per_day=BATCH_NEW_PER_DAY, seed=3, steady=True)
    write_drops(nova, drops, START, info.end)
    print(f"  ({label}: simulated {days} days and wrote their drops in {time.perf_counter() - t:.0f} s, untimed)",
          file=sys.stderr, flush=True)
    logs = set((work / "log").glob("*.log"))
    os.sync()   # the drops' dirty pages would be written out during the timed run's fsyncs
    wall, peak = cvas_run(work, root, nova, drops, ["backfill", "--start", str(START), "--end", str(info.end)])
    rows = rows_between(Layout(root), START, info.end)
    bare, bare_rows = bare_partitioned(DirectorySource(drops), START, info.end, work / "bare")
    runs = read_profile(sorted(set((work / "log").glob("*.log")) - logs))
    return {"nova": nova, "drops": drops, "root": root, "info": info, "wall": wall, "peak": peak, "rows": rows,
            "bare": bare, "bare_rows": bare_rows, "profile": breakdown(runs, wall)}


def say_profile(got: dict) -> None:
    """The backfill's time by phase: task time summed over the worker processes (luigi.cfg's
    workers run tasks side by side), and the wall time during which no task ran."""
    phases, covered, summed = got["profile"]
    wall = got["wall"]
    say("  profile: task run() time summed over the workers",
        f"{summed:.1f} s (tasks ran during {covered:.1f} s of the {wall:.1f} s wall: "
        f"parallelism {summed / max(covered, 1e-9):.2f})")
    for name, seconds in phases.items():
        say(f"  profile: {name}", f"{seconds:.1f} s ({seconds / max(summed, 1e-9):.0%} of task time)")
    say("  profile: Luigi scheduling, planning, process start (no task running)",
        f"{wall - covered:.1f} s ({(wall - covered) / wall:.0%} of wall)")


def backfill_targets(work: Path, adopt: bool = True) -> None:
    """`cvas backfill` of a steady-state year from the directory source against one bare DuckDB
    pass over the same CSVs, with its profile; then (with `adopt`) `cvas adopt` of that history
    as a legacy tree plus the backfill after it; then the rows/s of a BATCH_YEARS-year backfill."""
    from cvas.simulator.legacy import write_legacy_tree

    year = backfill_year(work, BATCH_DAYS, "batch")
    wall, rows, bare = year["wall"], year["rows"], year["bare"]
    say(f"cvas backfill of {BATCH_DAYS} days, every output, directory source ({rows:,} rows, "
        f"{rows / BATCH_DAYS:,.0f}/day)",
        f"{wall:.1f} s (target <= 75), {rows / wall:,.0f} rows/s, peak {year['peak']:,.0f} MiB "
        "(process tree; target <= 1,536 MiB)")
    say("bare DuckDB: one COPY (read_csv([every day file], typed columns)) TO … (PARTITION_BY (year_month, day)) "
        "per kind", f"{bare:.1f} s ({year['bare_rows']:,} rows); backfill ratio {wall / bare:.2f} (target <= 3.5)")
    say_profile(year)

    if adopt:
        legacy, adopted, end = work / "legacy-batch", work / "data-adopt", year["info"].end
        write_legacy_tree(year["info"].database, legacy, year["info"].days, [])
        wall_a, peak_a = cvas_run(work, adopted, year["nova"], year["drops"], ["adopt", str(legacy)],
                                  ["backfill", "--start", str(START), "--end", str(end)])
        say(f"cvas adopt of {BATCH_DAYS} legacy days + the backfill after it",
            f"{wall_a:.1f} s, peak {peak_a:,.0f} MiB; ratio to the bare pass {wall_a / bare:.2f}")
        for path in (legacy, adopted):
            shutil.rmtree(path, ignore_errors=True)
    for path in (year["root"], year["drops"], year["nova"]):
        shutil.rmtree(path, ignore_errors=True)

    if BATCH_YEARS > 1:
        years = backfill_year(work, 365 * BATCH_YEARS, "years")
        wall_y, rows_y = years["wall"], years["rows"]
        say(f"cvas backfill of {BATCH_YEARS} years ({rows_y:,} rows)",
            f"{wall_y:.0f} s, {rows_y / wall_y:,.0f} rows/s vs {rows / wall:,.0f} for one year "
            f"(ratio {(rows_y / wall_y) / (rows / wall):.2f}, target >= 0.9), peak {years['peak']:,.0f} MiB; "
            f"bare pass {years['bare']:.1f} s, ratio {wall_y / years['bare']:.2f}")
        say_profile(years)
        for path in (years["root"], years["drops"], years["nova"]):
            shutil.rmtree(path, ignore_errors=True)


def print_table() -> None:
    width = max(len(k) for k, _ in figures)
    print(f"\ncvas benchmark — {dt.date.today()}, {os.uname().nodename}, {os.cpu_count()} cores, "
          f"scale {DAILY_NEW_PER_DAY} new subscriptions/day ({NEW_PER_DAY} for the 1M-row day, "
          f"{BATCH_NEW_PER_DAY} for the backfills); median of {REPEAT} runs unless one-off "
          f"({DAILY_REPEAT} for cvas daily)")
    for k, v in figures:
        print(f"| {k:<{width}} | {v} |")


def backfill_only() -> None:
    """`python -m bench backfill` (make bench-backfill): only the backfill figures, without adoption."""
    sys.path.insert(0, str(REPO))
    work = Path(tempfile.mkdtemp(prefix="cvas-bench-"))
    print(f"cvas backfill benchmark: {BATCH_DAYS} days at {BATCH_NEW_PER_DAY} new subscriptions/day "
          f"(and {BATCH_YEARS} years when > 1); work dir {work}", file=sys.stderr)
    finish, failed = keep_on_failure(work), True
    try:
        backfill_targets(work, adopt=False)
        failed = False
    finally:
        finish(failed)
    print_table()


def main() -> None:
    sys.path.insert(0, str(REPO))
    work = Path(tempfile.mkdtemp(prefix="cvas-bench-"))
    print(f"cvas benchmark: {DAYS} days at {DAILY_NEW_PER_DAY} new subscriptions/day; work dir {work}",
          file=sys.stderr)
    finish, failed = keep_on_failure(work), True
    try:
        # one steady-state history, grown 30 -> 365 -> 1,095 days, serves every figure below
        root, nova, walls, spent, rows = daily_at_history(work)
        cfg = configure(work, root, nova)
        os.environ["CVAS_EXCL"] = str(nova / "Users_No_Limits.csv")
        from tasks.config import layout

        lay = layout()
        say(f"backfill of {DAYS} days, one worker (one-off, the history above)",
            f"{walls:.0f} s, {rows / walls:,.0f} rows/s ({rows:,.0f} rows)")
        say("scheduling overhead of that backfill (target < 10%)",
            f"{(walls - spent) / walls:.1%} (task run() time {spent:.0f} s of {walls:.0f} s)")

        from bench.view import bench_view

        v = bench_view(lay, START + dt.timedelta(days=DAYS - 1), repeat=REPEAT)
        vs, bs = statistics.median(v["runs"]["view"]), statistics.median(v["runs"]["bare"])
        say(f"subscription view over {DAYS} days ({v['subscriptions']:,} subscriptions)",
            f"{vs:.2f} s vs bare DuckDB {bs:.2f} s: ratio {vs / bs:.2f} (target <= 1.3)")
        o, b, n = bare_load_ratio(lay, START + dt.timedelta(days=DAYS - 1))
        say(f"load of one RENO day ({n:,} rows)", f"{o:.2f} s vs bare DuckDB CSV->Parquet {b:.2f} s: "
            f"ratio {o / b:.2f} (target <= 2)")
        step_memory(cfg, lay, START + dt.timedelta(days=DAYS))

        first, last = START, START + dt.timedelta(days=DAYS - 1)
        say(f"no-op backfill over {DAYS} built days, local scheduler", f"{noop_cli(cfg, first, last):.2f} s "
            "(cvas backfill, process start included)")
        port = free_port()
        central = configure(work, root, nova, port=port)
        central.write_text(central.read_text().replace("workers = 1", "workers = 1\nscheduler = central"))
        env = dict(os.environ, LUIGI_CONFIG_PATH=str(central), LUIGID_DIR=str(work / "luigid"), LUIGID_PORT=str(port))
        subprocess.run(["bash", str(REPO / "scripts" / "luigid.sh"), "start"], cwd=REPO, env=env, check=True,
                       capture_output=True)
        try:
            say(f"no-op backfill over {DAYS} built days, through luigid", f"{noop_cli(central, first, last):.2f} s")
        finally:
            subprocess.run(["bash", str(REPO / "scripts" / "luigid.sh"), "stop"], cwd=REPO, env=env,
                           capture_output=True)
        cfg = configure(work, root, nova)
        years_root, ys, ye = fabricate_years(work, root, last, YEARS)
        ycfg = configure(work, years_root, nova)
        say(f"no-op decision over {YEARS} built years ({(ye - ys).days + 1} days; target < 3 s)",
            f"{decide(ycfg, ys, ye):.2f} s (fresh process, imports included; the decision is the same "
            "for the local scheduler and luigid: it is made from storage before Luigi starts)")
        million_row_day(work)
        backfill_targets(work)
        failed = False
    finally:
        finish(failed)
    if os.environ.get("BENCH_SSH", "1") == "1":
        from bench.ssh_fetch import run as ssh_run

        r = ssh_run(repeat=REPEAT)
        say(f"ssh+psql fetch, one {r['kind']} day ({r['rows']:,} rows)", f"{r['ssh_s']:.2f} s, {r['ssh_rows_s']:,.0f} rows/s")
        say("local psql, same query (the limit)",
            f"{r['local_s']:.2f} s, {r['local_rows_s']:,.0f} rows/s; ssh/local throughput {r['ssh_vs_local']:.0%}")
    print_table()


if __name__ == "__main__":
    if sys.argv[1:] == ["backfill"]:
        backfill_only()
    elif sys.argv[1:]:
        raise SystemExit("usage: python -m bench [backfill]")
    else:
        main()
