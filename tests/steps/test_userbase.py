"""The NBS user base: golden snapshots in tests/golden/userbase → per-day files → the three legacy exports."""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

import luigi
import pyarrow.parquet as pq
import pytest

from cvas.core.schemas import DEFAULT_EXCLUDED_SERVICES
from cvas.steps.user_base import (
    SnapshotFormatError,
    aggregate_snapshot,
    build_user_base_daily,
    decode_snapshot,
    export_user_base,
    parse_snapshot,
)

from cvas.core.freshness import Settings, state

GOLDEN = Path(__file__).parents[1] / "golden" / "userbase"
DAY1, DAY2 = dt.date(2026, 2, 9), dt.date(2026, 2, 10)
SNAPSHOTS = {DAY1: GOLDEN / "20260209_NBS_Base_in.csv", DAY2: GOLDEN / "20260210_NBS_Base_latin1_in.csv"}
HEADER = "cpc,content_provider,service_name,last_billed_amount,tme_category,channel_desc,count\n"


def expected(by: str) -> bytes:
    return (GOLDEN / f"user_base_by_{by}_expected.csv").read_bytes()


def aggregate(layout, day):
    return build_user_base_daily(SNAPSHOTS[day], day, layout.user_base_daily(day), layout.staging)


def test_golden_snapshots_give_the_golden_exports(layout):
    info1, info2 = aggregate(layout, DAY1), aggregate(layout, DAY2)
    assert (info1["encoding"], info2["encoding"]) == ("utf-8", "cp1252")   # decided once per file
    assert info2["rows"] == 6 and info2["user_base"] == 110 + 55 + 38 + 27 + 31 + 4  # each row once, legacy rule L-D10
    stats = export_user_base(layout, DEFAULT_EXCLUDED_SERVICES)
    assert stats["mode"] == "rebuild" and stats["lines"] == {"service": 12, "category": 9, "cpc": 13}
    for by in ("service", "category", "cpc"):
        assert layout.user_base_export(by).read_bytes() == expected(by), by
    assert state(layout, "user_base_export", DAY2, settings=Settings(excluded_services=DEFAULT_EXCLUDED_SERVICES)).fresh
    assert not any(layout.staging.rglob("*.csv")), "staging is left empty"


def test_the_per_day_file_keeps_every_service_stripped_and_mapped(layout):
    table, info = aggregate_snapshot(SNAPSHOTS[DAY1], DAY1)
    rows = {(r["cpc"], r["service_name"]): (r["tme_category"], r["user_base"]) for r in table.to_pylist()}
    assert rows[(45589, "Top Music Tv")] == ("Music", 120)        # " Top Music Tv " stripped; 20.9 → 20
    assert rows[(44010, "Abaco Fotos")] == ("Edu_Ima", 5)         # " images " → Edu_Ima
    assert rows[(45336, "Deportes Ya")] == ("News_Sport", 7)      # SPORTS, compared in lower case
    assert rows[(43617, "Videos Tribuu")] == ("Kids", 0)          # -0.5 truncated toward zero
    assert rows[(45530, "Movistar Apple Music")] == ("Music", 40)  # excluded only in the exports
    assert info == {"encoding": "utf-8", "rows": 11, "bytes": SNAPSHOTS[DAY1].stat().st_size, "groups": 10,
                    "user_base": 100 + 20 + 50 + 5 + 30 + 7 + 40 + 11 + 26 + 0 + 3}


def test_a_new_day_is_appended_without_reading_the_others(layout):
    aggregate(layout, DAY1)
    assert export_user_base(layout, DEFAULT_EXCLUDED_SERVICES)["mode"] == "rebuild"
    assert not state(layout, "user_base_export", DAY2, settings=Settings(excluded_services=DEFAULT_EXCLUDED_SERVICES)).fresh
    aggregate(layout, DAY2)
    stats = export_user_base(layout, DEFAULT_EXCLUDED_SERVICES)
    assert (stats["mode"], stats["days_read"], stats["days"]) == ("append", 1, 2)
    for by in ("service", "category", "cpc"):
        assert layout.user_base_export(by).read_bytes() == expected(by), by    # same bytes as a rebuild
    # an older day re-aggregated (or backfilled) forces a rebuild from the per-day files
    aggregate(layout, DAY1)
    assert not state(layout, "user_base_export", DAY2, settings=Settings(excluded_services=DEFAULT_EXCLUDED_SERVICES)).fresh
    stats = export_user_base(layout, DEFAULT_EXCLUDED_SERVICES)
    assert (stats["mode"], stats["days_read"]) == ("rebuild", 2)
    assert layout.user_base_export("cpc").read_bytes() == expected("cpc")


def test_a_changed_keyword_list_applies_to_the_whole_history(layout):
    aggregate(layout, DAY1)
    aggregate(layout, DAY2)
    export_user_base(layout, DEFAULT_EXCLUDED_SERVICES)
    fewer = ("nubico", "challenge arena")                     # the list before 2026-01-14
    assert not state(layout, "user_base_export", DAY2, settings=Settings(excluded_services=fewer)).fresh
    stats = export_user_base(layout, fewer)
    assert stats["mode"] == "rebuild"
    text = layout.user_base_export("service").read_text(encoding="utf-8")
    assert "2026-02-09|Movistar Apple Music|Music|40\n" in text
    assert "2026-02-10|Movistar Apple Music|Music|38\n" in text
    assert "NUBICO" not in text


@pytest.mark.parametrize("body, message", [
    ("cpc,service_name,tme_category\n1,a,b\n", r"line 1: missing column\(s\) count"),
    ("", r"line 1: empty file"),
    (HEADER + "45589,p,Top,1,Music,ACTIVE,3\n893.0,p,X,1,Music,ACTIVE,3\n", r"line 3: cpc '893.0' is not an integer"),
    (HEADER + "45589,p,Top,1,Music,ACTIVE,abc\n", r"line 2: count 'abc' is not a finite, non-negative count"),
    (HEADER + "45589,p,Top,1,Music,ACTIVE,nan\n", r"line 2: count 'nan'"),
    (HEADER + "45589,p,Top,1,Music,ACTIVE\n", r"line 2: 6 fields, expected 7"),
    (HEADER + "45589,p,Top|Music,1,Music,ACTIVE,3\n", r"line 2: service_name 'Top\|Music' holds '\|'"),
    (HEADER + '45589,p,"Top\nMusic",1,Music,ACTIVE,3\n', r"line 3: service_name .* line break"),
])
def test_a_malformed_snapshot_fails_with_file_and_line(tmp_path, body, message):
    path = tmp_path / "20260209_NBS_Base.csv"
    path.write_text(body, encoding="utf-8")
    with pytest.raises(SnapshotFormatError, match=message) as err:
        parse_snapshot(path)
    assert str(path) in str(err.value)


def test_the_encoding_is_decided_once_per_file(tmp_path):
    assert decode_snapshot("Música".encode("utf-8")) == ("Música", "utf-8")
    assert decode_snapshot("\ufeffcpc".encode("utf-8")) == ("cpc", "utf-8")             # BOM dropped
    assert decode_snapshot("Música €".encode("cp1252")) == ("Música €", "cp1252")
    assert decode_snapshot(b"M\xfasica \x81") == ("Música \x81", "latin-1")            # 0x81: not cp1252
    # a blank line is no data; the rows around it count once
    path = tmp_path / "s.csv"
    path.write_bytes((HEADER + "1,p,Música,1,Music,ACTIVE,2\n\n2,p,Ñu,1,Kids,ACTIVE,3\n").encode("latin-1"))
    rows, info = parse_snapshot(path)
    assert rows == [(1, "Música", "Music", 2), (2, "Ñu", "Kids", 3)] and info["encoding"] == "cp1252"


def test_the_tasks_fetch_aggregate_and_export(luigi_config, layout, tmp_path):
    from tasks.steps.user_base import AggregateUserBase, ExportUserBase

    drops = tmp_path / "drops" / "User_Base" / "NBS_BASE"
    drops.mkdir(parents=True)
    for day, src in SNAPSHOTS.items():
        shutil.copyfile(src, drops / f"{day:%Y%m%d}_NBS_Base.csv")
    luigi_config("cvas", "source", "directory")
    luigi_config("directory_source", "root", tmp_path / "drops")
    luigi_config("cvas", "excluded_services", ",".join(DEFAULT_EXCLUDED_SERVICES))
    assert luigi.build([ExportUserBase(date=DAY1), ExportUserBase(date=DAY2)], local_scheduler=True,
                       log_level="WARNING")
    assert layout.user_base_snapshot(DAY2).read_bytes() == SNAPSHOTS[DAY2].read_bytes()   # landed as delivered
    assert pq.read_metadata(layout.user_base_daily(DAY2)).num_rows == 6
    for by in ("service", "category", "cpc"):
        assert layout.user_base_export(by).read_bytes() == expected(by), by
    assert ExportUserBase(date=DAY2).complete()
    # a re-fetched snapshot makes its day stale, and the exports with it
    layout.user_base_snapshot(DAY1).write_text(HEADER + "44009,abaco,Abaco,1.64,Education,ACTIVE,1\n")
    assert not AggregateUserBase(date=DAY1).complete() and not ExportUserBase(date=DAY1).complete()
    assert luigi.build([ExportUserBase(date=DAY1)], local_scheduler=True, log_level="WARNING")
    assert ExportUserBase(date=DAY2).complete()
    assert "2026-02-09|Abaco|Edu_Ima|1\n" in layout.user_base_export("service").read_text(encoding="utf-8")
    # the keyword list comes from luigi.cfg
    luigi_config("cvas", "excluded_services", "nubico")
    assert not ExportUserBase(date=DAY2).complete()
