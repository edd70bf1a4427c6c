"""Spreadsheet formulas never reach an exported CSV cell (decision D18): a master and an NBS
snapshot holding formula-like names, through a real `cvas backfill`, and every CSV it writes."""

from __future__ import annotations

import csv
import datetime as dt
import re
from pathlib import Path

import duckdb
import pytest
from openpyxl import load_workbook

from cvas.core.csvcells import plain_cell, safe_cell
from cvas.core.layout import Layout
from cvas.simulator.simulate import MASTER_HEADER, simulate
from cvas.steps.load import load_day
from tests.cli_runs import run_cvas, write_cfg

pytestmark = pytest.mark.slow   # see pyproject: make test-fast leaves it out

START = dt.date(2025, 10, 6)
END = dt.date(2025, 10, 7)
HYPERLINK = '=HYPERLINK("http://x","y")'
DDE = "+cmd|' /C calc'!A0"
CATEGORY = "@SUM(1+1)*cmd"
NBS_NAME = "=1+2"
NBS_CATEGORY = "-2+3 news"
TRIGGERS = ("=", "+", "-", "@", "\t", "\r")
_NUMBER = re.compile(r"^-?[0-9]+(\.[0-9]+)?$")


def _busiest_cpcs(database: Path, master_cpcs: set[int], n: int) -> list[int]:
    """The `n` CPCs of the master with the most subscriptions in the simulated Nova."""
    con = duckdb.connect(str(database), read_only=True)
    try:
        rows = con.execute("select cpc, count(*) from sim_subscription group by cpc order by 2 desc, 1").fetchall()
    finally:
        con.close()
    return [cpc for cpc, _ in rows if cpc in master_cpcs][:n]


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """A simulated Nova whose master and NBS snapshot hold formula-like names, backfilled
    START..END by the `cvas` command; returns (data root, cfg, {name: cpc})."""
    base = tmp_path_factory.mktemp("formulas")
    nova = simulate(base / "nova", START, 2, new_per_day=20, seed=7)
    wb = load_workbook(nova.master_xlsx)
    ws = wb.worksheets[0]
    col = {name: i for i, name in enumerate(MASTER_HEADER)}
    rows: dict = {}
    for row in ws.iter_rows(min_row=2):   # the first row of a CPC is the one read
        rows.setdefault(row[col["CPC"]].value, row)
    hyperlink, dde, category, nbs = _busiest_cpcs(nova.database, set(rows), 4)
    for cpc, column, text in ((hyperlink, "Service Name", HYPERLINK), (dde, "Service Name", DDE),
                              (category, "TME Category", CATEGORY)):
        cell = rows[cpc][col[column]]
        cell.value = text
        cell.data_type = "s"   # a text cell (typed in Excel as '=…), not a formula
    wb.save(nova.master_xlsx)
    con = duckdb.connect(str(nova.database))
    try:
        con.execute("update sim_cpc set service_name = $n, tme_category = $c where cpc = $cpc",
                    {"n": NBS_NAME, "c": NBS_CATEGORY, "cpc": nbs})
    finally:
        con.close()
    root = base / "data"
    cfg = write_cfg(base / "luigi.cfg", root, nova=nova)
    run = run_cvas(cfg, "backfill", "--start", str(START), "--end", str(END), timeout=600)
    assert run.returncode == 0, run.stdout + run.stderr
    return root, cfg, {"hyperlink": hyperlink, "dde": dde, "category": category, "nbs": nbs}


def _cells(path: Path) -> list[list[str]]:
    delimiter = "|" if path.name.startswith("user_base_by_") else ","   # the user-base exports' contract
    quoting = csv.QUOTE_NONE if delimiter == "|" else csv.QUOTE_MINIMAL
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.reader(fh, delimiter=delimiter, quoting=quoting))


def test_no_csv_cell_cvas_writes_starts_a_formula(built):
    root, _, _ = built
    lay = Layout(root)
    # the landing copies are the sources' own bytes (the replayable record), not cvas's exports
    landing = (lay.raw("act", START).parent.parent, lay.user_base_snapshot_root)
    written = [p for p in sorted(root.rglob("*.csv")) if not any(p.is_relative_to(d) for d in landing)]
    exports = {lay.counters_service, lay.master_cpc, *(lay.user_base_export(by) for by in ("service", "category", "cpc"))}
    assert exports <= set(written), written
    for path in written:
        for line, row in enumerate(_cells(path), 1):
            for cell in row:
                assert not cell.startswith(TRIGGERS) or _NUMBER.match(cell), (path, line, cell)


def test_formula_like_names_are_written_as_text_and_read_back_intact(built):
    root, cfg, cpc = built
    lay = Layout(root)
    service = _cells(lay.counters_service)
    header = service[0]
    by_cpc = {int(r[header.index("cpc")]): r for r in service[1:]}
    assert by_cpc[cpc["hyperlink"]][header.index("service_name")] == "'" + HYPERLINK
    assert by_cpc[cpc["dde"]][header.index("service_name")] == "'" + DDE
    assert by_cpc[cpc["category"]][header.index("tme_category")] == "'" + CATEGORY
    # RFC 4180 quoting kept: the quotes and the comma of the formula stay inside one field
    assert b'"\'=HYPERLINK(""http://x"",""y"")"' in lay.counters_service.read_bytes()
    master = {int(r[0]): r for r in _cells(lay.master_cpc)[1:]}
    assert master[cpc["hyperlink"]][1] == "'" + HYPERLINK and master[cpc["category"]][2] == "'" + CATEGORY
    by_service = _cells(lay.user_base_export("service"))
    assert ["'" + NBS_NAME, "'" + NBS_CATEGORY] in [r[1:3] for r in by_service[1:]]
    assert "'" + NBS_CATEGORY in [r[1] for r in _cells(lay.user_base_export("category"))[1:]]
    # cvas reads its own files back to the names as given: the analyst finds the service by its
    # real name, and its CSV is neutralised again
    out = root.parent / "revenue.csv"
    run = run_cvas(cfg, "revenue", "--service", HYPERLINK, "--month", "2025-10", "--csv", str(out))
    assert run.returncode == 0 and "no service named" not in run.stderr, run.stdout + run.stderr
    assert _cells(out)[1][0] == "'" + HYPERLINK
    checked = run_cvas(cfg, "verify", "--start", str(START), "--end", str(END))
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_a_rejected_record_starting_with_a_formula_is_neutralised(tmp_path):
    from cvas.core.schemas import spec

    raw = tmp_path / "act.csv"
    raw.write_text(",".join(spec("act").names) + "\n" + "=1+1,@x,-3\n", encoding="utf-8")
    rejects = tmp_path / "rejects.csv"
    load_day("act", dt.date(2026, 2, 10), raw, tmp_path / "out.parquet", rejects, tmp_path / "q.json",
             tmp_path / "staging", max_reject_ratio=1.0)
    rows = _cells(rejects)
    assert rows[1][1:] == ["2", "3 fields, expected 15", "'=1+1,@x,-3"]


def test_only_text_that_a_spreadsheet_evaluates_gets_the_quote_and_it_reads_back_exactly():
    for text in ("=1", "+1", "-x", "@a", "\tx", "\rx", "'=1", "''@x"):
        assert safe_cell(text) == "'" + text and plain_cell(safe_cell(text)) == text
    for value in ("a=1", "'quoted", "", " =1", -3, -1.5, None, dt.date(2025, 1, 1)):
        assert safe_cell(value) == value
        if isinstance(value, str):
            assert plain_cell(value) == value
