"""Daily counters and exports on the golden scenario (legacy rule L15.3 with decisions D1, D2, D5, D7, D10, D11)."""

from __future__ import annotations

import csv
import datetime as dt

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from cvas.steps.counters import CounterInputError, build_daily_counters, compute_daily_counters, export_counters
from cvas.steps.exclusions import Exclusions, load_exclusions
from cvas.steps.master import master_csv_text, read_master_csv, MasterRow, period_of
from cvas.core.schemas import DEFAULT_EXCLUDED_SERVICES, KINDS, SERVICE_EXPORT_COLUMNS, spec
from tests.golden_scenario import DAY, MASTER, ROWS

NOW = dt.datetime(2026, 2, 11, 9, 30)


def write_partitions(layout, rows=ROWS, day=DAY):
    paths = {}
    for kind in KINDS:
        table = pa.Table.from_pylist(rows.get(kind, []), schema=spec(kind).schema)
        path = layout.transactions(kind, day)
        path.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(table, path)
        paths[kind] = path
    return paths


def by_cpc(table):
    return {r["cpc"]: r for r in table.to_pylist()}


def test_golden_counters_apply_our_decisions(layout):
    # A non-empty exclusion list that matches nobody: the legacy then dropped null-msisdn rows (legacy rule L-D12).
    excl = Exclusions(frozenset({"34699999999"}), frozenset({"834999999999999999"}))
    rows = by_cpc(compute_daily_counters(DAY, write_partitions(layout), excl, NOW))
    assert sorted(rows) == [38687, 41949, 44009, 45530, 45531, 99999]
    r = rows[38687]
    assert (r["ppd_count"], r["rev"]) == (1, 14.99)                      # the PPD purchase
    r = rows[41949]
    assert (r["reno_count"], r["dct_count"], r["rev"]) == (1, 1, 1.64)   # null channel: regular (decision D2); legacy 0
    r = rows[44009]
    assert r["act_count"] == 2        # WEB + null-channel ACT of 1003 (decisions D2, D5); legacy 1
    assert (r["act_free"], r["act_pay"]) == (0, 2)
    assert (r["reno_count"], r["cnr_count"]) == (1, 1)
    assert r["rfnd_count"] == 5       # sum of rfnd_cnt over all four refund rows (decision D1); legacy 2
    assert r["rfnd_amount"] == 8.20   # 3.28 + 1.64 * 3; legacy 3.28
    assert r["rev"] == 4.92           # two ACT + one RENO at 1.64; legacy 3.28
    r = rows[45530]
    assert (r["upg_count"], r["act_count"], r["rev"]) == (1, 0, 8.26)    # the UPGRADE activation
    r = rows[45531]
    assert (r["act_count"], r["act_free"], r["upg_dct_count"], r["rev"]) == (1, 1, 1, 0.0)
    r = rows[99999]
    assert r["upg_dct_count"] == 1 and r["dct_count"] == 0               # UPGRADE-only DCT keeps its row (decision D11)
    assert all(r["date"] == DAY and r["last_updated"] == NOW for r in rows.values())


def test_exclusions_drop_by_msisdn_and_tmuserid_but_never_nulls(layout):
    # 1002 excluded by msisdn (ACT/RENO) and tmuserid (CNR/RFND); 1004 by tmuserid only.
    excl = Exclusions(frozenset({"34600000002"}), frozenset({"834000000000000002", "834000000000000004"}))
    rows = by_cpc(compute_daily_counters(DAY, write_partitions(layout), excl, NOW))
    assert rows[44009]["act_count"] == 1                  # only 1003 (null msisdn) is left
    assert rows[44009]["reno_count"] == 0
    assert rows[44009]["cnr_count"] == 0
    assert rows[44009]["rfnd_count"] == 2                 # the two null-sbnid refunds of other users
    assert rows[44009]["rev"] == 1.64
    assert 41949 not in rows                              # its RENO and DCT belong to an excluded user


def test_exclusion_list_both_formats(tmp_path):
    headered = tmp_path / "a.csv"
    headered.write_text("msisdn,tmuserid\n34600000002,834000000000000002\n34600000003,\n")
    legacy = tmp_path / "b.csv"
    legacy.write_text("34600000002\n34600000003\n")
    a, b = load_exclusions(headered), load_exclusions(legacy)
    assert a.msisdn == b.msisdn == {"34600000002", "34600000003"}
    assert a.tmuserid == {"834000000000000002"} and b.tmuserid == frozenset()
    bad = tmp_path / "c.csv"
    bad.write_text("msisdn,tmuserid\n346000x0002,\n")
    with pytest.raises(ValueError, match=r"c.csv: line 2: msisdn is not a number"):
        load_exclusions(bad)
    assert load_exclusions(tmp_path / "absent.csv").msisdn == frozenset()


def test_a_day_without_transactions_is_an_empty_counter_file(layout, tmp_path):
    paths = write_partitions(layout, rows={})
    out = tmp_path / "c.parquet"
    assert build_daily_counters(DAY, paths, Exclusions(), out, layout.staging, NOW) == 0
    assert pq.read_table(out).num_rows == 0


def test_missing_partition_is_an_error_not_an_empty_day(layout):
    paths = write_partitions(layout)
    paths["rfnd"].unlink()
    with pytest.raises(CounterInputError, match="rfnd"):
        compute_daily_counters(DAY, paths, Exclusions(), NOW)


def master_table(tmp_path):
    rows = [MasterRow(c, n, cat, period_of(model), price) for c, n, cat, model, price in MASTER]
    path = tmp_path / "MASTERCPC.csv"
    path.write_text(master_csv_text(sorted(rows, key=lambda r: r.cpc)))
    return read_master_csv(path)


def test_exports_keep_every_cpc_and_drop_excluded_services_from_the_csv(layout, tmp_path):
    daily = layout.daily_counters(DAY)
    build_daily_counters(DAY, write_partitions(layout), Exclusions(), daily, layout.staging, NOW)
    stats = export_counters([daily], master_table(tmp_path), DEFAULT_EXCLUDED_SERVICES,
                            layout.counters_cpc, layout.counters_service, layout.staging)
    cpc = pq.read_table(layout.counters_cpc)
    assert cpc.column_names[:3] == ["date", "cpc", "act_count"] and cpc.num_columns == 15
    assert sorted(cpc.column("cpc").to_pylist()) == [38687, 41949, 44009, 45530, 45531, 99999]   # decision D7
    with open(layout.counters_service, newline="") as fh:
        rows = list(csv.reader(fh))
    assert tuple(rows[0]) == SERVICE_EXPORT_COLUMNS
    # sorted by (date, service_name, cpc); Movistar Apple Music excluded; 99999 unmapped → UNKNOWN
    assert [(r[1], r[3]) for r in rows[1:]] == [("Abaco", "44009"), ("Extra juegos", "38687"),
                                                ("Top Video", "41949"), ("UNKNOWN", "99999")]
    abaco = dict(zip(rows[0], rows[1]))
    assert abaco["date"] == "2026-02-10" and abaco["tme_category"] == "Education"
    assert (abaco["cpc_period"], abaco["cpc_price"], abaco["rev"], abaco["rfnd_amount"]) == ("7", "1.64", "4.92", "8.2")
    assert stats == {"days": 1, "cpc_rows": 6, "service_rows": 4}
    assert not any(layout.staging.rglob("*")), "staging is left empty"


def test_service_names_with_commas_are_quoted(layout, tmp_path):
    daily = layout.daily_counters(DAY)
    build_daily_counters(DAY, write_partitions(layout), Exclusions(), daily, layout.staging, NOW)
    rows = [MasterRow(44009, "TP Seman EA 0,99e", "Games", 7, 0.99)]
    path = tmp_path / "m.csv"
    path.write_text(master_csv_text(rows))
    assert '44009,"TP Seman EA 0,99e",Games,7,0.99' in path.read_text()
    export_counters([daily], read_master_csv(path), (), layout.counters_cpc, layout.counters_service, layout.staging)
    with open(layout.counters_service, newline="") as fh:
        parsed = list(csv.reader(fh))
    assert all(len(r) == 18 for r in parsed)            # decision D10: quoting keeps 18 fields
    assert [r[1] for r in parsed if r[3] == "44009"] == ["TP Seman EA 0,99e"]


def test_days_counted_together_equal_each_day_alone_and_a_bad_day_fails_alone(layout):
    """build_counters_days counts several days in one query: each day's file is what its own
    one-day count gives, and a day whose partition is refused fails alone (its group is counted
    again a day at a time), naming the day, while the days beside it are published."""
    from cvas.core.batch import DaysFailed
    from cvas.steps.counters import build_counters_days

    days = [DAY + dt.timedelta(days=i) for i in range(4)]
    shifted = {day: {kind: [dict(r, **{spec(kind).date_column: r[spec(kind).date_column] + (day - DAY)})
                            for r in ROWS.get(kind, [])] for kind in KINDS} for day in days}
    paths = {day: write_partitions(layout, shifted[day], day) for day in days}
    bad = days[2]
    rfnd = pq.read_table(paths[bad]["rfnd"])
    assert rfnd.num_rows
    counts = [2**40] + rfnd["rfnd_cnt"].to_pylist()[1:]
    pq.write_table(rfnd.set_column(rfnd.schema.get_field_index("rfnd_cnt"), "rfnd_cnt", pa.array(counts, pa.int64())),
                   paths[bad]["rfnd"])
    layout.staging.mkdir(parents=True, exist_ok=True)

    with pytest.raises(DaysFailed) as err:
        build_counters_days(layout, days, lambda day: paths[day], Exclusions(), group=4)
    assert list(err.value.failures) == [bad]
    assert "rfnd_cnt outside its plausible range" in str(err.value)
    assert not layout.daily_counters(bad).exists()
    for day in days:
        if day == bad:
            continue
        alone = compute_daily_counters(day, paths[day], Exclusions(), NOW)
        published = pq.read_table(layout.daily_counters(day))
        assert published.num_rows == alone.num_rows > 0
        assert published.drop(["last_updated"]).equals(alone.drop(["last_updated"]))
        assert set(published["date"].to_pylist()) == {day}
