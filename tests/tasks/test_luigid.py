"""A real luigid started by scripts/luigid.sh: history, visualiser API, concurrent workers, the DONE cooldown."""

from __future__ import annotations

import collections
import datetime as dt
import json
import os
import socket
import sqlite3
import subprocess
import sys
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import luigi
import psutil
import pytest
from luigi.execution_summary import LuigiStatusCode
from luigi.task import flatten

from tasks.ops.luigid import done_since, wait_out_done_cooldown
from tests.cli_runs import run_cvas
from tests.luigid_tasks import RUN_LOG, Leaf, expected_total

pytestmark = pytest.mark.slow   # see pyproject: make test-fast leaves it out

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "luigid.sh"
START = dt.date(2025, 10, 6)
DAYS = [START + dt.timedelta(days=i) for i in range(3)]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Luigid:
    """One luigid run by scripts/luigid.sh with its var directory in a temp folder."""

    directory: Path
    port: int
    env: dict

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    @property
    def pid(self) -> int:
        return int((self.directory / "luigid.pid").read_text())

    def script(self, command: str) -> subprocess.CompletedProcess:
        return subprocess.run([str(SCRIPT), command], env=self.env, capture_output=True, text=True, timeout=60)

    def api(self, method: str, **data) -> dict:
        query = urllib.parse.urlencode({"data": json.dumps(data)})
        with urllib.request.urlopen(f"{self.url}api/{method}?{query}", timeout=10) as response:
            return json.load(response)["response"]

    def events(self) -> list[tuple[str, str, str]]:
        """(task_id, family, event) rows of the SQLite task history, in event order."""
        with sqlite3.connect(self.directory / "history.db") as db:
            return db.execute("select t.task_id, t.name, e.event_name from task_events e "
                              "join tasks t on t.id = e.task_id order by e.id").fetchall()

    def build(self, tasks, workers: int = 2) -> luigi.execution_summary.LuigiRunResult:
        return luigi.build(tasks, scheduler_host="127.0.0.1", scheduler_port=self.port, workers=workers,
                           detailed_summary=True, log_level="WARNING")


def start_luigid(directory: Path, extra_config: str | None = None) -> Luigid:
    env = {**os.environ, "LUIGID_DIR": str(directory), "LUIGID_PORT": str(free_port()),
           "LUIGI_CONFIG_PATH": str(REPO / "luigi.cfg")}
    if extra_config:  # read on top of ./luigi.cfg, which luigid finds in its cwd, the repo root
        override = directory.parent / f"{directory.name}.cfg"
        override.write_text(extra_config)
        env["LUIGI_CONFIG_PATH"] = str(override)
    server = Luigid(directory, int(env["LUIGID_PORT"]), env)
    started = server.script("start")
    assert started.returncode == 0, started.stdout + started.stderr
    return server


@pytest.fixture(scope="module")
def luigid(tmp_path_factory):
    server = start_luigid(tmp_path_factory.mktemp("var") / "luigid")
    yield server
    server.script("stop")


@pytest.fixture(scope="module")
def nova(tmp_path_factory):
    from cvas.simulator.simulate import simulate

    return simulate(tmp_path_factory.mktemp("nova"), START, len(DAYS), new_per_day=20, seed=7)


def all_tasks(roots) -> dict[str, luigi.Task]:
    seen, stack = {}, list(roots)
    while stack:
        task = stack.pop()
        if task.task_id not in seen:
            seen[task.task_id] = task
            stack.extend(flatten(task.requires()))
    return seen


def test_script_is_idempotent_loopback_only_and_saves_state_on_stop(tmp_path):
    server = start_luigid(tmp_path / "luigid")
    try:
        pid = server.pid
        again = server.script("start")
        assert again.returncode == 0 and f"already running (pid {pid})" in again.stdout
        status = server.script("status")
        assert status.returncode == 0 and server.url in status.stdout
        listening = [c.laddr for c in psutil.Process(pid).net_connections(kind="inet") if c.status == "LISTEN"]
        assert listening and all(addr.ip == "127.0.0.1" for addr in listening)
        assert (server.directory / "history.db").exists()
        assert not (server.directory / "luigid.pid").stat().st_mode & 0o002  # python-daemon's umask 0 undone

        clash = Luigid(tmp_path / "other", server.port, {**server.env, "LUIGID_DIR": str(tmp_path / "other")})
        refused = clash.script("start")
        assert refused.returncode == 1 and "taken by another process" in refused.stderr
    finally:
        stopped = server.script("stop")
    assert stopped.returncode == 0 and f"stopped (pid {pid})" in stopped.stdout
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    assert not (server.directory / "luigid.pid").exists()
    assert (server.directory / "state.pickle").exists()  # dumped on SIGTERM
    assert server.script("status").returncode == 3
    assert server.script("stop").returncode == 0


def test_pipeline_through_luigid_is_in_the_history_and_listed_done(luigid, luigi_config, nova, tmp_path):
    from tasks.pipeline import DailyPipeline

    luigi_config("cvas", "source", "simulated")
    luigi_config("cvas", "master_xlsx", nova.master_xlsx)
    luigi_config("cvas", "exclusions", nova.exclusions)
    luigi_config("simulated_source", "database", nova.database)
    roots = [DailyPipeline(date=day) for day in DAYS]
    expected = all_tasks(roots)

    result = luigid.build(roots)

    assert result.status == LuigiStatusCode.SUCCESS, result.summary_text
    assert all(task.complete() for task in expected.values())
    assert sorted(p.name for p in (tmp_path / "data" / "daily_counters").iterdir()) == [f"{d}.parquet" for d in DAYS]
    events = collections.defaultdict(list)
    for task_id, family, event in luigid.events():
        events[task_id].append(event)
        if task_id in expected:
            assert family == expected[task_id].task_family
    assert {tid for tid in expected if "DONE" in events[tid]} == set(expected)
    assert {tid for tid in expected if events[tid].count("RUNNING") == 1} == set(expected)
    listed = luigid.api("task_list", status="DONE")
    assert set(expected) <= set(listed)
    assert {listed[tid]["name"] for tid in expected} >= {"DailyPipeline", "DailyCounters", "LoadTransactions",
                                                         "FetchTransactions", "ExportCounters"}
    for tid, task in expected.items():  # progress the tasks reported, as the visualiser shows it
        if task.task_family in ("FetchTransactions", "LoadTransactions", "DailyCounters"):
            assert listed[tid]["status_message"], tid
    long_running = ("FetchTransactions", "LoadTransactions", "DailyCounters", "ExportCounters", "SubscriptionView",
                    "DailyReport")
    for tid, task in expected.items():  # and the percentage the visualiser's progress bar shows
        if task.task_family in long_running:
            assert listed[tid]["progress_percentage"] == 100, (tid, listed[tid].get("progress_percentage"))
    graph = luigid.api("graph")
    assert {tid for tid in expected if graph[tid]["status"] == "DONE"} == set(expected)
    with urllib.request.urlopen(luigid.url, timeout=10) as page:  # the visualiser itself
        assert page.status == 200 and "luigi" in page.read().decode().lower()


WORKER = """
import datetime as dt, os, sys, time
from pathlib import Path
import luigi
from tests.luigid_tasks import Total
root, days, port = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
(root / f"ready-{os.getpid()}").touch()
deadline = time.monotonic() + 20
while len(list(root.glob("ready-*"))) < 2 and time.monotonic() < deadline:  # start together
    time.sleep(0.01)
result = luigi.build([Total(root=str(root), start=dt.date(2026, 1, 1), days=days, pause=0.05)],
                     scheduler_host="127.0.0.1", scheduler_port=port, workers=2, log_level="ERROR",
                     detailed_summary=True)
print(result.status.name)
"""


def test_two_worker_processes_build_every_output_exactly_once(luigid, tmp_path):
    days, start = 12, dt.date(2026, 1, 1)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    workers = [subprocess.Popen([sys.executable, "-c", WORKER, str(tmp_path), str(days), str(luigid.port)],
                                cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
               for _ in range(2)]
    outcomes = [w.communicate(timeout=90) for w in workers]

    assert [w.returncode for w in workers] == [0, 0], outcomes
    # A worker whose tasks were run by the other one reports NOT_RUN ("not granted run permission").
    assert {out.strip() for out, _ in outcomes} <= {"SUCCESS", "NOT_RUN"}, outcomes
    runs = [line.split() for line in (tmp_path / RUN_LOG).read_text().splitlines()]
    per_task = collections.Counter(task_id for task_id, _, _ in runs)
    assert len(per_task) == 2 * days + 1 and set(per_task.values()) == {1}
    assert {int(ppid) for _, _, ppid in runs} == {w.pid for w in workers}  # both took part
    for i in range(days):
        day = start + dt.timedelta(days=i)
        assert (tmp_path / "leaf" / f"{day}.txt").read_text() == f"{day.day * 10}\n"
        assert (tmp_path / "double" / f"{day}.txt").read_text() == f"{day.day * 20}\n"
    assert (tmp_path / "total.txt").read_text() == f"{expected_total(start, days)}\n"
    assert not [p for p in tmp_path.rglob("*") if p.name.endswith(".tmp")]
    history_runs = collections.Counter(tid for tid, _, event in luigid.events() if event == "RUNNING")
    assert all(history_runs[tid] == 1 for tid in per_task)
    total_id = next(tid for tid in per_task if tid.startswith("Total_"))
    assert luigid.api("get_task_status_message", task_id=total_id)["statusMessage"] == f"summed {days} days"
    assert luigid.api("get_task_progress_percentage", task_id=total_id)["progressPercentage"] == 100


def test_a_rerun_within_the_done_cooldown_is_ignored_until_waited_out(tmp_path, luigi_config):
    server = start_luigid(tmp_path / "luigid", extra_config="[scheduler]\nstable_done_cooldown_secs = 2\n")
    luigi_config("scheduler", "stable_done_cooldown_secs", 2)  # the client reads the same luigi.cfg
    try:
        root = tmp_path / "out"
        root.mkdir()
        leaf = Leaf(root=str(root), day=DAYS[0], pause=0)
        assert server.build([leaf], workers=1).status == LuigiStatusCode.SUCCESS
        Path(leaf.output().path).unlink()  # what an invalidate does to its completeness

        ignored = server.build([leaf], workers=1)
        assert not leaf.complete() and ignored.status == LuigiStatusCode.NOT_RUN
        assert set(done_since([leaf.task_id, "Unknown_task"], server.url)) == {leaf.task_id}

        luigi_config("core", "scheduler_port", server.port)  # scheduler_url() from [core], as cvas uses it
        waited = wait_out_done_cooldown([leaf.task_id])
        assert 0 < waited <= 2.2
        assert server.build([leaf], workers=1).status == LuigiStatusCode.SUCCESS and leaf.complete()
        assert len((root / RUN_LOG).read_text().splitlines()) == 2
        assert wait_out_done_cooldown(["Unknown_task"]) == 0
        assert wait_out_done_cooldown([leaf.task_id], url="http://127.0.0.1:9/") == 0  # no luigid, no wait
    finally:
        server.script("stop")


def _cvas_cfg(tmp_path: Path, server: Luigid, nova, root: Path) -> Path:
    from tests.cli_runs import write_cfg

    return write_cfg(tmp_path / "cvas-central.cfg", root, nova=nova, log_dir=tmp_path / "log", workers=2,
                     core={"scheduler_host": "127.0.0.1", "scheduler_port": server.port},
                     scheduler="central", batch_days=1)


def test_two_cvas_backfills_through_luigid_build_each_output_once_and_invalidate_reruns(tmp_path, nova):
    server = start_luigid(tmp_path / "luigid")
    try:
        root = tmp_path / "data"
        cfg = _cvas_cfg(tmp_path, server, nova, root)
        env = {**os.environ, "LUIGI_CONFIG_PATH": str(cfg)}
        cmd = [sys.executable, "-m", "tasks.cli", "backfill", "--start", str(DAYS[0]), "--end", str(DAYS[-1])]
        procs = [subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
                 for _ in range(2)]
        outs = [p.communicate(timeout=240)[0] for p in procs]
        assert [p.returncode for p in procs] == [0, 0], outs
        runs = collections.Counter(tid for tid, _, event in server.events() if event == "RUNNING")
        per_day = [tid for tid in runs if tid.startswith(("LoadTransactions", "FetchTransactions", "DailyCounters"))]
        assert len(per_day) == len(DAYS) * 13 and all(runs[tid] == 1 for tid in per_day), runs
        from cvas.core.layout import Layout
        import pyarrow.parquet as pq

        lay = Layout(root)
        for day in DAYS:
            for path in root.glob(f"Parquet_Data/transactions/*/year_month=*/{day}.parquet"):
                pq.read_table(path)
            assert pq.read_table(lay.daily_counters(day)).num_rows > 0

        # invalidate while luigid runs: the command waits out the DONE cooldown, the rerun rebuilds
        inv = subprocess.run([sys.executable, "-m", "tasks.cli", "invalidate", "--start", str(DAYS[1]), "--end",
                              str(DAYS[1]), "--kind", "act"], cwd=REPO, env=env, capture_output=True, text=True,
                             timeout=120)
        assert inv.returncode == 0, inv.stderr
        again = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=240)
        assert again.returncode == 0, again.stdout + again.stderr
        runs = collections.Counter(tid for tid, _, event in server.events() if event == "RUNNING")
        rerun = {tid for tid, n in runs.items() if n == 2}
        assert any(t.startswith("LoadTransactions") and "act" in t for t in rerun), rerun
        assert any(t.startswith("DailyCounters") for t in rerun), rerun
        assert not list((root / "_invalid").rglob("*.*"))
    finally:
        server.script("stop")


def test_a_batched_backfill_through_luigid_records_every_day_done(tmp_path, nova):
    from tasks.pipeline import DailyPipeline
    from tests.conftest import luigi_settings, simulated_settings

    server = start_luigid(tmp_path / "luigid")
    try:
        root = tmp_path / "data"
        cfg = _cvas_cfg(tmp_path, server, nova, root)
        cfg.write_text(cfg.read_text().replace("batch_days = 1", "batch_days = 31"))
        env = {**os.environ, "LUIGI_CONFIG_PATH": str(cfg)}
        cmd = [sys.executable, "-m", "tasks.cli", "backfill", "--start", str(DAYS[0]), "--end", str(DAYS[-1])]
        run = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=240)
        assert run.returncode == 0, run.stdout + run.stderr
        with luigi_settings(simulated_settings(root, nova)):
            tasks = {tid: task for tid, task in all_tasks([DailyPipeline(date=d) for d in DAYS]).items()
                     if task.task_family in ("FetchTransactions", "LoadTransactions", "DailyCounters",
                                             "FetchUserBase", "AggregateUserBase")}
        expected = set(tasks)
        assert len(expected) == len(DAYS) * 15
        # the scheduler, and so the visualiser, holds every day's task as DONE
        assert expected <= set(server.api("task_list", status="DONE"))
        graph = server.api("graph")
        assert all(graph[tid]["status"] == "DONE" for tid in expected)
        # the history records the batch runs, each with its days as its date; luigi 3.8.1 sets
        # the status of a batch's member tasks without a history event of their own
        with sqlite3.connect(server.directory / "history.db") as db:
            done = db.execute("select t.name, p.name, p.value, t.id from task_events e join tasks t on t.id = e.task_id "
                              "join task_parameters p on p.task_id = t.id where e.event_name = 'DONE'").fetchall()
        params = collections.defaultdict(dict)
        for family, name, value, row in done:
            params[(family, row)][name] = value
        covered = {(family, p.get("kind"), day) for (family, _), p in params.items()
                   for day in p.get("date", "").partition("@")[0].split(",")}
        missing = [tid for tid, t in tasks.items()
                   if (t.task_family, getattr(t, "kind", None), str(t.date)) not in covered]
        assert missing == []
        batches = {family for (family, _), p in params.items() if "," in p.get("date", "")}
        assert {"FetchTransactions", "LoadTransactions", "DailyCounters", "AggregateUserBase"} <= batches
    finally:
        server.script("stop")


def test_a_rerun_of_the_same_batched_days_through_luigid_neither_stalls_nor_fails_them(tmp_path, nova):
    """luigid keeps the worker that last ran a task. The rerun of a batched backfill (after a
    fix, as the failure message advises) batches the same days again; if that batch were the
    same task as the first run's, luigid would hand it back to its new worker as new work over
    and over, until the first worker timed out (here set to ten minutes), then fail it with no
    message. Each process's batches are tasks of their own: the rerun runs at once."""
    server = start_luigid(tmp_path / "luigid", extra_config="[scheduler]\nstable_done_cooldown_secs = 0\n"
                                                            "worker_disconnect_delay = 600\n")
    try:
        root = tmp_path / "data"
        cfg = _cvas_cfg(tmp_path, server, nova, root)
        cfg.write_text(cfg.read_text().replace("batch_days = 1", "batch_days = 31"))
        span = ["--start", str(DAYS[0]), "--end", str(DAYS[-1])]
        first = run_cvas(cfg, "backfill", *span, timeout=240)
        assert first.returncode == 0, first.stdout + first.stderr
        inv = run_cvas(cfg, "invalidate", *span, "--dataset", "transactions", "--kind", "act", timeout=120)
        assert inv.returncode == 0, inv.stdout + inv.stderr
        # a stall lasts until the first worker times out: ten minutes, far past this timeout
        again = run_cvas(cfg, "backfill", *span, timeout=180)
        assert again.returncode == 0, again.stdout + again.stderr
        assert not server.api("task_list", status="FAILED"), "no task failed"
        loads = [tid for tid, _, event in server.events() if event == "RUNNING" and tid.startswith("LoadTransactions")
                 and "_act_" in tid]
        assert len(loads) == 2 and loads[0] != loads[1], f"two batch runs of the act loads, each its own task: {loads}"
    finally:
        server.script("stop")
