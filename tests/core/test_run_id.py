"""One run id per `cvas` command: in every sidecar the run writes (workers included) and in its log."""

from __future__ import annotations

import pytest

import json

from tests.cli_runs import run_cvas, write_cfg

pytestmark = pytest.mark.slow   # see pyproject: make test-fast leaves it out


def test_a_run_records_one_id_in_every_sidecar_and_its_log_and_summary_names_the_log_dir(tmp_path):
    data, logs, nova = tmp_path / "data", tmp_path / "run-logs", tmp_path / "nova"
    cfg = write_cfg(tmp_path / "luigi.cfg", data, log_dir=logs, workers=2,
                    extra=f"[simulated_source]\ndatabase = {nova}/nova.duckdb\n",
                    master_xlsx=f"{nova}/Master_CPCs.xlsx", exclusions=f"{nova}/Users_No_Limits.csv")
    demo = run_cvas(cfg, "demo", "--days", "2", "--new-per-day", "5")
    assert demo.returncode == 0, demo.stdout + demo.stderr
    ids = {json.loads(p.read_text())["run_id"] for p in (data / "_meta").rglob("*.json")}
    assert len(ids) == 1 and "" not in ids and None not in ids, ids
    (run,) = ids
    (log_file,) = logs.glob("*-demo-*.log")
    assert f"run demo, id {run}, pid " in log_file.read_text()

    summary = run_cvas(cfg, "summary")
    assert summary.returncode == 0, summary.stderr
    assert f"run logs          {logs}" in summary.stdout
