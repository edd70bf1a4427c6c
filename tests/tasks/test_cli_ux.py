"""What a person sees from `cvas`: failure summaries, preflight errors and their exit codes,
paths taken from the configuration's folder, --version, -v anywhere, help on every option."""

from __future__ import annotations

import argparse
import datetime as dt
import re
import socket
import subprocess
from dataclasses import replace
from pathlib import Path

import pytest

from cvas.core.layout import Layout
from cvas.ops import preflight as pf
from tests.cli_runs import REPO, copy_nova, cvas_cmd, env_for, run_cvas, write_cfg

pytestmark = pytest.mark.slow   # see pyproject: make test-fast leaves it out

DAY = dt.date(2025, 10, 7)   # inside the session's simulated Nova (2025-10-06..08)


@pytest.fixture
def cfg(tmp_path, simulated_nova):
    return write_cfg(tmp_path / "luigi.cfg", tmp_path / "data", nova=simulated_nova, user_base="false")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_daily_prints_one_line_then_already_built(cfg):
    first = run_cvas(cfg, "daily", "--date", str(DAY))
    assert first.returncode == 0, first.stdout + first.stderr
    lines = first.stdout.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"{DAY}: built ") and "LoadTransactions x6" in lines[0]
    assert re.search(r"\(\d+\.\d+s\)$", lines[0])
    again = run_cvas(cfg, "daily", "--date", str(DAY))
    assert again.returncode == 0 and again.stdout.splitlines() == [again.stdout.strip()]
    assert again.stdout.startswith(f"{DAY}: already built")


def test_a_failed_build_ends_with_one_line_per_failed_task_and_no_traceback(tmp_path):
    from tests.golden_scenario import DAY as GOLDEN_DAY, write_golden_directory_cfg

    drops, cfg = write_golden_directory_cfg(tmp_path)
    drop = drops / "Daily_Data" / f"{GOLDEN_DAY}" / "act_atlas_day.csv"
    good = drop.read_text()
    drop.write_text(good.replace(f"{GOLDEN_DAY}", "2026-02-09"))   # the previous day's extract: the load fails on it
    run = run_cvas(cfg, "daily", "--date", str(GOLDEN_DAY))
    assert run.returncode == 30, run.stdout + run.stderr
    err = run.stderr
    assert "Traceback" not in err and "luigi-interface" not in err
    summary = err[err.index(f"cvas daily failed: 1 task(s) failed"):].splitlines()
    assert re.match(rf"  LoadTransactions +{GOLDEN_DAY} act +RejectRatioExceeded: .*4 of 4 rows rejected", summary[1])
    log_file = Path(summary[2].removeprefix("log (with tracebacks): "))
    assert log_file.is_file() and "Traceback (most recent call last)" in log_file.read_text()
    assert summary[3].startswith("next: ") and f"cvas daily --date {GOLDEN_DAY}" in summary[3]
    assert len(err.splitlines()) < 12, err
    # the failure is remembered per output until a build of it succeeds
    failed = run_cvas(cfg, "status", "--start", str(GOLDEN_DAY), "--end", str(GOLDEN_DAY), "--failed")
    assert failed.returncode == 0, failed.stderr
    assert re.fullmatch(rf"{GOLDEN_DAY}  LoadTransactions act +\S+  RejectRatioExceeded: .*4 of 4 rows rejected.*\n",
                        failed.stdout)
    # -v (after the command) shows the tracebacks as before
    verbose = run_cvas(cfg, "daily", "--date", str(GOLDEN_DAY), "-v")
    assert verbose.returncode == 30 and "Traceback (most recent call last)" in verbose.stderr
    drop.write_text(good)  # the source fixed: the next build fetches a good copy, and the record goes
    assert run_cvas(cfg, "daily", "--date", str(GOLDEN_DAY)).returncode == 0
    cleared = run_cvas(cfg, "status", "--start", str(GOLDEN_DAY), "--end", str(GOLDEN_DAY), "--failed")
    assert cleared.stdout == "no failed build in the range\n"


@pytest.mark.parametrize("command", ["plan", "status", "invalidate", "backfill", "verify"])
def test_start_after_end_is_refused(cfg, command):
    run = run_cvas(cfg, command, "--start", "2025-10-08", "--end", "2025-10-06")
    assert run.returncode == pf.REVERSED_RANGE, run.stdout + run.stderr
    assert run.stderr.strip() == (f"cvas {command}: error: --start 2025-10-08 is after --end 2025-10-06: "
                                  "give the earlier day first")
    assert run.stdout == ""


def _one_line_error(run, code: int, *needles: str) -> None:
    assert run.returncode == code, run.stdout + run.stderr
    assert len(run.stderr.strip().splitlines()) == 1, run.stderr
    for needle in needles:
        assert needle in run.stderr, run.stderr


def test_preflight_errors(tmp_path, simulated_nova):
    def cfg(name, data_root=None, nova=simulated_nova, **options):
        folder = tmp_path / name
        folder.mkdir()
        return write_cfg(folder / "luigi.cfg", data_root or folder / "data", nova=nova, **options)

    _one_line_error(run_cvas(cfg("typo", source="simualted"), "daily", "--date", str(DAY)), pf.BAD_CONFIG,
                    "[cvas] source: simualted is not a valid choice")
    _one_line_error(run_cvas(cfg("memory", duckdb_memory_limit="lots"), "daily", "--date", str(DAY)), pf.BAD_CONFIG,
                    "[cvas] duckdb_memory_limit", "'lots' is not a size")
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    _one_line_error(run_cvas(cfg("ro", data_root=blocker / "data"), "daily", "--date", str(DAY)),
                    pf.NOT_WRITABLE, "[cvas] data_root")
    _one_line_error(run_cvas(cfg("nomaster", nova=replace(simulated_nova, master_xlsx=tmp_path / "none.xlsx")), "daily", "--date", str(DAY)),
                    pf.MISSING_REFERENCE, "the CPC master", "none.xlsx",
                    f"(set [cvas] master_xlsx in {tmp_path / 'nomaster' / 'luigi.cfg'}, or run `cvas simulate --start")
    _one_line_error(run_cvas(cfg("noexcl", nova=replace(simulated_nova, exclusions=tmp_path / "none.csv")), "backfill", "--start", str(DAY),
                             "--end", str(DAY)), pf.MISSING_REFERENCE, "the exclusion list")
    future = dt.date.today()
    _one_line_error(run_cvas(cfg("future"), "daily", "--date", str(future)), pf.DAY_UNAVAILABLE,
                    "reaches past yesterday")
    _one_line_error(run_cvas(cfg("outside"), "backfill", "--start", "2025-10-01", "--end", "2025-10-08"),
                    pf.DAY_UNAVAILABLE, "the simulated source holds 2025-10-06..2025-10-08")
    port = _free_port()
    central = cfg("central", scheduler="central", core={"scheduler_host": "127.0.0.1", "scheduler_port": port})
    _one_line_error(run_cvas(central, "daily", "--date", str(DAY), timeout=30), pf.NO_SCHEDULER,
                    f"no luigid at 127.0.0.1:{port}", "make luigid")
    for name in ("typo", "nomaster", "future", "outside", "central"):
        assert not (tmp_path / name / "data").exists(), f"{name}: nothing is written before the checks pass"


def test_paths_are_relative_to_the_configuration_file(tmp_path, simulated_nova):
    home = tmp_path / "project"
    copy_nova(simulated_nova, home / "nova")
    cfg = home / "luigi.cfg"
    cfg.write_text(f"[core]\nautoload_range = false\n[cvas]\ndata_root = data\nlog_dir = var/log\nworkers = 1\n"
                   f"user_base = false\nmaster_xlsx = nova/{Path(simulated_nova.master_xlsx).name}\n"
                   f"exclusions = nova/{Path(simulated_nova.exclusions).name}\n"
                   f"[simulated_source]\ndatabase = nova/{Path(simulated_nova.database).name}\n")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    run = subprocess.run(cvas_cmd("daily", "--date", str(DAY)), cwd=elsewhere, env=env_for(cfg),
                         capture_output=True, text=True, timeout=180)
    assert run.returncode == 0, run.stdout + run.stderr
    assert list(elsewhere.iterdir()) == [], "nothing is created in the working directory"
    assert Layout(home / "data").daily_counters(DAY).is_file()
    assert list((home / "var" / "log").glob("*-daily-*.log"))
    summary = subprocess.run(cvas_cmd("summary"), cwd=elsewhere, env=env_for(cfg), capture_output=True, text=True,
                             timeout=60)
    assert summary.returncode == 0 and str(home / "data") in summary.stdout, summary.stdout
    assert f"days built: 1 ({DAY} .. {DAY})" in summary.stdout, summary.stdout


def test_version_and_verbose_after_the_command():
    version = subprocess.run(cvas_cmd("--version"), cwd=REPO, capture_output=True, text=True)
    assert version.returncode == 0 and re.fullmatch(r"cvas \d+\.\d+\.\d+\n", version.stdout)
    from tasks.cli import build_parser

    parser = build_parser()
    assert parser.parse_args(["status", "--start", "2025-10-06", "--end", "2025-10-06", "-v"]).verbose is True
    assert parser.parse_args(["-v", "summary"]).verbose is True
    assert parser.parse_args(["summary"]).verbose is False


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


def test_every_option_has_help_and_the_readme_lists_every_command_and_option():
    from tasks.cli import build_parser

    readme = (REPO / "README.md").read_text()
    readme += (REPO / "docs" / "analysis.md").read_text()   # the analysis tools' options, linked from the README
    parser = build_parser()
    for name, sub in _subparsers(parser).items():
        assert f"cvas {name}" in readme, f"README lacks `cvas {name}`"
        for action in sub._actions:
            if isinstance(action, argparse._HelpAction):
                continue
            assert action.help and action.help != argparse.SUPPRESS, f"{name} {action.option_strings or action.dest}"
            for option in action.option_strings:
                if option.startswith("--") and option != "--verbose":
                    assert option in readme, f"README lacks {name} {option}"
    assert "Backfill" in readme and "RangeDaily" in readme


def test_make_help_lists_every_target():
    run = subprocess.run(["make", "-s", "help"], cwd=REPO, capture_output=True, text=True, timeout=30)
    assert run.returncode == 0, run.stderr
    listed = {line.split()[1] for line in run.stdout.splitlines()}
    makefile = (REPO / "Makefile").read_text()
    targets = set(re.findall(r"^([a-z][a-z-]*):", makefile, flags=re.M))
    assert targets and targets == listed, (targets, listed)


def test_backfill_progress_reports_each_day_as_its_counters_are_published(layout):
    import time

    from tasks.progress import watch_days

    days = [DAY + dt.timedelta(days=i) for i in range(3)]
    lines: list[str] = []
    t0 = time.monotonic()
    layout.daily_counters_root.mkdir(parents=True)
    with watch_days(layout, days, before=2, total=5, t0=t0, progress=lines.append, interval=0.02):
        for day in days:  # what a batch does, one day after another
            layout.daily_counters(day).write_bytes(b"PAR1")
            deadline = time.monotonic() + 5
            while len(lines) < days.index(day) + 1 and time.monotonic() < deadline:
                time.sleep(0.01)
    assert [line.split(" days built")[0].strip() for line in lines] == ["3/5", "4/5", "5/5"]
    assert f"(latest {days[-1]})" in lines[-1]


def test_a_failed_fetch_is_failed_in_the_status_grid_not_missing(luigi_config, simulated_nova, tmp_path):
    from cvas.ops.status import FAILED, MISSING, format_grid, grid, plan
    from tasks.pipeline import run_daily

    for section, key, value in (("cvas", "source", "simulated"), ("simulated_source", "database", simulated_nova.database),
                                ("cvas", "master_xlsx", simulated_nova.master_xlsx),
                                ("cvas", "exclusions", simulated_nova.exclusions), ("cvas", "workers", 1),
                                ("cvas", "user_base", "false")):
        luigi_config(section, key, value)
    lacking = dt.date(2025, 10, 20)   # after the simulated range: every fetch fails
    assert run_daily(lacking) != 0
    lay = Layout(tmp_path / "data")
    cells = grid(lay, lacking, lacking, simulated_nova.exclusions,
                 [("raw", "act"), ("transactions", "act"), ("daily_counters", None)])[lacking]
    assert cells["raw:act"].state == FAILED
    assert re.match(r"last build failed \(FetchTransactions, [\d\-T:]+\): SourceError: .*outside the simulated range",
                    cells["raw:act"].reason)
    assert cells["transactions:act"].state == MISSING   # never attempted: its fetch failed
    assert ("raw:act", f"failed ({cells['raw:act'].reason}); retried") in [(lab, why) for _, lab, why in plan(
        {lacking: cells})]
    text = format_grid({lacking: cells})
    assert text.splitlines()[0].split() == ["raw", "transactions", "daily"]
    assert text.splitlines()[1].split() == ["act", "act", "counters"]
    assert text.splitlines()[2].split() == [str(lacking), "F", ".", "."]



def _master_cpcs(path: Path) -> list[int]:
    from openpyxl import load_workbook

    wb = load_workbook(path, read_only=True)
    cpcs = [row[0] for row in wb.worksheets[0].iter_rows(min_row=2, values_only=True)]
    wb.close()
    return cpcs


def test_the_demo_master_warns_of_no_duplicate_cpc(tmp_path):
    """`cvas demo` and `cvas simulate` (the benchmark's simulate() too) write a master with each
    CPC once, so a first run warns of nothing; the legacy workbook's duplicate lives in the
    tests' fixture (conftest.add_duplicated_master_row)."""
    from cvas.simulator.simulate import CATALOGUE

    in_master = len({e.cpc for e in CATALOGUE if e.in_master})
    data, logs, nova = tmp_path / "data", tmp_path / "logs", tmp_path / "nova"
    cfg = write_cfg(tmp_path / "luigi.cfg", data, log_dir=logs,
                    extra=f"[simulated_source]\ndatabase = {nova}/nova.duckdb\n",
                    master_xlsx=f"{nova}/Master_CPCs.xlsx", exclusions=f"{nova}/Users_No_Limits.csv")
    demo = run_cvas(cfg, "demo", "--days", "2", "--new-per-day", "5", "-v")
    assert demo.returncode == 0, demo.stdout + demo.stderr
    assert f"Master_CPCs.xlsx: {in_master} CPC mappings" in demo.stderr, "the master was read, -v on the console"
    (log_file,) = logs.glob("*-demo-*.log")
    for text in (demo.stdout, demo.stderr, log_file.read_text(encoding="utf-8")):
        assert "duplicate CPC" not in text
    cpcs = _master_cpcs(nova / "Master_CPCs.xlsx")
    assert len(cpcs) == len(set(cpcs)) == in_master

    out = tmp_path / "simulated"
    sim = run_cvas(cfg, "simulate", "--start", str(DAY), "--days", "1", "--new-per-day", "5", "--out", str(out))
    assert sim.returncode == 0, sim.stdout + sim.stderr
    cpcs = _master_cpcs(out / "Master_CPCs.xlsx")
    assert len(cpcs) == len(set(cpcs)) == in_master


def test_the_readme_luigi_backfill_line_builds_what_cvas_backfill_builds(tmp_path, simulated_nova):
    """`luigi --module tasks.pipeline Backfill --start A --end B`, pasted as the README has it (no
    --local-scheduler: [cvas] scheduler = local), from another folder: per-day outputs and then
    every product of the catalogue, all fresh afterwards."""
    import sys

    from cvas.core.catalogue import Settings, products
    from cvas.ops.status import outputs_as_of
    from tasks.config import excluded_services

    start, end = DAY - dt.timedelta(days=1), DAY + dt.timedelta(days=1)
    root = tmp_path / "data"
    cfg = write_cfg(tmp_path / "luigi.cfg", root, nova=simulated_nova)
    line = next(line for line in (REPO / "README.md").read_text().splitlines()
                if "luigi --module tasks.pipeline Backfill" in line)
    pasted = re.search(r"`(luigi --module tasks\.pipeline Backfill[^`]*)`", line)[1]
    args = pasted.replace("--start A", f"--start {start}").replace("--end B", f"--end {end}").split()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    run = subprocess.run([str(Path(sys.executable).parent / args[0]), *args[1:]], cwd=elsewhere, env=env_for(cfg),
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr[-3000:]
    assert list(elsewhere.iterdir()) == []
    lay = Layout(root)
    for path in (lay.counters_cpc, lay.counters_service, lay.subscriptions(end), lay.subscriptions_latest,
                 lay.report(end), *(lay.user_base_export(by) for by in ("service", "category", "cpc"))):
        assert path.exists(), path
    plan = run_cvas(cfg, "plan", "--start", str(start), "--end", str(end))
    assert plan.returncode == 0 and plan.stdout == "nothing to build: every output in the range is present and fresh\n"
    status = run_cvas(cfg, "status", "--start", str(start), "--end", str(end), "--json")
    assert status.returncode == 0 and '"missing"' not in status.stdout and '"stale"' not in status.stdout
    cells = outputs_as_of(lay, end, Settings(exclusions=Path(simulated_nova.exclusions),
                                             master_xlsx=Path(simulated_nova.master_xlsx),
                                             excluded_services=excluded_services()))
    assert set(products()) <= set(cells) and all(c.fresh for c in cells.values()), cells
