"""End to end through Luigi: simulated and directory sources, idempotency, targeted rebuilds, crashes."""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import luigi
import pyarrow.parquet as pq
import pytest
from luigi.execution_summary import LuigiStatusCode

from cvas.core.layout import Layout
from cvas.core.schemas import KINDS, spec
from tests.golden_scenario import DAY, write_golden_drops, write_golden_master

pytestmark = pytest.mark.slow   # see pyproject: make test-fast leaves it out

START = dt.date(2026, 3, 1)
DAYS = 3
END = START + dt.timedelta(days=DAYS - 1)
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def nova(tmp_path_factory):
    from cvas.simulator.simulate import simulate

    return simulate(tmp_path_factory.mktemp("nova"), START, DAYS, new_per_day=25, seed=11)


@pytest.fixture
def simulated(luigi_config, nova, tmp_path):
    luigi_config("cvas", "source", "simulated")
    luigi_config("simulated_source", "database", nova.database)
    luigi_config("cvas", "master_xlsx", nova.master_xlsx)
    luigi_config("cvas", "exclusions", nova.exclusions)
    luigi_config("cvas", "workers", 1)
    return Layout(tmp_path / "data")


def snapshot(root: Path) -> dict[str, str]:
    """sha256 of every file under the dataset roots (bookkeeping folders excluded)."""
    out = {}
    for p in sorted(root.rglob("*")):
        rel = p.relative_to(root)
        if p.is_file() and rel.parts[0] not in ("_meta", ".staging", "logs", "_invalid"):
            out[str(rel)] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def test_end_to_end_daily_pipeline(simulated):
    from tasks.pipeline import DailyPipeline

    result = luigi.build([DailyPipeline(date=START)], local_scheduler=True, detailed_summary=True)
    assert result.status == LuigiStatusCode.SUCCESS, result.summary_text
    lay = simulated
    for kind in KINDS:
        assert lay.raw(kind, START).exists()
        part = lay.transactions(kind, START)
        assert part == lay.root / "Parquet_Data" / "transactions" / kind / "year_month=2026-03" / "2026-03-01.parquet"
        assert pq.read_schema(part).equals(spec(kind).schema)
        assert lay.quality(kind, START).exists() and lay.rejects(kind, START).exists()
    assert lay.daily_counters(START) == lay.root / "daily_counters" / "2026-03-01.parquet"
    counters = pq.read_table(lay.daily_counters(START)).to_pylist()
    act = pq.read_table(lay.transactions("act", START))
    reno = pq.read_table(lay.transactions("reno", START))
    # every counted activation and renewal is a row of the day's partitions (exclusions only remove)
    assert sum(r["act_count"] + r["upg_count"] for r in counters) <= act.num_rows
    assert sum(r["reno_count"] for r in counters) <= reno.num_rows
    assert sum(r["reno_count"] for r in counters) > 0
    assert lay.counters_cpc.exists() and lay.counters_service.exists() and lay.master_cpc.exists()
    assert pq.read_table(lay.counters_cpc).num_rows == len(counters)


def test_backfill_is_idempotent_and_rebuilds_only_what_is_missing(simulated, capsys):
    from tasks.pipeline import run_backfill

    assert run_backfill(START, END) == 0
    before = snapshot(simulated.root)
    assert run_backfill(START, END) == 0
    assert "nothing to do" in capsys.readouterr().out
    assert snapshot(simulated.root) == before, "a second backfill changes no byte"

    victim = simulated.transactions("reno", START + dt.timedelta(days=1))
    victim.unlink()
    time.sleep(0.01)
    assert run_backfill(START, END) == 0
    after = snapshot(simulated.root)
    changed = {k for k in after if after[k] != before.get(k)}
    day = "2026-03-02"
    # the rebuilt day, its counters, the exports, and the report whose 90-day window holds the day
    # (re-rendered; its bytes differ only when the minute in its footer has moved)
    assert changed <= {f"Parquet_Data/transactions/reno/year_month=2026-03/{day}.parquet", f"daily_counters/{day}.parquet",
                       "Counters/Counters_CPC.parquet", "Counters/Counters_Service.csv", f"reports/{END}.html"}
    assert f"Parquet_Data/transactions/reno/year_month=2026-03/{day}.parquet" in after
    # the rebuilt partition has the same rows as before (same raw extract)
    assert after[f"Parquet_Data/transactions/reno/year_month=2026-03/{day}.parquet"] == before[
        f"Parquet_Data/transactions/reno/year_month=2026-03/{day}.parquet"]


def test_directory_source_backfill_matches_hand_computed_counters(luigi_config, tmp_path):
    from tasks.pipeline import run_backfill

    drops = tmp_path / "drops"
    write_golden_drops(drops)
    write_golden_master(tmp_path / "master.xlsx")
    (tmp_path / "excl.csv").write_text("msisdn,tmuserid\n34699999999,\n")
    luigi_config("cvas", "source", "directory")
    luigi_config("directory_source", "root", drops)
    luigi_config("cvas", "master_xlsx", tmp_path / "master.xlsx")
    luigi_config("cvas", "exclusions", tmp_path / "excl.csv")
    assert run_backfill(DAY, DAY) == 0
    lay = Layout(tmp_path / "data")
    got = {r["cpc"]: r for r in pq.read_table(lay.daily_counters(DAY)).to_pylist()}
    # hand-computed from tests/golden_scenario.py (see tests/steps/test_counters.py for the reasoning)
    assert {c: (r["act_count"], r["act_free"], r["act_pay"], r["upg_count"], r["reno_count"], r["dct_count"],
                r["upg_dct_count"], r["cnr_count"], r["ppd_count"], r["rfnd_count"], r["rfnd_amount"], r["rev"])
            for c, r in got.items()} == {
        38687: (0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0.0, 14.99),
        41949: (0, 0, 0, 0, 1, 1, 0, 0, 0, 0, 0.0, 1.64),
        44009: (2, 0, 2, 0, 1, 0, 0, 1, 0, 5, 8.2, 4.92),
        45530: (0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0.0, 8.26),
        45531: (1, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0.0, 0.0),
        99999: (0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0.0, 0.0),
    }
    service = lay.counters_service.read_text().splitlines()
    assert [line.split(",")[3] for line in service[1:]] == ["44009", "38687", "41949", "99999"]
    assert lay.user_base_export("category").read_text().splitlines() == [
        "date|tme_category|User_Base", "2026-02-10|Edu_Ima|120", "2026-02-10|Free Time|80"]
    assert lay.subscriptions(DAY).exists() and lay.subscriptions_latest.exists()


def test_a_killed_backfill_leaves_no_partial_file_and_resumes(simulated, tmp_path):
    env = dict(os.environ, LUIGI_CONFIG_PATH=str(tmp_path / "luigi.cfg"))
    cfg = luigi.configuration.get_config()
    with open(tmp_path / "luigi.cfg", "w") as fh:
        cfg.write(fh)
    cmd = [sys.executable, "-m", "tasks.cli", "backfill", "--start", str(START), "--end", str(END), "--batch-days", "1"]
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not any(simulated.root.glob("Parquet_Data/transactions/*/*/*.parquet")):
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    for path in simulated.root.rglob("*"):
        rel = path.relative_to(simulated.root)
        if path.is_file() and rel.parts[0] not in (".staging",):
            assert not path.name.startswith(".") and "tmp" not in path.name, rel
            if path.suffix == ".parquet":
                pq.read_metadata(path)  # every visible Parquet file is whole
    assert subprocess.run(cmd, cwd=REPO, env=env, capture_output=True).returncode == 0
    assert len(list(simulated.root.glob("daily_counters/*.parquet"))) == DAYS


def test_a_new_day_is_appended_to_the_exports_and_equals_a_full_rebuild(simulated, tmp_path):
    from cvas.steps.counters import export_counters
    from cvas.core.freshness import Freshness, Settings
    from cvas.steps.master import read_master_csv
    from tasks.config import excluded_services
    from tasks.pipeline import run_backfill

    assert run_backfill(START, START + dt.timedelta(days=1), progress=lambda _: None) == 0
    assert run_backfill(END, END, progress=lambda _: None) == 0   # after the exported days: appended
    lay = simulated
    assert Freshness(lay, Settings(excluded_services=excluded_services())).extension("counters_export").days == []
    full = tmp_path / "full"
    export_counters(sorted(lay.daily_counters_root.glob("*.parquet")), read_master_csv(lay.master_cpc),
                    excluded_services(), full / "cpc.parquet", full / "service.csv", lay.staging)
    assert pq.read_table(lay.counters_cpc).equals(pq.read_table(full / "cpc.parquet"))
    assert lay.counters_service.read_bytes() == (full / "service.csv").read_bytes()
    assert pq.read_table(lay.counters_cpc).column("date").to_pylist()[-1] == END
