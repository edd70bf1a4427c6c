"""The day-is-over rule lives in the tasks: the luigi CLI refuses today and later days as `cvas daily` does."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys

import pytest

from tests.cli_runs import REPO, dataset_files, env_for, run_cvas, write_cfg

pytestmark = pytest.mark.slow   # see pyproject: make test-fast leaves it out


def _luigi(cfg, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "luigi", *args, "--local-scheduler"], cwd=REPO, env=env_for(cfg),
                          capture_output=True, text=True, timeout=180)


@pytest.fixture
def cfg(tmp_path, simulated_nova):
    return write_cfg(tmp_path / "luigi.cfg", tmp_path / "data", nova=simulated_nova)


@pytest.mark.parametrize("task", [("tasks.pipeline", "DailyPipeline"), ("tasks.steps.transactions", "LoadTransactions",
                                                                        "--kind", "act"),
                                  ("tasks.steps.counters", "ExportCounters")])
@pytest.mark.parametrize("days_ahead", [0, 1])
def test_the_luigi_cli_builds_nothing_for_a_day_that_is_not_over(cfg, tmp_path, task, days_ahead):
    day = dt.date.today() + dt.timedelta(days=days_ahead)
    module, family, *more = task
    run = _luigi(cfg, "--module", module, family, "--date", f"{day}", *more)
    assert run.returncode == 35, run.stdout + run.stderr      # [retcode] scheduling_error
    out = run.stdout + run.stderr
    assert f"DayNotOverError: {day} reaches past yesterday ({dt.date.today() - dt.timedelta(days=1)}): a day can be " \
           "built once it is over" in out, out
    assert "failed scheduling" in out
    assert dataset_files(tmp_path / "data") == []            # nothing fetched, loaded or exported


def test_a_luigi_backfill_reaching_today_builds_nothing(cfg, tmp_path, simulated_nova):
    run = _luigi(cfg, "--module", "tasks.pipeline", "Backfill", "--start", f"{simulated_nova.start}",
                 "--end", f"{dt.date.today()}")
    assert run.returncode == 35 and "DayNotOverError" in run.stdout + run.stderr, run.stdout + run.stderr
    assert dataset_files(tmp_path / "data") == []


def test_a_past_day_still_builds_through_the_luigi_cli_and_cvas_daily_refuses_today_as_before(cfg, tmp_path,
                                                                                            simulated_nova):
    day = simulated_nova.start
    run = _luigi(cfg, "--module", "tasks.pipeline", "DailyPipeline", "--date", f"{day}")
    assert run.returncode == 0, run.stdout + run.stderr
    assert (tmp_path / "data" / "Counters" / "Counters_Service.csv").exists()
    today = run_cvas(cfg, "daily", "--date", f"{dt.date.today()}")
    assert today.returncode == 6 and "a day can be built once it is over" in today.stderr, today.stderr
