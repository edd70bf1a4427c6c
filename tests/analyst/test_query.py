"""`cvas query` on the golden scenario: view rows, timeline, totals, the same user's purchases; no PII in logs."""

from __future__ import annotations

import datetime as dt
import logging

import pytest

from cvas.analyst.query import QueryError, format_investigation, investigate, normalize_msisdn
from cvas.steps.subscriptions import build_subscription_view
from tests.golden_scenario import DAY, ROWS
from tests.steps.test_subscriptions import at, sub_row, write_events

pytestmark = pytest.mark.slow   # see pyproject: make test-fast leaves it out

PPD_BUYER = {"tmuserid": "834000000000000002", "msisdn": "34600000002", "cpc": 38687, "trans_type_id": 4,
             "channel_id": 3, "trans_date": at(DAY, 20), "act_date": at(DAY, 20), "subscription_id": None,
             "rev": 2.99}


@pytest.fixture
def golden(layout):
    write_events(layout, ROWS)
    write_events(layout, {"ppd": [PPD_BUYER],
                          "reno": [sub_row("reno", 1002, at(DAY, 23, offset=7), 44009, channel="WEB", rev=1.64,
                                           user="834000000000000002", msisdn="34600000002")]})
    build_subscription_view(layout, DAY, keep_days=30)
    build_subscription_view(layout, DAY + dt.timedelta(days=7), keep_days=30)
    return layout


def test_a_subscription_its_timeline_and_totals(golden):
    inv = investigate(golden, subscription_id="1002")
    assert inv.view_as_of == str(DAY + dt.timedelta(days=7))         # the latest view
    (sub,) = inv.subscriptions.to_pylist()
    assert (sub["subscription_id"], sub["renewal_count"], sub["subscription_status"]) == (1002, 2, "Cancelled")
    events = [(e["transaction_type"], e["trans_date"]) for e in inv.timeline.to_pylist()]
    assert events == [("RFND", dt.datetime(2026, 2, 10)), ("RFND", dt.datetime(2026, 2, 10)),
                      ("ACT", at(DAY, 9)), ("CNR", at(DAY, 16)), ("RENO", at(DAY, 23)),
                      ("RENO", at(DAY, 23, offset=7))]
    (t,) = inv.totals.to_pylist()
    assert (t["act_rows"], t["reno_rows"], t["dct_rows"], t["cnr_rows"], t["rfnd_rows"]) == (1, 2, 0, 1, 2)
    assert (t["refunded_charges"], t["revenue"], t["refunded"]) == (3, 4.92, 4.92)
    # the same user's one-off purchases (PPD) and refunds without a subscription
    assert [(e["transaction_type"], e["rev"]) for e in inv.user_events.to_pylist()] == [("PPD", 2.99)]
    text = format_investigation(inv)
    assert "-- subscription 1002 --" in text and "tmuserid                    834000000000000002" in text
    assert "revenue 4.92 EUR, refunded 4.92 EUR" in text and "PPD revenue 2.99 EUR" in text


def test_as_of_uses_that_view_and_hides_later_events(golden):
    inv = investigate(golden, subscription_id=1002, as_of=DAY)
    assert inv.view_as_of == str(DAY)
    assert inv.subscriptions.column("renewal_count").to_pylist() == [1]
    assert inv.totals.column("reno_rows").to_pylist() == [1]
    assert inv.user_events.num_rows == 1 and inv.user_events.column("trans_date").to_pylist() == [at(DAY, 20)]
    with pytest.raises(QueryError, match="no subscription view as of 2026-02-09"):
        investigate(golden, subscription_id=1002, as_of=DAY - dt.timedelta(days=1))


def test_by_user_ids_and_an_id_outside_the_view(golden):
    assert investigate(golden, tmuserid="834000000000000001").subscriptions.column("subscription_id").to_pylist() \
        == [1001]
    inv = investigate(golden, msisdn="600000004")                     # 34 is prefixed
    assert inv.value == "34600000004" and inv.totals.column("subscription_id").to_pylist() == [1004]
    inv = investigate(golden, subscription_id=1005)                   # only an UPGRADE DCT: not in the view
    assert inv.subscriptions.num_rows == 0 and inv.timeline.column("transaction_type").to_pylist() == ["DCT"]
    # a value that would be SQL if it were formatted in is only ever a parameter
    assert investigate(golden, tmuserid="1' or '1'='1").subscriptions.num_rows == 0


def test_bad_searches(golden):
    with pytest.raises(QueryError, match="exactly one"):
        investigate(golden)
    with pytest.raises(QueryError, match="exactly one"):
        investigate(golden, subscription_id=1, tmuserid="2")
    with pytest.raises(QueryError, match="integer"):
        investigate(golden, subscription_id="1002 or 1=1")
    with pytest.raises(QueryError, match="digits"):
        normalize_msisdn("6000x0004")
    assert normalize_msisdn("+34 600 000 004") == "34600000004"


def test_the_cli_prints_to_the_terminal_and_logs_no_pii(golden, luigi_config, capsys, caplog):
    from tasks.cli import main

    with caplog.at_level(logging.DEBUG):
        assert main(["-v", "query", "--msisdn", "34600000002"]) == 0
    out = capsys.readouterr().out
    assert "-- subscription 1002 --" in out and "834000000000000002" in out
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "query by msisdn: 1 subscription(s)" in logged
    assert "34600000002" not in logged and "834000000000000002" not in logged
    assert main(["query", "--subscription-id", "x"]) == 1
    assert "a subscription id is an integer" in capsys.readouterr().err


def test_a_simulated_subscription_agrees_with_its_timeline(luigi_config, tmp_path):
    """End to end on the simulated Nova: fetch, load, view, user base; then query subscriptions
    and check the view's figures against their own timelines."""
    import luigi

    from cvas.core.layout import Layout
    from cvas.core.schemas import KINDS
    from cvas.simulator.simulate import simulate
    from tasks.steps.subscriptions import SubscriptionView
    from tasks.steps.transactions import LoadTransactions
    from tasks.steps.user_base import ExportUserBase

    start, days = dt.date(2026, 3, 1), 3
    end = start + dt.timedelta(days=days - 1)
    nova = simulate(tmp_path / "nova", start, days, new_per_day=20, seed=5)
    luigi_config("cvas", "source", "simulated")
    luigi_config("simulated_source", "database", nova.database)
    luigi_config("cvas", "workers", 1)
    loads = [LoadTransactions(date=start + dt.timedelta(days=i), kind=k) for i in range(days) for k in KINDS]
    assert luigi.build(loads + [SubscriptionView(date=end), ExportUserBase(date=end)], local_scheduler=True,
                       log_level="WARNING")
    layout = Layout(tmp_path / "data")
    assert layout.user_base_export("cpc").read_text().startswith("date|cpc|User_Base\n")
    view = read_view_table(layout)
    # one subscription of each interesting shape the simulation produced
    picks = {}
    for row in view:
        for shape in ("upgraded", "missing_act", "refunded", "deactivated", "plain"):
            if shape not in picks and {
                "upgraded": row["has_upgraded"], "missing_act": row["missing_act_record"],
                "refunded": row["refund_count"] > 0, "deactivated": row["subscription_status"] == "Deactivated",
                "plain": True}[shape]:
                picks[shape] = row
    assert {"upgraded", "missing_act", "plain"} <= set(picks)
    for shape, row in picks.items():
        inv = investigate(layout, subscription_id=row["subscription_id"])
        assert inv.subscriptions.to_pylist() == [row], shape
        (t,) = inv.totals.to_pylist()
        assert t["reno_rows"] == row["renewal_count"], shape
        assert t["revenue"] == pytest.approx(row["total_revenue_with_upgrade"]), shape
        assert t["refunded"] == pytest.approx(row["total_refunded"]), shape
        assert t["refunded_charges"] == row["refund_count"], shape


def read_view_table(layout):
    import pyarrow.parquet as pq

    return pq.read_table(layout.subscriptions_latest).to_pylist()
