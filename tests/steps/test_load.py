"""cvas.steps.load: golden extracts in tests/golden/load, and the publishing contract of load_day.

Each `<case>_in.csv` is parsed as the kind named by its prefix for DAY; the expected table
is `<case>_expected.csv` (null as an empty field), the report and the rejects (or the
file-level error) are in `<case>_expected.json`. `CVAS_UPDATE_GOLDEN=1` rewrites the
expected files from the current code: review the diff before committing.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import logging
import os
import random
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from cvas.steps.extract_dedup import sort_columns
from cvas.steps.load import load_day, parse_extract
from cvas.steps.load_contract import ExtractFormatError, RejectRatioExceeded
from cvas.core.quality import read_quality
from cvas.core.schemas import SPECS, spec

GOLDEN = Path(__file__).parents[1] / "golden" / "load"
CASES = sorted(p.name[: -len("_in.csv")] for p in GOLDEN.glob("*_in.csv"))
DAY = dt.date(2026, 2, 10)
UPDATE = os.environ.get("CVAS_UPDATE_GOLDEN") == "1"


def table_csv(table: pa.Table) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(table.column_names)
    for row in table.to_pylist():
        writer.writerow("" if v is None else repr(v) if isinstance(v, float) else str(v) for v in row.values())
    return out.getvalue()


def observed(case: str) -> tuple[dict, str | None]:
    kind = case.split("_", 1)[0]
    path = GOLDEN / f"{case}_in.csv"
    try:
        result = parse_extract(kind, DAY, path)
    except ExtractFormatError as exc:
        return {"kind": kind, "day": DAY.isoformat(), "error": type(exc).__name__,
                "message": str(exc).replace(str(path), "<file>")}, None
    report = dict(result.report)
    assert report.pop("source_file") == str(path)
    assert all(r.source_file == str(path) for r in result.rejects)
    rejects = [[r.line, r.reason_class, r.reason, r.record] for r in result.rejects]
    return {"kind": kind, "day": DAY.isoformat(), "report": report, "rejects": rejects}, table_csv(result.table)


@pytest.mark.parametrize("case", CASES)
def test_golden(case):
    got, table = observed(case)
    expected_json = GOLDEN / f"{case}_expected.json"
    expected_csv = GOLDEN / f"{case}_expected.csv"
    if UPDATE:
        expected_json.write_text(json.dumps(got, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        if table is None:
            expected_csv.unlink(missing_ok=True)
        else:
            expected_csv.write_text(table, encoding="utf-8", newline="")
    assert got == json.loads(expected_json.read_text(encoding="utf-8"))
    if table is not None:
        with open(expected_csv, encoding="utf-8", newline="") as fh:
            assert table == fh.read()


# -- properties the goldens pin down, stated directly -------------------------------------


def test_golden_rejects_point_at_their_record():
    """A reject's line is the physical line where its raw record starts in the source."""
    path = GOLDEN / "reno_rejects_in.csv"
    lines = path.read_text(encoding="utf-8").split("\n")
    rejects = parse_extract("reno", DAY, path).rejects
    assert rejects
    for r in rejects:
        assert r.record.split("\n")[0] == lines[r.line - 1]


@pytest.mark.parametrize("case, quick", [("reno_rejects", True), ("reno_bom_crlf", True), ("rfnd_grain", True),
                                         ("reno_cr_stray_quote", False)])
def test_quick_and_careful_reject_locators_agree(case, quick):
    """The numpy locator either agrees with the csv-module scan or declines (None)."""
    from cvas.core.schemas import spec as kind_spec
    from cvas.steps import extract_file, extract_rejects, extract_types

    path = GOLDEN / f"{case}_in.csv"
    ks = kind_spec(case.split("_", 1)[0])
    data = extract_file.map_file(path)
    body = extract_file.check_header(path, data, ks.names)
    raw, bad_texts = extract_file.read_strings(path, data, body, ks.names)
    checks, _ = extract_types.validate(ks, DAY, raw)
    rows = np.flatnonzero(extract_types.any_failed(checks, raw.num_rows))
    careful = extract_rejects._locate_csv(path, data, body, raw, rows, len(bad_texts), len(ks.names))
    fast = extract_rejects._locate_quick(data, body, raw, rows, bad_texts, len(ks.names))
    assert careful
    assert fast == (careful if quick else None)


def test_stray_quote_falls_back_to_the_careful_scan(tmp_path):
    names = spec("reno").names
    rnd = random.Random(5)
    rows = [_reno_row(i, rnd) for i in range(50)]
    rows[10][9] = 'ab"c'                       # a quote inside an unquoted field: literal
    rows[30][6] = "2026-02-11 10:00:00"
    path = tmp_path / "x.csv"
    path.write_text("\n".join([",".join(names)] + [",".join(f'"{v}"' if "\n" in v or "," in v else v for v in r)
                                                   for r in rows]) + "\n", encoding="utf-8")
    lines = path.read_text(encoding="utf-8").split("\n")
    result = parse_extract("reno", DAY, path)
    assert result.table.num_rows == 49
    assert 'ab"c' in result.table["camp_name"].to_pylist()
    (reject,) = result.rejects
    assert reject.record.split("\n")[0] == lines[reject.line - 1] and "834000000000000030" in reject.record


def test_header_error_never_quotes_data():
    with pytest.raises(ExtractFormatError) as err:
        parse_extract("reno", DAY, GOLDEN / "reno_no_header_in.csv")
    message = str(err.value)
    assert "line 1" in message and "reno_no_header_in.csv" in message
    assert "834000000000000008" not in message and "3460000008" not in message


def test_wrong_header_names_the_difference():
    with pytest.raises(ExtractFormatError, match=r"line 1: .*missing trans_date.*unexpected 'trans_dt'"):
        parse_extract("reno", DAY, GOLDEN / "reno_header_wrong_in.csv")
    with pytest.raises(ExtractFormatError, match=r"out of order from position 8: expected 'act_date', found 'reno_"):
        parse_extract("reno", DAY, GOLDEN / "reno_header_reordered_in.csv")


def test_every_kind_has_a_golden_case():
    assert {case.split("_", 1)[0] for case in CASES if (GOLDEN / f"{case}_expected.csv").exists()} == set(SPECS)


# -- generated extracts -----------------------------------------------------------------


def _reno_row(i: int, rnd: random.Random, day: dt.date = DAY) -> list[str]:
    ts = dt.datetime.combine(day, dt.time()) + dt.timedelta(seconds=rnd.randrange(86400))
    return [f"834{i:016d}", f"346{i % 10**8:08d}", str(rnd.choice([45530, 45531, 893])), "2",
            str(rnd.randrange(1, 9)), rnd.choice(["ORGANIC", "UPGRADE", ""]), str(ts),
            "2025-11-10 10:00:00", str(ts + dt.timedelta(days=30)),
            rnd.choice(["normal", "a,b", "multi\nline", ""]), "3", "SMS", "c1",
            str(834 * 10**15 + i), rnd.choice(["4.99", "1.5", "0"])]


def _write(path: Path, header: list[str], rows: list[list[str]], newline: str = "\n") -> None:
    with open(path, "w", encoding="utf-8", newline="") as fh:
        csv.writer(fh, lineterminator=newline).writerows([header, *rows])


def test_row_order_does_not_change_the_output(tmp_path):
    rnd = random.Random(7)
    rows = [_reno_row(i, rnd) for i in range(500)]
    rows += [rows[3], rows[17][:14] + ["9.99"]]        # an exact copy and a conflicting copy
    names = spec("reno").names
    _write(tmp_path / "a.csv", names, rows)
    shuffled = rows[:]
    rnd.shuffle(shuffled)
    _write(tmp_path / "b.csv", names, shuffled, newline="\r\n")
    a = parse_extract("reno", DAY, tmp_path / "a.csv")
    b = parse_extract("reno", DAY, tmp_path / "b.csv")
    assert a.table.equals(b.table)
    # the exact copy is merged; the conflicting copy (another rev) is kept beside its original (decision D16)
    assert a.table.num_rows == 501
    assert a.report["duplicates_removed"] == 1 and a.report["key_conflicts"] == 1
    keys = sort_columns(spec("reno"))
    assert a.table.sort_by([(k, "ascending") for k in keys]).equals(a.table)
    kept = a.table.filter(pa.compute.equal(a.table["subscription_id"], 834 * 10**15 + 17))["rev"].to_pylist()
    assert sorted(kept) == sorted([float(rows[17][14]), 9.99])


def test_reject_lines_with_many_quoted_newlines(tmp_path):
    rnd = random.Random(11)
    rows = [_reno_row(i, rnd) for i in range(2000)]
    bad = set(rnd.sample(range(2000), 40))
    for i in bad:
        rows[i][6] = "2026-02-11 00:00:00" if i % 2 else "garbage"
    path = tmp_path / "x.csv"
    _write(path, spec("reno").names, rows)
    lines = path.read_text(encoding="utf-8").split("\n")
    result = parse_extract("reno", DAY, path)
    assert result.report["rejected"] == 40
    odd = sum(i % 2 for i in bad)
    assert result.report["rejected_by_reason"] == {"bad_timestamp": 40 - odd, "not_this_day": odd}
    assert result.report["status"] == "failed"          # 2% > the 1% default
    for r in result.rejects:
        assert r.record.split("\n")[0] == lines[r.line - 1]
        assert r.record.startswith("834")


# -- load_day: what gets published --------------------------------------------------------


def _paths(tmp_path: Path) -> dict[str, Path]:
    data = tmp_path / "data"
    return {"out": data / "Parquet_Data" / "transactions" / "reno" / "year_month=2026-02" / "2026-02-10.parquet",
            "rejects_path": data / "rejects" / "reno" / "2026-02-10.csv",
            "quality_path": data / "quality" / "reno" / "2026-02-10.json",
            "staging": data / ".staging"}


def test_load_day_publishes_parquet_rejects_and_report(tmp_path, caplog):
    paths = _paths(tmp_path)
    caplog.set_level(logging.INFO, logger="cvas.steps.load")
    report = load_day("reno", DAY, GOLDEN / "reno_bom_crlf_in.csv", max_reject_ratio=0.5, **paths)
    assert report["rows_written"] == 3 and report["rejected"] == 1
    assert pq.read_schema(paths["out"]).remove_metadata() == spec("reno").schema
    assert pq.ParquetFile(paths["out"]).read().schema.equals(spec("reno").schema)
    assert "year_month" not in pq.read_schema(paths["out"]).names
    assert pq.ParquetFile(paths["out"]).metadata.row_group(0).column(13).statistics.has_min_max
    assert read_quality(paths["quality_path"]) == report
    with open(paths["rejects_path"], newline="", encoding="utf-8") as fh:
        rows = list(csv.reader(fh))
    assert rows[0] == ["source_file", "line", "reason", "record"]
    assert rows[1][1:3] == ["5", "rev 'oops' is not a number"]
    assert not list(paths["staging"].iterdir())
    assert "3 written" in caplog.text and "1 rejected" in caplog.text
    assert "34600000010" not in caplog.text and "8340000000000000010" not in caplog.text


def test_clean_day_publishes_a_header_only_rejects_file(tmp_path):
    paths = _paths(tmp_path)
    load_day("reno", DAY, GOLDEN / "reno_header_only_in.csv", **paths)
    assert paths["rejects_path"].read_text() == "source_file,line,reason,record\n"
    assert pq.ParquetFile(paths["out"]).read().num_rows == 0
    assert read_quality(paths["quality_path"])["status"] == "ok"


def test_ratio_failure_publishes_rejects_and_report_but_no_parquet(tmp_path, caplog):
    paths = _paths(tmp_path)
    with pytest.raises(RejectRatioExceeded) as err:
        load_day("reno", DAY, GOLDEN / "reno_rejects_in.csv", **paths)
    message = str(err.value)
    assert "reno_rejects_in.csv" in message and "limit 0.0100" in message and "bad_timestamp=5" in message
    for pii in ("34600000023", "8340000000000000023"):
        assert pii not in message and pii not in caplog.text
    assert err.value.report["status"] == "failed"
    assert not paths["out"].exists()
    assert read_quality(paths["quality_path"]) == err.value.report
    assert len(paths["rejects_path"].read_text().splitlines()) > 10


def test_failed_reload_leaves_the_previous_partition(tmp_path):
    paths = _paths(tmp_path)
    load_day("reno", DAY, GOLDEN / "reno_bom_crlf_in.csv", max_reject_ratio=0.5, **paths)
    before = paths["out"].read_bytes()
    with pytest.raises(RejectRatioExceeded):
        load_day("reno", DAY, GOLDEN / "reno_rejects_in.csv", **paths)
    with pytest.raises(ExtractFormatError):
        load_day("reno", DAY, GOLDEN / "reno_header_wrong_in.csv", **paths)
    assert paths["out"].read_bytes() == before


def test_rerun_replaces_the_partition(tmp_path):
    paths = _paths(tmp_path)
    load_day("reno", DAY, GOLDEN / "reno_rejects_in.csv", max_reject_ratio=1.0, **paths)
    load_day("reno", DAY, GOLDEN / "reno_bom_crlf_in.csv", max_reject_ratio=0.5, **paths)
    assert pq.ParquetFile(paths["out"]).read().num_rows == 3


@pytest.mark.parametrize("kind", sorted(SPECS))
def test_empty_day_schema_per_kind(tmp_path, kind):
    raw = tmp_path / "raw.csv"
    raw.write_text(",".join(spec(kind).names) + "\n")
    paths = _paths(tmp_path)
    report = load_day(kind, DAY, raw, **paths)
    assert report["rows_read"] == 0 and report["reject_ratio"] == 0.0
    assert pq.ParquetFile(paths["out"]).read().schema.equals(spec(kind).schema)
