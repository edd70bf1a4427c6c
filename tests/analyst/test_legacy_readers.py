"""The legacy's analyst scripts on a cvas data root (decision D19): every legacy path read the way
rfnd_analysis.py, check_transactions_parquet_data.py, check_aggregated_parquet_data.py,
validate_user_base.py and revenue_report.py read it (legacy rule L13), with polars, pandas, pyarrow
and DuckDB, from the data root as their working directory; and the README's minimum reader
versions, checked with old readers in throwaway virtual environments."""

from __future__ import annotations

import csv
import datetime as dt
import json
import subprocess
import sys
from pathlib import Path

import duckdb
import pandas as pd
import polars as pl
import pyarrow.parquet as pq
import pytest

from cvas.core.layout import Layout, transaction_files
from cvas.core.schemas import KINDS, SERVICE_EXPORT_COLUMNS, spec
from cvas.steps.subscriptions import SUBSCRIPTION_COLUMNS

pytestmark = pytest.mark.slow   # see pyproject: make test-fast leaves it out

MONTHS = ["2025-10", "2025-11"]   # conftest.MONTH_END spans them
VIEW = "Parquet_Data/aggregated/subscriptions.parquet"


@pytest.fixture
def lay(month_end_root, monkeypatch) -> Layout:
    """The built root, also the working directory: the scripts read relative paths."""
    monkeypatch.chdir(month_end_root)
    return Layout(month_end_root)


def _rows(files: list[Path]) -> int:
    return sum(pq.read_metadata(f).num_rows for f in files)


def _view_rows(lay: Layout) -> int:
    return _rows(sorted(lay.subscriptions_latest.glob("*.parquet")))


def test_rfnd_analysis_reads_each_month_partition_with_polars_and_the_master_from_the_root(lay):
    base = "Parquet_Data/transactions/rfnd"
    assert sorted(p.name for p in Path(base).iterdir()) == [f"year_month={m}" for m in MONTHS]
    df = pl.concat([pl.scan_parquet(f"{base}/year_month={m}/*.parquet", hive_partitioning=True)
                    for m in MONTHS]).collect()
    assert df.columns == spec("rfnd").names + ["year_month"]
    assert df.height == _rows(transaction_files(lay, "rfnd")) > 0
    per_month = dict(df.group_by("year_month").len().iter_rows())
    assert per_month == {m: _rows([f for f in transaction_files(lay, "rfnd") if f"year_month={m}" in str(f)])
                         for m in MONTHS}
    master = pl.read_csv("MASTERCPC.csv").select(["cpc", "service_name", "tme_category"])
    joined = df.group_by(["year_month", "cpc"]).agg(pl.col("rfnd_cnt").sum()).join(master, on="cpc", how="left")
    known = set(master["cpc"].to_list())
    assert joined.filter(pl.col("service_name").is_not_null()).height == \
        joined.filter(pl.col("cpc").is_in(known)).height > 0


@pytest.mark.parametrize("kind", KINDS)
def test_check_transactions_reads_each_kind_folder_with_pyarrow_polars_pandas_and_duckdb(lay, kind):
    path = lay.transactions_root(kind)
    assert path == lay.root / "Parquet_Data" / "transactions" / kind
    expected = _rows(transaction_files(lay, kind))
    table = pq.read_table(str(path))   # the folder: pyarrow finds the hive partitions itself
    assert table.num_rows == expected
    assert table.column_names == spec(kind).names + ["year_month"]
    assert sorted(set(table.column("year_month").to_pylist())) == (MONTHS if expected else [])
    assert pl.scan_parquet(str(path / "**/*.parquet"), hive_partitioning=True).collect().height == expected
    assert len(pd.read_parquet(path)) == expected
    (count, months), = duckdb.sql(f"select count(*), count(distinct year_month) from "
                                  f"read_parquet('{path}/**/*.parquet', hive_partitioning=true)").fetchall()
    assert (count, months) == (expected, len(MONTHS) if expected else 0)


def test_check_aggregated_reads_the_view_folder_by_its_plain_path(lay):
    expected = _view_rows(lay)
    assert expected > 0
    names = [n for n, _ in SUBSCRIPTION_COLUMNS]
    by_polars = pl.read_parquet(VIEW)
    assert (by_polars.height, by_polars.columns) == (expected, names)
    assert len(pd.read_parquet(VIEW)) == pq.read_table(VIEW).num_rows == expected
    assert duckdb.sql(f"select count(*) from '{VIEW}'").fetchone()[0] == expected


def test_validate_user_base_reads_the_master_and_the_user_base_exports(lay):
    master = pd.read_csv("MASTERCPC.csv", skipinitialspace=True)
    by_service = pd.read_csv("User_Base/user_base_by_service.csv", sep="|")
    by_cpc = pd.read_csv("User_Base/user_base_by_cpc.csv", sep="|")
    assert list(by_service.columns) == ["date", "service_name", "tme_category", "User_Base"]
    assert list(by_cpc.columns) == ["date", "cpc", "User_Base"]
    assert by_cpc["cpc"].dtype == master["cpc"].dtype == "int64"
    service = by_service["service_name"].iloc[0]
    cpcs = master[master["service_name"].str.strip() == service]["cpc"].tolist()
    day = by_service["date"].iloc[0]
    assert by_service[(by_service["service_name"] == service) & (by_service["date"] == day)]["User_Base"].sum() == \
        by_cpc[by_cpc["cpc"].isin(cpcs) & (by_cpc["date"] == day)]["User_Base"].sum() > 0


def test_revenue_report_reads_the_service_export_with_a_dict_reader(lay):
    with open("Counters/Counters_Service.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert rows and all(None not in row and len(row) == len(SERVICE_EXPORT_COLUMNS) for row in rows)
    assert {dt.datetime.strptime(r["date"], "%Y-%m-%d").strftime("%Y-%m") for r in rows} == set(MONTHS)
    assert sum(float(r["rev"]) for r in rows) > 0


# -- the README's minimum reader versions ---------------------------------------------------------

# Reads every Parquet file it is given, then the view folder by its plain path and by its glob, with
# the pyarrow and DuckDB installed where it runs; prints {what: "ok <rows>" | "error <message>"}.
_READ_ALL = """
import json, sys
import duckdb, pyarrow, pyarrow.parquet as pq
root, view, files = sys.argv[1], sys.argv[2], sys.argv[3:]
out = {"versions": f"pyarrow {pyarrow.__version__}, duckdb {duckdb.__version__}"}
def attempt(name, read):
    try:
        out[name] = f"ok {read()}"
    except Exception as exc:
        out[name] = f"error {exc}"
for f in files:
    attempt(f, lambda: pq.read_table(f"{root}/{f}").num_rows)
attempt("duckdb plain", lambda: duckdb.sql(f"select count(*) from '{root}/{view}'").fetchone()[0])
attempt("duckdb glob", lambda: duckdb.sql(f"select count(*) from '{root}/{view}/*.parquet'").fetchone()[0])
print(json.dumps(out))
"""


@pytest.fixture(scope="session")
def old_reader(tmp_path_factory):
    """`python(*pins)`: the interpreter of a throwaway virtual environment holding `pins`, made once
    per session (pip needs PyPI)."""
    made: dict[tuple[str, ...], Path] = {}

    def python(*pins: str) -> Path:
        if pins not in made:
            venv = tmp_path_factory.mktemp("readers")
            subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
            subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "--disable-pip-version-check",
                            *pins], check=True)
            made[pins] = venv / "bin" / "python"
        return made[pins]

    return python


def _read_with(python: Path, root: Path, files: list[str]) -> dict[str, str]:
    run = subprocess.run([str(python), "-c", _READ_ALL, str(root), VIEW, *files], capture_output=True, text=True,
                         timeout=300)
    assert run.returncode == 0, run.stderr
    return json.loads(run.stdout)


def _parquet_by_writer(root: Path) -> dict[str, list[str]]:
    """{"pyarrow" | "duckdb": the published Parquet files that writer wrote}, relative to root."""
    found: dict[str, list[str]] = {"pyarrow": [], "duckdb": []}
    for f in sorted(root.rglob("*.parquet")):
        if f.is_file() and ".staging" not in f.parts:
            writer = pq.read_metadata(f).created_by
            found["pyarrow" if writer.startswith("parquet-cpp-arrow") else "duckdb"].append(str(f.relative_to(root)))
    return found


def test_the_legacy_pins_read_the_view_but_not_what_pyarrow_21_writes(month_end_root, old_reader):
    """pyarrow 19.0.0 rejects the size statistics pyarrow 21 writes (apache/arrow#45283, fixed in
    19.0.1), and pyarrow 21 cannot leave them out (its Python API has no size_statistics_level,
    apache/arrow#50619): the files cvas writes with pyarrow need pyarrow >= 19.0.1, the view (written
    by DuckDB) reads with 19.0.0. DuckDB 1.2 reads the view folder by its glob only."""
    files = _parquet_by_writer(month_end_root)
    tops = {w: {Path(f).parts[0] for f in fs} for w, fs in files.items()}
    assert tops == {"pyarrow": {"Parquet_Data", "daily_counters", "Counters", "user_base"},
                    "duckdb": {"Parquet_Data", "subscriptions", "subscription_state"}}
    assert all(f.startswith("Parquet_Data/transactions/") for f in files["pyarrow"] if f.startswith("Parquet_Data"))
    assert all(f.startswith(VIEW + "/") for f in files["duckdb"] if f.startswith("Parquet_Data"))
    got = _read_with(old_reader("pyarrow==19.0.0", "duckdb==1.2.1"), month_end_root,
                     files["pyarrow"] + files["duckdb"])
    assert got.pop("versions") == "pyarrow 19.0.0, duckdb 1.2.1"
    assert {f: got[f] for f in files["pyarrow"]} == \
        {f: "error Repetition level histogram size mismatch" for f in files["pyarrow"]}
    assert all(got[f].startswith("ok ") for f in files["duckdb"]), {f: got[f] for f in files["duckdb"]}
    rows = sum(pq.read_metadata(month_end_root / f).num_rows for f in files["duckdb"] if f.startswith(VIEW))
    assert got["duckdb glob"] == f"ok {rows}"
    assert got["duckdb plain"].startswith("error IO Error: No files found that match the pattern")


def test_the_readme_minimum_readers_read_every_parquet_output(month_end_root, old_reader):
    """pyarrow 19.0.1 and DuckDB 1.4.0, the minimum versions the README names, read every Parquet
    file of a data root, and DuckDB 1.4.0 the view folder by its plain path."""
    files = [f for fs in _parquet_by_writer(month_end_root).values() for f in fs]
    got = _read_with(old_reader("pyarrow==19.0.1", "duckdb==1.4.0"), month_end_root, files)
    assert got.pop("versions") == "pyarrow 19.0.1, duckdb 1.4.0"
    expected = {f: f"ok {pq.read_metadata(month_end_root / f).num_rows}" for f in files}
    rows = sum(pq.read_metadata(p).num_rows for p in Layout(month_end_root).subscriptions_latest.glob("*.parquet"))
    assert got == {**expected, "duckdb plain": f"ok {rows}", "duckdb glob": f"ok {rows}"}
