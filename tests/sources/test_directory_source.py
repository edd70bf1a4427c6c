"""cvas.sources.directory: legacy CSV drops, real files in tmp_path, loaded with the real loader."""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
from pathlib import Path

import pytest

from cvas.steps.load import parse_extract
from cvas.core.schemas import spec
from cvas.sources import SourceError
from cvas.sources.directory import DirectorySource

D1, D2, D3 = dt.date(2026, 2, 10), dt.date(2026, 2, 11), dt.date(2026, 2, 12)
RFND_HEADER = ",".join(spec("rfnd").names)
CNR_HEADER = ",".join(spec("cnr").names)


def rfnd(i: int, day: str, flag: str = "f") -> str:
    return f"83400000000000000{i:02d},45530,{day},1.64,1,8340000000000000{i:02d},{flag}"


def cnr(i: int, ts: str, mode: str = "CCC-CR") -> str:
    return f"{ts},8340000000000000{i:02d},83400000000000000{i:02d},45530,{mode}"


def write(path: Path, text: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text if isinstance(text, bytes) else text.encode("utf-8"))
    return path


@pytest.fixture
def root(tmp_path) -> Path:
    return tmp_path / "drops"


def test_daily_file_is_copied_byte_for_byte(root, tmp_path):
    body = ("\ufeff" + RFND_HEADER + "\r\n" + rfnd(1, "2026-02-10") + "\r\n" + rfnd(2, "2026-02-11") + "\r\n").encode()
    write(root / "Daily_Data" / "2026-02-10" / "rfnd_atlas_day.csv", body)
    dest = tmp_path / "stage" / "rfnd.csv"
    assert DirectorySource(root).extract_transactions("rfnd", D1, dest) == 2
    assert dest.read_bytes() == body
    # the other day's row is not dropped silently: the loader rejects it with a reason
    result = parse_extract("rfnd", D1, dest)
    assert result.report["rows_written"] == 1
    assert [(r.line, r.reason_class) for r in result.rejects] == [(3, "not_this_day")]


def test_partial_daily_drop_is_an_error(root, tmp_path):
    write(root / "Daily_Data" / "2026-02-10" / "act_atlas_day.csv", ",".join(spec("act").names) + "\n")
    write(root / "Historical_Data" / "rfnd_atlas_2026.csv", RFND_HEADER + "\n" + rfnd(1, "2026-02-10") + "\n")
    with pytest.raises(SourceError, match=r"partial drop for 2026-02-10: .* exists but has no rfnd_atlas_day"):
        DirectorySource(root).extract_transactions("rfnd", D1, tmp_path / "x.csv")


def test_nothing_for_the_day_names_the_paths(root, tmp_path):
    write(root / "Historical_Data" / "rfnd_atlas_2026.csv", RFND_HEADER + "\n" + rfnd(1, "2026-02-10") + "\n")
    with pytest.raises(SourceError) as err:
        DirectorySource(root).extract_transactions("rfnd", D3, tmp_path / "x.csv")
    message = str(err.value)
    assert "2026-02-12" in message and "Daily_Data/2026-02-12/rfnd_atlas_day.csv" in message
    assert "rfnd_atlas*.csv" in message and "rfnd_atlas_2026.csv 2026-02-10..2026-02-10" in message
    with pytest.raises(SourceError, match="no such files"):
        DirectorySource(root).extract_transactions("cnr", D3, tmp_path / "x.csv")


def historical_cnr(root: Path) -> Path:
    lines = [
        CNR_HEADER,
        cnr(1, "2026-02-10 09:00:00"),
        cnr(2, "2026-02-12 09:00:00"),                                     # D2 has no rows: a gap
        cnr(3, "2026-02-10 10:00:00", mode='"multi\nline, mode"'),
        cnr(4, ""),                                                        # no date: no day owns it
        cnr(5, "garbage"),
        cnr(6, "2026-02-30 10:00:00"),
        "2026-02-12 11:00:00,834",                                         # short row: the loader rejects it
        cnr(7, "2026-02-12T12:00:00.5"),
    ]
    return write(root / "Historical_Data" / "cnr_atlas_day_2026-02-10_to_2026-02-12.csv",
                 "\r\n".join(lines))                                       # CRLF, no final newline


def test_historical_day_extract(root, tmp_path, caplog):
    historical_cnr(root)
    source = DirectorySource(root)
    caplog.set_level(logging.INFO)
    dest = tmp_path / "d1.csv"
    assert source.extract_transactions("cnr", D1, dest) == 2
    assert dest.read_bytes().decode() == "\r\n".join(
        [CNR_HEADER, cnr(1, "2026-02-10 09:00:00"), cnr(3, "2026-02-10 10:00:00", mode='"multi\nline, mode"')]) + "\r\n"
    assert "3 without a usable cancel_date" in caplog.text
    table = parse_extract("cnr", D1, dest).table
    assert table["mode"].to_pylist() == ["CCC-CR", "multi\nline, mode"]

    dest = tmp_path / "d3.csv"
    assert source.extract_transactions("cnr", D3, dest) == 3
    result = parse_extract("cnr", D3, dest)
    assert result.report["rows_written"] == 2 and result.report["rejected_by_reason"] == {"wrong_field_count": 1}
    assert dest.read_bytes().endswith(b"12:00:00.5,834000000000000007,8340000000000000007,45530,CCC-CR\n")


def test_covered_day_without_rows_is_an_empty_extract(root, tmp_path):
    historical_cnr(root)
    dest = tmp_path / "d2.csv"
    assert DirectorySource(root).extract_transactions("cnr", D2, dest) == 0
    assert dest.read_bytes() == (CNR_HEADER + "\r\n").encode()
    assert parse_extract("cnr", D2, dest).report["rows_read"] == 0


def test_unassignable_records_are_reported(root):
    path = historical_cnr(root)
    found = DirectorySource(root).historical_unassignable("cnr")
    assert [(u.line, u.reason) for u in found] == [
        (6, "cancel_date is null"), (7, "cancel_date is not a date"), (8, "cancel_date is not a date")]
    assert all(u.file == str(path.resolve()) for u in found)


def test_available_days(root):
    historical_cnr(root)
    write(root / "Daily_Data" / "2026-03-01" / "cnr_atlas_day.csv", CNR_HEADER + "\n")
    write(root / "Daily_Data" / "2026-03-02" / "act_atlas_day.csv", ",".join(spec("act").names) + "\n")
    write(root / "Daily_Data" / "notes.txt", "not a day")
    days = DirectorySource(root).available_days("cnr")
    assert days == {D1, D2, D3, dt.date(2026, 3, 1), dt.date(2026, 3, 2)}
    assert DirectorySource(root).available_days("rfnd") == {dt.date(2026, 3, 1), dt.date(2026, 3, 2)}


def test_daily_folder_wins_over_historical(root, tmp_path):
    historical_cnr(root)
    write(root / "Daily_Data" / "2026-02-10" / "cnr_atlas_day.csv",
          CNR_HEADER + "\n" + cnr(9, "2026-02-10 01:00:00") + "\n")
    dest = tmp_path / "x.csv"
    assert DirectorySource(root).extract_transactions("cnr", D1, dest) == 1
    assert "834000000000000009" in dest.read_text()


def test_several_covering_files_are_concatenated_in_name_order(root, tmp_path):
    write(root / "Historical_Data" / "rfnd_atlas_a.csv", RFND_HEADER + "\n" + rfnd(1, "2026-02-10", "f") + "\n")
    write(root / "Historical_Data" / "rfnd_atlas_b.csv",
          "\ufeff" + RFND_HEADER + "\n" + rfnd(1, "2026-02-10", "t") + "\n" + rfnd(2, "2026-02-11") + "\n")
    dest = tmp_path / "x.csv"
    assert DirectorySource(root).extract_transactions("rfnd", D1, dest) == 2
    assert dest.read_text() == "\n".join([RFND_HEADER, rfnd(1, "2026-02-10", "f"), rfnd(1, "2026-02-10", "t")]) + "\n"


def test_historical_file_with_a_wrong_header_fails(root, tmp_path):
    write(root / "Historical_Data" / "rfnd_atlas_x.csv", RFND_HEADER.replace("cpc,refnd_date", "refnd_date,cpc") + "\n")
    with pytest.raises(SourceError, match=r"rfnd_atlas_x.csv: line 1: header is not the rfnd columns"):
        DirectorySource(root).extract_transactions("rfnd", D1, tmp_path / "x.csv")


def test_index_cache_on_disk_is_used_and_refreshed(root, tmp_path):
    path = write(root / "Historical_Data" / "rfnd_atlas_h.csv", RFND_HEADER + "\n" + rfnd(1, "2026-02-10") + "\n")
    cache = tmp_path / "cache"
    assert DirectorySource(root, cache_dir=cache).available_days("rfnd") == {D1}
    (index_file,) = cache.glob("*.index.json")
    stored = json.loads(index_file.read_text())
    assert stored["days"] == {"2026-02-10": [[len(RFND_HEADER) + 1, path.stat().st_size]]}

    # a changed file (size and mtime) is re-indexed, in memory and on disk
    write(path, RFND_HEADER + "\n" + rfnd(1, "2026-02-10") + "\n" + rfnd(2, "2026-02-11") + "\n")
    os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 10**9))
    assert DirectorySource(root, cache_dir=cache).available_days("rfnd") == {D1, D2}
    assert "2026-02-11" in json.loads(index_file.read_text())["days"]


def test_user_base_copy(root, tmp_path):
    body = "cpc,content_provider,service_name,last_billed_amount,tme_category,channel_desc,count\n" \
           '45530,2dayuk,"Svc, one",4.99,Light,ACTIVE,10\n45531,2dayuk,Svc two,0,Light,CCC-CR,3\n'
    write(root / "User_Base" / "NBS_BASE" / "20260210_NBS_Base.csv", body)
    dest = tmp_path / "ub.csv"
    assert DirectorySource(root).extract_user_base(D1, dest) == 2
    assert dest.read_text() == body
    with pytest.raises(SourceError, match=r"NBS_BASE/20260211_NBS_Base.csv does not exist"):
        DirectorySource(root).extract_user_base(D2, dest)


def test_unknown_kind(root, tmp_path):
    with pytest.raises(ValueError, match="unknown transaction kind"):
        DirectorySource(root).extract_transactions("xyz", D1, tmp_path / "x.csv")


def test_a_range_extract_gives_each_day_its_one_day_extract(root, tmp_path):
    historical_cnr(root)                                               # D1..D3, D2 without rows
    write(root / "Historical_Data" / "cnr_atlas_z.csv", CNR_HEADER + "\n" + cnr(8, "2026-02-12 13:00:00") + "\n")
    write(root / "Daily_Data" / "2026-02-13" / "cnr_atlas_day.csv", CNR_HEADER + "\n" + cnr(9, "2026-02-13 01:00:00") + "\n")
    days = [D1, D2, D3, dt.date(2026, 2, 13)]
    source = DirectorySource(root)
    counts = source.extract_transactions_days("cnr", days, lambda d: tmp_path / "range" / f"{d}.csv")
    for day in days:
        one = tmp_path / "one" / f"{day}.csv"
        assert counts[day] == source.extract_transactions("cnr", day, one)
        assert (tmp_path / "range" / f"{day}.csv").read_bytes() == one.read_bytes()
    assert counts == {D1: 2, D2: 0, D3: 4, dt.date(2026, 2, 13): 1}
    with pytest.raises(SourceError, match="no cnr extract for 2026-02-14"):
        source.extract_transactions_days("cnr", [D3, dt.date(2026, 2, 14)], lambda d: tmp_path / "x" / f"{d}.csv")
