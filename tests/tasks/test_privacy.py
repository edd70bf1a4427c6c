"""No msisdn or tmuserid of the data in logs, task messages or error texts (principle P8).

A `cvas demo` at small scale (3 days, 50 new subscriptions a day) through a real luigid,
then bad input that takes the error paths (a rejected row carrying real identifiers, a
header holding a real msisdn, an exclusion list with a bad tmuserid), then `verify`,
`status` and `plan`. Every identifier of the simulated Nova is collected from its DuckDB
tables and searched for in: the stdout and stderr of every command, every run log, luigid's
task status messages and error texts (its API), and everything luigid wrote (logs, history).
`cvas query` prints personal data on purpose (a terminal tool, never logged) and is not run.
"""

from __future__ import annotations

import pytest

import csv
import datetime as dt
import io
import json
import re
from pathlib import Path

import duckdb

from tests.cli_runs import RETCODES, run_cvas
from tests.tasks.test_luigid import start_luigid

pytestmark = pytest.mark.slow   # see pyproject: make test-fast leaves it out

DAYS = 3
_DIGIT_RUNS = re.compile(r"[0-9]{9,}")


def identifiers(database: Path, exclusions: Path) -> set[str]:
    """Every msisdn and tmuserid of the simulated Nova, and each msisdn without its 34 prefix."""
    con = duckdb.connect(str(database), read_only=True)
    try:
        queries = [
            "select msisdn from telefonicaes_sub_mgr_fact",                                  # tmuserid
            r"select regexp_extract(generic_act_info, 'chrg_refid=([0-9]+)', 1) from telefonicaes_sub_mgr_fact",
            "select msisdn from delaydcttlog_v1_0_0_fact",                                   # CNR tmuserid
            "select msisdn from refund_v1_0_0_fact",                                         # RFND tmuserid
            "select tmuserid from sim_subscription", "select msisdn from sim_subscription",
        ]
        ids = {str(v) for q in queries for (v,) in con.execute(q).fetchall() if v}
    finally:
        con.close()
    with open(exclusions, newline="") as fh:
        ids |= {v for row in csv.reader(fh) for v in row if v.isdigit()}
    ids |= {v[2:] for v in ids if v.startswith("34") and len(v) == 11}
    return ids


def leaks(text: str, ids: set[str]) -> set[str]:
    return {run for run in _DIGIT_RUNS.findall(text) if run in ids}


def _rows(path: Path) -> list[list[str]]:
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.reader(fh))


def _write_rows(path: Path, rows: list[list[str]]) -> None:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows(rows)
    path.write_text(buf.getvalue(), encoding="utf-8")


def test_no_personal_data_in_logs_task_messages_or_errors(tmp_path):
    server = start_luigid(tmp_path / "luigid", extra_config="[scheduler]\nstable_done_cooldown_secs = 0\n")
    try:
        nova, data, logs = tmp_path / "nova", tmp_path / "data", tmp_path / "logs"
        cfg = tmp_path / "luigi.cfg"
        cfg.write_text(f"""[core]
autoload_range = false
scheduler_host = 127.0.0.1
scheduler_port = {server.port}
{RETCODES}
[scheduler]
stable_done_cooldown_secs = 0
[cvas]
data_root = {data}
source = simulated
master_xlsx = {nova}/Master_CPCs.xlsx
exclusions = {nova}/Users_No_Limits.csv
scheduler = central
workers = 2
log_dir = {logs}
[simulated_source]
database = {nova}/nova.duckdb
""")
        runs = [run_cvas(cfg, "demo", "--days", f"{DAYS}", "--new-per-day", "50")]
        assert runs[0].returncode == 0, runs[0].stdout + runs[0].stderr
        ids = identifiers(nova / "nova.duckdb", nova / "Users_No_Limits.csv")
        end = dt.date.today() - dt.timedelta(days=1)
        d1, d2, d3 = (end - dt.timedelta(days=DAYS - 1 - i) for i in range(DAYS))
        rng = ("--start", f"{d1}", "--end", f"{end}")

        # the error paths, fed with real identifiers
        act = data / "raw" / "act" / f"{d2}.csv"
        rows = _rows(act)
        assert leaks(act.read_text(), ids), "the scan recognises the data's identifiers"
        bad = [row[:2] + ["not-a-cpc"] + row[3:] for row in rows[1:][: len(rows) // 99 + 1]]
        _write_rows(act, rows + bad)                                     # over the 1% reject limit
        reno = data / "raw" / "reno" / f"{d3}.csv"
        rows = _rows(reno)
        rows[0][2] = rows[1][1]                                          # a header cell holding an msisdn
        _write_rows(reno, rows)
        with open(nova / "Users_No_Limits.csv", "a") as fh:
            fh.write(f"{rows[1][1]},{rows[1][0]}x\n")                    # a bad tmuserid beside a real msisdn
        runs.append(run_cvas(cfg, "invalidate", *rng, "--dataset", "transactions", "--kind", "act", "--kind", "reno"))
        runs.append(run_cvas(cfg, "backfill", *rng))
        assert runs[-1].returncode == 30, runs[-1].stdout + runs[-1].stderr
        for command in (("verify", *rng, "--no-repair"), ("status", *rng), ("plan", *rng), ("summary",)):
            runs.append(run_cvas(cfg, *command))

        # a positive control: the terminal tool that prints personal data on purpose is caught
        shown = run_cvas(cfg, "query", "--tmuserid", rows[1][0])
        assert shown.returncode == 0 and leaks(shown.stdout, ids), shown.stdout + shown.stderr

        texts = {f"{' '.join(r.args[3:5])} #{i} {stream}": getattr(r, stream)
                 for i, r in enumerate(runs) for stream in ("stdout", "stderr")}
        log_files = sorted(logs.glob("*.log"))
        assert len(log_files) >= 3
        texts |= {f"log {p.name}": p.read_text(encoding="utf-8", errors="replace") for p in log_files}
        all_logs = "".join(p.read_text(encoding="utf-8", errors="replace") for p in log_files)
        for expected in ("RejectRatioExceeded", "ExtractFormatError", "ExclusionListError"):
            assert expected in all_logs, f"the error path of {expected} was taken"

        # luigid: every task's status message, every failure's error text
        messages = {}
        for status in ("DONE", "FAILED", "PENDING", "RUNNING", "DISABLED"):
            for task_id, task in server.api("task_list", status=status, upstream_status="", limit=False).items():
                messages[f"luigid {status} {task_id} message"] = task.get("status_message") or ""
                messages[f"luigid {status} {task_id} id"] = task_id + json.dumps(task.get("params"))
                if status == "FAILED":
                    messages[f"luigid {task_id} error"] = server.api("fetch_error", task_id=task_id)["error"]
        assert sum(bool(v) for k, v in messages.items() if k.endswith("message")) > 20, "status messages were read"
        errors = [v for k, v in messages.items() if k.endswith(" error")]
        assert errors and all(errors), "failure texts were read"
        texts |= messages
    finally:
        server.script("stop")
    texts |= {f"luigid file {p.name}": p.read_bytes().decode("utf-8", errors="replace")
              for p in server.directory.rglob("*") if p.is_file()}

    found = {name: sorted(leaks(text, ids))[:3] for name, text in texts.items() if leaks(text, ids)}
    assert not found, f"personal data in: {found}"
