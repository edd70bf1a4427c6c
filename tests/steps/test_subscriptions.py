"""The subscription view (legacy rule L8.3 with decisions D2, D3, D4, D6, D9) over real Parquet and DuckDB."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict

import luigi
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from cvas.core import provenance
from cvas.core.schemas import KINDS, spec
from cvas.steps.subscriptions import (
    SUBSCRIPTION_SCHEMA,
    SubscriptionViewError,
    build_subscription_view,
    check_view_file,
    read_view_table,
)
from cvas.core.layout import as_of_days, parts
from cvas.core.freshness import state
from tests.golden_scenario import DAY, ROWS

D = dt.date(2026, 3, 1)  # the stories below start on this day


def at(day: dt.date, hh: int = 12, mm: int = 0, offset: int = 0) -> dt.datetime:
    return dt.datetime.combine(day + dt.timedelta(days=offset), dt.time(hh, mm))


def sub_row(kind: str, sub_id: int, when: dt.datetime, cpc: int, *, channel=None, rev=None, act_date=None,
            user: str = "834100000000000000", msisdn: str | None = "34611111111") -> dict:
    row = {"tmuserid": user, "msisdn": msisdn, "cpc": cpc, "trans_type_id": spec(kind).trans_type_id,
           "trans_date": when, "act_date": act_date or when, "reno_date": None, "camp_name": "normal",
           "subscription_id": sub_id}
    if kind in ("act", "reno"):
        row.update(channel_id=1, channel_act=channel, rev=rev)
    elif kind == "dct":
        row["channel_dct"] = channel
    return row


def cnr_row(sub_id: int, when: dt.datetime, cpc: int, mode: str = "CCC-CR") -> dict:
    return {"cancel_date": when, "sbn_id": sub_id, "tmuserid": "834100000000000000", "cpc": cpc, "mode": mode}


def write_events(layout, rows: dict[str, list[dict]], through: dt.date | None = None) -> None:
    """One partition per kind for every day from the first event to the last (or `through`),
    empty ones included, as the loader publishes them: the view needs every day up to its as-of."""
    by_day: dict[dt.date, dict[str, list[dict]]] = defaultdict(lambda: defaultdict(list))
    for kind, kind_rows in rows.items():
        for row in kind_rows:
            by_day[row[spec(kind).date_column].date()][kind].append(row)
    first, last = min(by_day), max([*by_day, *([through] if through else [])])
    for i in range((last - first).days + 1):
        if first + dt.timedelta(days=i) not in by_day and not layout.transactions("act", first + dt.timedelta(days=i)).exists():
            by_day[first + dt.timedelta(days=i)] = {}
    for day, kinds in by_day.items():
        for kind in KINDS:
            path = layout.transactions(kind, day)
            path.parent.mkdir(parents=True, exist_ok=True)
            existing = pq.read_table(path).to_pylist() if path.exists() else []
            pq.write_table(pa.Table.from_pylist(existing + kinds.get(kind, []), schema=spec(kind).schema), path)
            # with its provenance sidecar, as LoadTransactions records it (no landing copy here)
            provenance.record(layout, path, inputs={"raw": layout.raw(kind, day)}, params={}, rows=None)


def read_view(path) -> dict[int, dict]:
    """A view folder's rows by id; each part holds the 34 columns, sorted by subscription_id."""
    assert path.is_dir() and parts(path), f"{path}: a folder of parts"
    for part in parts(path).values():
        table = pq.ParquetFile(part).read()
        assert table.schema.equals(SUBSCRIPTION_SCHEMA)
        ids = table.column("subscription_id").to_pylist()
        assert ids == sorted(ids), "sorted by subscription_id"
    return {r["subscription_id"]: r for r in read_view_table(path).to_pylist()}


def digest(path) -> str:
    """The bytes of a view or state: every part's name and hash."""
    return provenance.file_hash(path)


def test_golden_scenario_with_our_decisions(layout):
    write_events(layout, ROWS)
    stats = build_subscription_view(layout, DAY)
    assert stats["rows"] == 4 and stats["latest"] is True
    assert stats["status"] == {"Active": 2, "Cancelled": 1, "Deactivated": 1}
    view = read_view(layout.subscriptions(DAY))
    # 1005 has only an UPGRADE DCT: no ACT/RENO, so it is not in the view (the driving set)
    assert sorted(view) == [1001, 1002, 1003, 1004]

    s = view[1001]  # ORGANIC free ACT at 10:00, UPGRADE ACT 8.26 at 12:00, UPGRADE DCT of the old CPC
    assert s["cpc_list"] == [45531, 45530] and s["cpc_count"] == 2          # as the legacy
    assert (s["first_cpc"], s["current_cpc"]) == (45531, 45530)
    assert s["has_upgraded"] is True                                         # a real UPGRADE ACT (decision D4)
    assert (s["upgrade_date"], s["upgraded_to_cpc"]) == (dt.datetime(2026, 2, 10, 12), 45530)
    assert s["activation_channel"] == "ORGANIC" and s["activation_revenue"] == 0.0
    assert s["total_revenue"] == 0.0                                         # as the legacy
    assert s["total_revenue_with_upgrade"] == 8.26                           # as the legacy
    assert s["subscription_status"] == "Active"                              # an UPGRADE DCT does not end it
    assert s["end_date"] is None and s["lifetime_days"] == 0                 # to the as-of date (decision D6)

    s = view[1002]  # WEB ACT 1.64, RENO 1.64, CNR at 16:00, two refunds (cnt 2 + 1)
    assert s["has_upgraded"] is False
    assert s["upgrade_date"] is None and s["upgraded_to_cpc"] is None        # legacy: set (legacy rule L-D17)
    assert s["total_revenue"] == 3.28                                        # as the legacy
    assert s["total_revenue_with_upgrade"] == 3.28                           # legacy 4.92: counted twice (decision D4)
    assert s["subscription_status"] == "Cancelled"                           # no DCT: the CNR decides (decision D3)
    assert s["cancellation_mode"] == "CCC-CR" and s["end_date"] == dt.datetime(2026, 2, 10, 16)
    assert s["lifetime_days"] == 0                                           # as the legacy
    assert s["refund_count"] == 3                                            # Σ rfnd_cnt (decision D9); legacy 1 row
    assert s["total_refunded"] == 4.92                                       # both refunds (decision D1); legacy 1.64
    assert s["last_refund_date"] == dt.datetime(2026, 2, 10)
    assert (s["renewal_count"], s["renewal_revenue"]) == (1, 1.64)
    assert s["last_activity_date"] == dt.datetime(2026, 2, 10, 23)           # the renewal

    s = view[1003]  # empty msisdn, empty channel
    assert s["msisdn"] is None and s["activation_channel"] is None           # as the legacy
    assert s["subscription_status"] == "Active" and s["activation_revenue"] == 1.64

    s = view[1004]  # starts with a RENO (act_date 2025-12-01), then a DCT with a null channel
    assert s["missing_act_record"] is True                                   # as the legacy
    assert s["activation_date"] == dt.datetime(2025, 12, 1, 8)
    assert s["activation_month"] == "2025-12"                                # legacy 2026-02 (legacy rule L-D17)
    assert s["activation_trans_date"] == dt.datetime(2026, 2, 10, 8)         # the first transaction
    assert s["activation_revenue"] == 0.0 and s["total_revenue"] == 1.64
    assert s["subscription_status"] == "Deactivated"                         # legacy Active: null channel (decision D2)
    assert s["deactivation_mode"] is None and s["end_date"] == dt.datetime(2026, 2, 10, 18)
    assert s["lifetime_days"] == 71                                          # 2025-12-01 → 2026-02-10

    # the legacy path holds the same file (a hard link, replaced atomically)
    assert digest(layout.subscriptions_latest) == digest(layout.subscriptions(DAY))
    # legacy readers open the path as one table: DuckDB and pandas read the folder of parts as it is
    import duckdb
    import pandas as pd

    names = [d[0] for d in duckdb.sql(f"select * from read_parquet('{layout.subscriptions_latest}')").description]
    assert names == SUBSCRIPTION_SCHEMA.names
    assert len(pd.read_parquet(layout.subscriptions_latest)) == 4
    assert not any(layout.staging.rglob("*.parquet")), "staging is left empty"


def test_as_of_ignores_later_events_and_rebuilds_identically(layout, tmp_path):
    later = {
        "act": [sub_row("act", 1003, at(DAY, offset=1), 45530, channel="UPGRADE", rev=8.26,
                        user="834000000000000003", msisdn=None)],
        "reno": [sub_row("reno", 1002, at(DAY, offset=7), 44009, channel="WEB", rev=1.64)],
        "dct": [sub_row("dct", 1001, at(DAY, offset=3), 45530, channel="CCC-CR")],
        "cnr": [cnr_row(1003, at(DAY, offset=2), 44009)],
        "rfnd": [{"tmuserid": "834000000000000004", "cpc": 41949, "refnd_date": at(DAY, 0, offset=2),
                  "rfnd_amount": 1.64, "rfnd_cnt": 1, "sbnid": 1004, "instant_rfnd": "f"}],
    }
    write_events(layout, ROWS)
    write_events(layout, later)
    build_subscription_view(layout, DAY + dt.timedelta(days=7), keep_days=30)
    build_subscription_view(layout, DAY, keep_days=30)
    first = digest(layout.subscriptions(DAY))

    # the same as-of on a root holding only the golden day: later events changed nothing
    from cvas.core.layout import Layout

    only = Layout(tmp_path / "only")
    write_events(only, ROWS)
    build_subscription_view(only, DAY)
    assert digest(only.subscriptions(DAY)) == first

    # a second build of the same as-of is byte-identical
    build_subscription_view(layout, DAY, keep_days=30)
    assert digest(layout.subscriptions(DAY)) == first

    # the later view sees them
    view = read_view(layout.subscriptions(DAY + dt.timedelta(days=7)))
    assert view[1001]["subscription_status"] == "Deactivated" and view[1001]["lifetime_days"] == 3
    assert view[1002]["renewal_count"] == 2 and view[1002]["lifetime_days"] == 0   # still ends at its CNR
    assert view[1003]["has_upgraded"] is True and view[1003]["subscription_status"] == "Cancelled"
    assert view[1003]["lifetime_days"] == 2
    assert view[1004]["refund_count"] == 1
    # the latest stays the newest as-of although an older one was built last
    assert digest(layout.subscriptions_latest) == digest(layout.subscriptions(DAY + dt.timedelta(days=7)))
    assert provenance.read(layout, layout.subscriptions_latest)["as_of"] == str(DAY + dt.timedelta(days=7))


def test_a_subscription_that_upgrades(layout):
    a, b = 44009, 45530
    write_events(layout, {
        "act": [sub_row("act", 2001, at(D, 9), a, channel="WEB", rev=1.0),
                sub_row("act", 2001, at(D, 9, offset=9), b, channel="UPGRADE", rev=3.0),
                # free activation and upgrade in the same second: regular first, UPGRADE latest
                sub_row("act", 2002, at(D, 10), 41949, channel="ORGANIC", rev=0.0),
                sub_row("act", 2002, at(D, 10), 45531, channel="UPGRADE", rev=2.0)],
        "reno": [sub_row("reno", 2001, at(D, 9, offset=7), a, channel="WEB", rev=1.0),
                 sub_row("reno", 2001, at(D, 9, offset=16), b, channel="WEB", rev=3.0)],
        "dct": [sub_row("dct", 2001, at(D, 9, offset=9), a, channel="UPGRADE")],
    }, through=D + dt.timedelta(days=20))
    before = read_view(build_and_path(layout, D + dt.timedelta(days=8)))[2001]
    assert (before["has_upgraded"], before["upgrade_date"], before["upgraded_to_cpc"]) == (False, None, None)
    assert before["cpc_list"] == [a] and before["current_cpc"] == a
    assert before["total_revenue"] == before["total_revenue_with_upgrade"] == 2.0

    view = read_view(build_and_path(layout, D + dt.timedelta(days=20)))
    s = view[2001]
    assert s["cpc_list"] == [a, b] and (s["first_cpc"], s["current_cpc"]) == (a, b)
    assert (s["has_upgraded"], s["upgrade_date"], s["upgraded_to_cpc"]) == (True, at(D, 9, offset=9), b)
    assert s["activation_revenue"] == 1.0 and s["renewal_revenue"] == 4.0
    assert s["total_revenue"] == 5.0                      # activation + renewals
    assert s["total_revenue_with_upgrade"] == 8.0         # + the UPGRADE charge, activation once
    assert s["subscription_status"] == "Active"           # the UPGRADE DCT of the old CPC does not end it
    assert s["lifetime_days"] == 20
    s = view[2002]
    assert (s["first_cpc"], s["current_cpc"], s["cpc_list"]) == (41949, 45531, [41949, 45531])
    assert s["activation_channel"] == "ORGANIC" and s["activation_revenue"] == 0.0
    assert s["total_revenue_with_upgrade"] == 2.0


def build_and_path(layout, as_of):
    build_subscription_view(layout, as_of)
    return layout.subscriptions(as_of)


def test_a_subscription_that_starts_with_a_renewal(layout):
    started = dt.datetime(2025, 11, 20, 7, 30)            # the activation happened before the history
    write_events(layout, {"reno": [sub_row("reno", 3001, at(D, 6), 45589, channel="SMS", rev=1.64, act_date=started),
                                   sub_row("reno", 3001, at(D, 6, offset=7), 45589, channel="SMS", rev=1.64,
                                           act_date=started)]}, through=D + dt.timedelta(days=10))
    s = read_view(build_and_path(layout, D + dt.timedelta(days=10)))[3001]
    assert s["missing_act_record"] is True
    assert s["activation_date"] == started and s["activation_month"] == "2025-11"
    assert s["activation_trans_date"] == at(D, 6)                  # no ACT: the first transaction
    assert s["activation_channel"] == "SMS" and s["activation_revenue"] == 0.0
    assert (s["renewal_count"], s["renewal_revenue"]) == (2, 3.28)
    assert (s["first_renewal_date"], s["last_renewal_date"]) == (at(D, 6), at(D, 6, offset=7))
    assert s["last_activity_date"] == at(D, 6, offset=7)
    assert s["total_revenue"] == s["total_revenue_with_upgrade"] == 3.28
    assert s["lifetime_days"] == (D + dt.timedelta(days=10) - started.date()).days


def test_a_subscription_cancelled_then_deactivated(layout):
    write_events(layout, {
        "act": [sub_row("act", 4001, at(D, 8), 44009, channel="WEB", rev=1.64)],
        "cnr": [cnr_row(4001, at(D, 15, offset=2), 44009, mode="CCC-CR")],
        "dct": [sub_row("dct", 4001, at(D, 3, offset=9), 44009, channel="SYSTEM")],
    }, through=D + dt.timedelta(days=9))
    s = read_view(build_and_path(layout, D + dt.timedelta(days=1)))[4001]
    assert (s["subscription_status"], s["end_date"], s["lifetime_days"]) == ("Active", None, 1)
    s = read_view(build_and_path(layout, D + dt.timedelta(days=5)))[4001]
    assert s["subscription_status"] == "Cancelled"                 # a pending request
    assert (s["end_date"], s["lifetime_days"]) == (at(D, 15, offset=2), 2)
    s = read_view(build_and_path(layout, D + dt.timedelta(days=9)))[4001]
    assert s["subscription_status"] == "Deactivated"               # the DCT wins over the CNR (decision D3)
    assert (s["deactivation_date"], s["deactivation_mode"]) == (at(D, 3, offset=9), "SYSTEM")
    assert s["cancellation_date"] == at(D, 15, offset=2)           # still reported
    assert (s["end_date"], s["lifetime_days"]) == (at(D, 3, offset=9), 9)


def test_retention_keeps_the_newest_days_and_the_latest(layout):
    write_events(layout, {"act": [sub_row("act", 5000 + i, at(D, 9, offset=i), 44009, rev=1.0) for i in range(6)]},
                 through=D + dt.timedelta(days=5))
    for i in (0, 1, 2, 5, 4):
        stats = build_subscription_view(layout, D + dt.timedelta(days=i), keep_days=3)
    assert stats["latest"] is False
    assert as_of_days(layout) == {D + dt.timedelta(days=i) for i in (4, 5)}     # newest is D+5: keep D+3..D+5
    assert provenance.read(layout, layout.subscriptions_latest)["as_of"] == str(D + dt.timedelta(days=5))
    assert len(read_view(layout.subscriptions_latest)) == 6
    assert not (layout.root / "_meta" / "subscriptions" / f"as_of={D}").exists(), "pruned sidecars go too"
    stats = build_subscription_view(layout, D + dt.timedelta(days=1), keep_days=3)  # outside: built, pruned
    assert stats["pruned"] == [str(D + dt.timedelta(days=1))]
    with pytest.raises(ValueError, match="at least 1"):
        build_subscription_view(layout, D, keep_days=0)


def test_a_young_root_and_events_without_a_subscription_id(layout):
    # only ACT files exist; an ACT without a subscription id has no lifecycle
    write_events(layout, {"act": [sub_row("act", 6001, at(D, 9), 44009, rev=1.0)]})
    for kind in ("reno", "dct", "cnr", "rfnd", "ppd"):
        for f in layout.transactions_root(kind).rglob("*.parquet"):
            f.unlink()
    path = layout.transactions("act", D)
    rows = pq.read_table(path).to_pylist() + [sub_row("act", None, at(D, 10), 44009, rev=1.0)]
    pq.write_table(pa.Table.from_pylist(rows, schema=spec("act").schema), path)
    assert sorted(read_view(build_and_path(layout, D))) == [6001]


def test_the_contract_check_refuses_a_bad_file(tmp_path):
    good = SUBSCRIPTION_SCHEMA.empty_table()
    path = tmp_path / "v.parquet"
    pq.write_table(good, path)
    check_view_file(path, 0)
    pq.write_table(good.drop_columns(["end_date"]), path)
    with pytest.raises(SubscriptionViewError, match="columns"):
        check_view_file(path, 0)
    row = {n: None for n in SUBSCRIPTION_SCHEMA.names} | {"subscription_id": 1, "subscription_status": "Active"}
    pq.write_table(pa.Table.from_pylist([row, row], schema=SUBSCRIPTION_SCHEMA), path)
    with pytest.raises(SubscriptionViewError, match="unique"):
        check_view_file(path, 2)
    pq.write_table(pa.Table.from_pylist([row | {"subscription_status": "ACTIVE"}], schema=SUBSCRIPTION_SCHEMA), path)
    with pytest.raises(SubscriptionViewError, match="status"):
        check_view_file(path, 1)


def test_the_task_rebuilds_when_a_day_is_reloaded(luigi_config, layout):
    from tasks.steps.subscriptions import SubscriptionView

    write_events(layout, ROWS)
    assert luigi.build([SubscriptionView(date=DAY)], local_scheduler=True, log_level="WARNING")
    assert state(layout, "subscriptions", DAY).fresh and SubscriptionView(date=DAY).complete()
    assert read_view(layout.subscriptions(DAY))[1003]["subscription_status"] == "Active"
    # a late DCT reloaded into the day's partition makes the view stale
    write_events(layout, {"dct": [sub_row("dct", 1003, at(DAY, 20), 44009, channel="SMS")]})
    assert not SubscriptionView(date=DAY).complete()
    assert luigi.build([SubscriptionView(date=DAY)], local_scheduler=True, log_level="WARNING")
    assert read_view(layout.subscriptions_latest)[1003]["subscription_status"] == "Deactivated"
    # a day far older than the newest view is outside the retention window: nothing to build
    luigi_config("cvas", "subscriptions_keep_days", 3)
    assert SubscriptionView(date=DAY - dt.timedelta(days=3)).complete()
    assert not SubscriptionView(date=DAY - dt.timedelta(days=2)).complete()
