"""The configuration: one file found by one rule from any directory, named by every command, and
every section and key in it checked against what cvas declares (a misspelling is an error)."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
from pathlib import Path

import pytest

from cvas.ops.preflight import BAD_CONFIG
from tests.cli_runs import REPO, cvas_cmd, write_cfg

pytestmark = pytest.mark.slow   # see pyproject: make test-fast leaves it out

DAY = dt.date(2025, 10, 7)   # inside the session's simulated Nova (2025-10-06..08)
LUIGI = Path(sys.executable).parent / "luigi"

# every cvas command, with arguments that parse
COMMANDS = {
    "simulate": ["--start", str(DAY)], "daily": ["--date", str(DAY)],
    "backfill": ["--start", str(DAY), "--end", str(DAY)], "demo": [],
    "status": ["--start", str(DAY), "--end", str(DAY)], "plan": ["--start", str(DAY), "--end", str(DAY)],
    "invalidate": ["--start", str(DAY), "--end", str(DAY)], "verify": ["--start", str(DAY), "--end", str(DAY)],
    "adopt": ["legacy"], "summary": [], "query": ["--subscription-id", "1"], "report": ["--date", str(DAY)],
    "revenue": ["--month", "2025-10"], "refunds": ["--month", "2025-10"],
    "ltv": ["--service", "Abaco", "--month", "2025-10"], "check-userbase": ["--date", str(DAY)],
}


def _env(**extra: str) -> dict[str, str]:
    """The environment without LUIGI_CONFIG_PATH (the Makefile exports it), plus `extra`."""
    env = {k: v for k, v in os.environ.items() if k != "LUIGI_CONFIG_PATH"}
    return {**env, **extra}


def _run(cmd: list[str], cwd: Path, **extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, cwd=cwd, env=_env(**extra), capture_output=True, text=True, timeout=180)


def test_every_command_is_covered():
    from tasks.cli import build_parser

    from tests.tasks.test_cli_ux import _subparsers

    assert set(_subparsers(build_parser())) == set(COMMANDS)


@pytest.mark.parametrize("text, needle", [
    ("[cvsa]\ndata_root = data\n", "line 3: unknown section [cvsa]; did you mean 'cvas'?"),
    ("[cvas]\nsource = simulated\ndata_rot = elsewhere\n",
     "line 5: unknown key 'data_rot' in [cvas]; did you mean 'data_root'?"),
    ("[retcod]\ntask_failed = 30\n", "unknown section [retcod]; did you mean 'retcode'?"),
    ("[simulated_source]\ndatabse = x.duckdb\n", "unknown key 'databse' in [simulated_source]; did you mean 'database'?"),
    ("[cvas]\nzzz = 1\n", "unknown key 'zzz' in [cvas] ([cvas] has batch_days, data_root,"),
])
def test_an_unknown_section_or_key_is_one_line_and_exit_3_for_every_command(tmp_path, text, needle):
    cfg = tmp_path / "luigi.cfg"
    cfg.write_text("[core]\nautoload_range = false\n" + text)
    commands = COMMANDS if "cvsa" in text else {"summary": []}   # every command once, the other mistakes once
    for command, args in commands.items():
        run = _run(cvas_cmd(command, *args), tmp_path, LUIGI_CONFIG_PATH=str(cfg))
        assert run.returncode == BAD_CONFIG, (command, run.stdout, run.stderr)
        assert run.stderr.startswith(f"cvas {command}: error: {cfg}, line "), run.stderr
        assert needle in run.stderr and len(run.stderr.splitlines()) == 1, run.stderr
        assert run.stdout == ""
    assert sorted(p.name for p in tmp_path.iterdir()) == ["luigi.cfg"], "nothing is created anywhere"


def test_what_luigi_itself_reads_and_the_task_sections_are_declared(tmp_path):
    from tasks.preflight import check_names

    cfg = tmp_path / "luigi.cfg"
    cfg.write_text("[core]\nanything_luigi_reads = 1\n[worker]\nkeep_alive = true\n[logging]\nversion = 1\n"
                   "[email]\nreceiver = a@b\n[task_history]\ndb_connection = sqlite://\n"
                   "[ssh_source]\nhost = nova\nkey-file = ~/.ssh/id\n[DailyCounters]\ndate = 2025-10-07\n"
                   "[cvas]\n# data_rot = a comment\ndata_root = data\nexcluded_services = a,\n  b\n")
    check_names(cfg)   # no error
    cfg.write_text("[DailyCounters]\ndte = 2025-10-07\n")
    with pytest.raises(ValueError, match=r"unknown key 'dte' in \[DailyCounters\]; did you mean 'date'\?"):
        check_names(cfg)


def test_a_file_luigi_cannot_parse_or_a_missing_one_is_one_line_and_exit_3(tmp_path):
    broken = tmp_path / "broken.cfg"
    broken.write_text("[cvas]\ndata_root = a\ndata_root = b\n")
    run = _run(cvas_cmd("summary"), tmp_path, LUIGI_CONFIG_PATH=str(broken))
    assert run.returncode == BAD_CONFIG and len(run.stderr.splitlines()) == 1, run.stderr
    assert "option 'data_root' in section 'cvas' already exists" in run.stderr and "broken.cfg" in run.stderr
    run = _run(cvas_cmd("status", "--start", str(DAY), "--end", str(DAY)), tmp_path,
               LUIGI_CONFIG_PATH=str(tmp_path / "none.cfg"))
    assert run.returncode == BAD_CONFIG, run.stderr
    assert run.stderr == f"cvas status: error: LUIGI_CONFIG_PATH names {tmp_path / 'none.cfg'}, which is not a file\n"


def test_the_rule_environment_then_working_directory_then_checkout(tmp_path, monkeypatch):
    from tasks.config import CHECKOUT_CONFIG, ConfigError, find_config

    named, here = tmp_path / "named.cfg", tmp_path / "luigi.cfg"
    named.write_text("[cvas]\n")
    here.write_text("[cvas]\n")
    monkeypatch.setenv("LUIGI_CONFIG_PATH", str(named))
    assert find_config(tmp_path) == named
    monkeypatch.delenv("LUIGI_CONFIG_PATH")
    assert find_config(tmp_path) == here
    here.unlink()
    assert find_config(tmp_path) == CHECKOUT_CONFIG == REPO / "luigi.cfg"
    with pytest.raises(ConfigError) as caught:
        find_config(tmp_path, checkout=tmp_path / "site-packages" / "luigi.cfg")
    assert str(caught.value) == (f"no configuration found: LUIGI_CONFIG_PATH is not set and neither {here} nor "
                                 f"{tmp_path / 'site-packages' / 'luigi.cfg'} exists")


def test_commands_name_the_file_they_read_and_write_beside_it_not_in_the_working_directory(tmp_path,
                                                                                          simulated_nova):
    home, work = tmp_path / "home", tmp_path / "work"
    home.mkdir()
    work.mkdir()
    cfg = home / "luigi.cfg"
    cfg.write_text("[core]\nautoload_range = false\n[cvas]\ndata_root = data\nlog_dir = logs\nuser_base = false\n"
                   "[simulated_source]\ndatabase = nova/nova.duckdb\n")
    # LUIGI_CONFIG_PATH relative to the working directory; paths in the file relative to the file
    run = _run(cvas_cmd("simulate", "--start", str(DAY), "--days", "1", "--new-per-day", "5"), work,
               LUIGI_CONFIG_PATH="../home/luigi.cfg")
    assert run.returncode == 0, run.stdout + run.stderr
    assert run.stderr.splitlines()[0] == f"configuration: {cfg}"
    assert (home / "nova" / "nova.duckdb").is_file() and list((home / "logs").glob("*-simulate-*.log"))
    log = next((home / "logs").glob("*-simulate-*.log")).read_text()
    assert f"configuration {cfg}" in log
    assert list(work.iterdir()) == [], "nothing is created in the working directory"
    # ./luigi.cfg when LUIGI_CONFIG_PATH is not set
    status = _run(cvas_cmd("status", "--start", str(DAY), "--end", str(DAY)), home)
    assert status.returncode == 0 and status.stderr == f"configuration: {cfg}\n", status.stderr
    summary = _run(cvas_cmd("summary"), home)
    assert summary.returncode == 0 and summary.stdout.splitlines()[0] == f"configuration: {cfg}", summary.stdout
    assert summary.stderr == ""   # said once, in the summary


def test_the_luigi_command_checks_the_configuration_as_cvas_does(tmp_path):
    cfg = write_cfg(tmp_path / "luigi.cfg", tmp_path / "data", extra="[cvsa]\nworkers = 2\n")
    cmd = [str(LUIGI), "--module", "tasks.pipeline", "Backfill", "--start", str(DAY), "--end", str(DAY)]
    run = _run(cmd, tmp_path, LUIGI_CONFIG_PATH=str(cfg))
    assert run.returncode == BAD_CONFIG, run.stdout + run.stderr
    assert run.stderr == f"luigi: error: {cfg}, line {len(cfg.read_text().splitlines()) - 1}: unknown section " \
                         "[cvsa]; did you mean 'cvas'?\n"
    assert not (tmp_path / "data").exists()
