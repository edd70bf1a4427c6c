"""Small things of the command line, each through the real `cvas` in a subprocess: the plan's
summary, the default range of status and plan, a closed pipe, the missing as-of view, what
invalidate waits for, revenue over every service, and make help's word on bench."""

from __future__ import annotations

import csv
import datetime as dt
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cvas.core.layout import Layout
from tests.cli_runs import REPO, cvas_cmd, env_for, run_cvas, write_cfg

pytestmark = pytest.mark.slow   # see pyproject: make test-fast leaves it out

START, END = dt.date(2025, 10, 6), dt.date(2025, 10, 8)   # the session's simulated Nova


@pytest.fixture(scope="module")
def built(tmp_path_factory, simulated_nova):
    """A data root backfilled over the simulated Nova keeping one as-of view (the newest)."""
    home = tmp_path_factory.mktemp("small")
    cfg = write_cfg(home / "luigi.cfg", home / "data", nova=simulated_nova, subscriptions_keep_days=1)
    run = run_cvas(cfg, "backfill", "--start", str(START), "--end", str(END), timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr
    return cfg


def test_plan_summary_counts_per_dataset_what_the_plan_lists(tmp_path, simulated_nova):
    cfg = write_cfg(tmp_path / "luigi.cfg", tmp_path / "data", nova=simulated_nova)
    listed = run_cvas(cfg, "plan", "--start", str(START), "--end", str(END))
    summary = run_cvas(cfg, "plan", "--start", str(START), "--end", str(END), "--summary")
    assert listed.returncode == summary.returncode == 0, listed.stderr + summary.stderr
    steps = listed.stdout.splitlines()[:-1]
    per_dataset: dict[str, int] = {}
    for line in steps:
        name = line.split()[1].partition(":")[0]
        per_dataset[name] = per_dataset.get(name, 0) + 1
    lines = summary.stdout.splitlines()
    assert [(line.split()[0], int(line.split()[1])) for line in lines[:-1]] == list(per_dataset.items())
    assert lines[0].split()[0] == "raw" and "missing 18" in lines[0]
    assert lines[-1].startswith(f"{len(steps)} output(s) to build over 3 day(s) ({START}..{END})")


def test_status_and_plan_default_to_the_last_30_days(built):
    yesterday = dt.date.today() - dt.timedelta(days=1)
    first = yesterday - dt.timedelta(days=29)
    status = run_cvas(built, "status")
    assert status.returncode == 0, status.stderr
    days = re.findall(r"^(\d{4}-\d{2}-\d{2}) ", status.stdout, flags=re.M)
    assert days[0] == str(first) and days[-1] == str(yesterday) and len(days) == 30, status.stdout
    plan = run_cvas(built, "plan", "--summary")
    assert plan.returncode == 0, plan.stderr
    assert f"over 30 day(s) ({first}..{yesterday})" in plan.stdout.splitlines()[-1]
    ranged = run_cvas(built, "status", "--end", str(END))
    assert re.findall(r"^(\d{4}-\d{2}-\d{2}) ", ranged.stdout, flags=re.M)[0] == str(END - dt.timedelta(days=29))


def test_a_reader_that_goes_away_ends_the_command_quietly(built):
    proc = subprocess.Popen(cvas_cmd("query", "--subscription-id", "1"), cwd=REPO, env=env_for(built),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    proc.stdout.close()   # `| head` that has read what it wanted, before cvas prints
    err = proc.stderr.read()
    assert proc.wait(timeout=60) == 141, err
    assert "Traceback" not in err and "BrokenPipe" not in err and "Exception ignored" not in err, err
    piped = subprocess.run(" ".join(cvas_cmd("query", "--subscription-id", "1")) + " | head -n 1", shell=True,
                           cwd=REPO, env=env_for(built), capture_output=True, text=True, timeout=60)
    assert piped.returncode == 0 and piped.stdout.startswith("search: subscription_id = 1"), piped.stderr
    assert "Error" not in piped.stderr, piped.stderr


def test_ltv_as_of_a_pruned_day_says_once_how_to_get_that_view(built):
    day = END - dt.timedelta(days=1)   # pruned: [cvas] subscriptions_keep_days = 1 keeps the newest only
    args = ("ltv", "--service", "x", "--month", "2025-10", "--as-of", str(day))
    run = run_cvas(built, *args)
    assert run.returncode == 1, run.stdout + run.stderr
    advice = (f"views are kept 1 day(s) back from the newest ({END}); set [cvas] subscriptions_keep_days = 2 "
              f"in luigi.cfg, then run `luigi --module tasks SubscriptionView --date {day}`")
    assert run.stderr.splitlines()[1:] == [f"cvas ltv: error: there is no subscription view as of {day} "
                                           f"({Layout(built.parent / 'data').subscriptions(day)}): {advice}"]
    later = run_cvas(built, "ltv", "--service", "x", "--month", "2025-10", "--as-of", str(END + dt.timedelta(days=3)))
    assert later.stderr.count("no subscription view") == 1 and "build the day first (`cvas daily --date" in later.stderr
    # the advice, followed, works
    cfg = built.parent / "keep2.cfg"
    cfg.write_text(built.read_text().replace("subscriptions_keep_days = 1", "subscriptions_keep_days = 2"))
    command = advice.split("`")[1].split()
    luigi = subprocess.run([str(Path(sys.executable).parent / command[0]), *command[1:]], cwd=built.parent, env=env_for(cfg), capture_output=True,
                           text=True, timeout=300)
    assert luigi.returncode == 0, luigi.stderr[-2000:]
    from cvas.steps.master import read_master_csv

    service = read_master_csv(Layout(built.parent / "data").master_cpc)["service_name"][0].as_py().strip()
    ok = run_cvas(cfg, "ltv", "--service", service, "--month", "2025-10", "--as-of", str(day))
    assert ok.returncode == 0 and f"subscription view: {Layout(built.parent / 'data').subscriptions(day)}" in ok.stderr


def test_invalidate_says_what_it_waits_for(tmp_path, simulated_nova):
    cfg = write_cfg(tmp_path / "luigi.cfg", tmp_path / "data", nova=simulated_nova, scheduler="central",
                    extra="[scheduler]\nstable_done_cooldown_secs = 1\n")
    raw = Layout(tmp_path / "data").raw("act", START)
    raw.parent.mkdir(parents=True)
    raw.write_text("a landing copy\n")
    t0 = time.monotonic()
    run = run_cvas(cfg, "invalidate", "--start", str(START), "--end", str(START), "--dataset", "raw", "--kind", "act")
    assert run.returncode == 0, run.stdout + run.stderr
    assert time.monotonic() - t0 >= 1.5
    assert run.stdout.startswith("marked 1 output(s) for rebuild")
    assert ("waiting 1.5s for luigid's DONE cooldown ([scheduler] stable_done_cooldown_secs = 1): luigid ignores a "
            "rerun of a task that went DONE less than that ago") in run.stderr.splitlines()


def test_revenue_without_service_covers_every_service(built, tmp_path):
    out = tmp_path / "revenue.csv"
    run = run_cvas(built, "revenue", "--month", "2025-10", "--csv", str(out))
    assert run.returncode == 0, run.stderr
    export = Layout(built.parent / "data").counters_service
    sums: dict[str, float] = {}
    with open(export, newline="") as fh:
        for row in csv.DictReader(fh):
            if row["date"].startswith("2025-10"):
                name = row["service_name"].strip()
                sums[name] = sums.get(name, 0.0) + float(row["rev"])
    rows = list(csv.reader(open(out, newline="")))
    assert rows[0] == ["service", "2025-10", "TOTAL"]
    assert [r[0] for r in rows[1:]] == sorted(sums) and len(sums) > 3
    assert [float(r[2]) for r in rows[1:]] == pytest.approx([sums[n] for n in sorted(sums)], abs=0.006)


def test_make_help_says_bench_runs_about_25_minutes():
    run = subprocess.run(["make", "-s", "help"], cwd=REPO, capture_output=True, text=True, timeout=30)
    (bench,) = [line for line in run.stdout.splitlines() if line.split()[1] == "bench"]
    assert "about 25 minutes" in bench
