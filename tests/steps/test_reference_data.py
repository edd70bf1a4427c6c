"""Reference data that changes: the exclusion list makes counter days stale; the Excel master
reaches MASTERCPC.csv and the service export without recomputing any counter day."""

from __future__ import annotations

import csv
import hashlib

import pyarrow.parquet as pq
import pytest
from openpyxl import Workbook

from cvas.core.layout import Layout
from cvas.core.schemas import KINDS
from tests.golden_scenario import DAY, MASTER, write_golden_drops


def write_master(path, rows) -> None:
    wb = Workbook()
    ws = wb.active
    ws.append(["CPC", "CPC to upgrade", "Service Name", "TME Category", "Subscription Model", "Price"])
    for cpc, name, cat, model, price in rows:
        ws.append([cpc, None, name, cat, model, price])
    wb.save(path)


@pytest.fixture
def golden_day(luigi_config, tmp_path):
    """The golden day as directory drops, built once by a backfill."""
    from tasks.pipeline import run_backfill

    write_golden_drops(tmp_path / "drops")
    write_master(tmp_path / "master.xlsx", MASTER)
    (tmp_path / "excl.csv").write_text("msisdn,tmuserid\n34699999999,\n")
    luigi_config("cvas", "source", "directory")
    luigi_config("directory_source", "root", tmp_path / "drops")
    luigi_config("cvas", "master_xlsx", tmp_path / "master.xlsx")
    luigi_config("cvas", "exclusions", tmp_path / "excl.csv")
    luigi_config("cvas", "workers", 1)
    assert run_backfill(DAY, DAY, progress=lambda _: None) == 0
    return Layout(tmp_path / "data"), tmp_path


def counters(layout) -> dict[int, dict]:
    return {r["cpc"]: r for r in pq.read_table(layout.daily_counters(DAY)).to_pylist()}


def sha(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_changed_exclusion_list_makes_the_day_stale_and_a_backfill_rebuilds_it(golden_day):
    from tasks.steps.counters import DailyCounters
    from tasks.pipeline import missing_days, planned_steps, run_backfill

    layout, tmp = golden_day
    assert counters(layout)[44009]["act_count"] == 2
    partitions = {k: sha(layout.transactions(k, DAY)) for k in KINDS}
    assert missing_days(DAY, DAY) == [] and DailyCounters(date=DAY).complete()

    # user 1002 is now excluded (by msisdn for ACT/RENO, by tmuserid for CNR/RFND)
    (tmp / "excl.csv").write_text("msisdn,tmuserid\n34699999999,\n34600000002,834000000000000002\n")
    assert not DailyCounters(date=DAY).complete()
    steps = planned_steps(DAY, DAY)
    assert [(d, label) for d, label, _ in steps] == [(DAY, "daily_counters")]     # only the counters, not the loads
    assert "exclusions" in steps[0][2]                                      # the reason names the input
    assert missing_days(DAY, DAY) == [DAY]

    assert run_backfill(DAY, DAY, progress=lambda _: None) == 0
    row = counters(layout)[44009]
    assert (row["act_count"], row["reno_count"], row["cnr_count"]) == (1, 0, 0)   # only 1003 is left
    assert row["rfnd_count"] == 2                                           # the two refunds without sbnid
    assert DailyCounters(date=DAY).complete() and missing_days(DAY, DAY) == []
    assert {k: sha(layout.transactions(k, DAY)) for k in KINDS} == partitions, "no partition was reloaded"
    cpc = {r["cpc"]: r for r in pq.read_table(layout.counters_cpc).to_pylist()}
    assert cpc[44009]["act_count"] == 1                                     # the export followed


def test_a_changed_master_rebuilds_mastercpc_and_the_service_export_only(golden_day):
    from tasks.steps.counters import DailyCounters, ExportCounters, MasterCpc
    from tasks.pipeline import missing_days, run_daily

    layout, tmp = golden_day
    daily = layout.daily_counters(DAY)
    before = (sha(daily), daily.stat().st_mtime_ns)
    assert "Abaco" in layout.counters_service.read_text()

    write_master(tmp / "master.xlsx", [(44009, "Abaco Plus", "Education", "Monthly subscription", 4.99)
                                       if row[0] == 44009 else row for row in MASTER])
    assert not MasterCpc().complete() and not ExportCounters(date=DAY).complete()
    assert DailyCounters(date=DAY).complete() and missing_days(DAY, DAY) == []   # no counter day is stale

    assert run_daily(DAY) == 0
    assert '44009,Abaco Plus,Education,30,4.99' in layout.master_cpc.read_text()
    with open(layout.counters_service, newline="") as fh:
        rows = {r["cpc"]: r for r in csv.DictReader(fh)}
    assert (rows["44009"]["service_name"], rows["44009"]["cpc_period"], rows["44009"]["cpc_price"]) == \
        ("Abaco Plus", "30", "4.99")
    assert rows["44009"]["rev"] == "4.92"                                   # the counters themselves are unchanged
    assert (sha(daily), daily.stat().st_mtime_ns) == before, "the per-day counters were not recomputed"
    assert ExportCounters(date=DAY).complete()
