"""The simulated Nova: determinism, the scale knob, the legacy behaviours it reproduces, the Excel master."""

from __future__ import annotations

import csv
import datetime as dt
import re

import duckdb
import pytest
from openpyxl import load_workbook

from cvas.core.schemas import DEFAULT_EXCLUDED_SERVICES
from cvas.simulator.simulate import CATALOGUE, simulate

START = dt.date(2025, 10, 6)
NOVA_TABLES = ("telefonicaes_sub_mgr_fact", "channel_dim", "delaydcttlog_v1_0_0_fact", "refund_v1_0_0_fact",
               "sim_cpc", "sim_subscription", "sim_meta")


@pytest.fixture(scope="module")
def nova(simulated_nova):
    con = duckdb.connect(str(simulated_nova.database), read_only=True)
    yield con
    con.close()


def cpc_of(alias: str = "") -> str:
    """SQL: the cpc= value of generic_act_info as a number."""
    return f"cast(split_part(split_part(';' || {alias}generic_act_info, ';cpc=', 2), ';', 1) as bigint)"


def one(con, sql, params=None):
    return con.execute(sql, params or []).fetchone()[0]


def table_contents(path):
    con = duckdb.connect(str(path), read_only=True)
    try:
        return {t: con.execute(f"select * from {t}").fetchall() for t in NOVA_TABLES}
    finally:
        con.close()


def master_sheet(path):
    wb = load_workbook(path, read_only=True)
    ws = wb.worksheets[0]
    rows = list(ws.iter_rows(values_only=True))
    wb.close()
    return wb.sheetnames[0], rows[0], [dict(zip(rows[0], r)) for r in rows[1:]]


# -- the simulation as a whole ------------------------------------------------------------

def test_info_names_the_files_and_counts_the_rows(simulated_nova, nova):
    info = simulated_nova
    assert info.database.name == "nova.duckdb" and info.master_xlsx.name == "Master_CPCs.xlsx"
    assert info.exclusions.name == "Users_No_Limits.csv"
    assert (info.start, info.end, info.seed, info.new_per_day) == (START, START + dt.timedelta(days=2), 7, 20)
    assert info.days == [START, START + dt.timedelta(days=1), START + dt.timedelta(days=2)]
    for table, rows in info.rows.items():
        assert one(nova, f"select count(*) from {table}") == rows
    assert one(nova, "select start_date from sim_meta") == START
    # no temporary or WAL file left beside the outputs
    assert sorted(p.name for p in info.database.parent.iterdir()) == [
        "Master_CPCs.xlsx", "Users_No_Limits.csv", "nova.duckdb"]


def test_same_seed_same_tables_other_seed_other_tables(tmp_path):
    a = simulate(tmp_path / "a", START, 2, new_per_day=10, seed=3)
    b = simulate(tmp_path / "b", START, 2, new_per_day=10, seed=3)
    c = simulate(tmp_path / "c", START, 2, new_per_day=10, seed=4)
    assert table_contents(a.database) == table_contents(b.database)
    assert a.exclusions.read_bytes() == b.exclusions.read_bytes()
    assert master_sheet(a.master_xlsx) == master_sheet(b.master_xlsx)
    assert table_contents(a.database)["telefonicaes_sub_mgr_fact"] != table_contents(c.database)[
        "telefonicaes_sub_mgr_fact"]


def test_new_per_day_scales_rows_about_linearly(tmp_path):
    small = simulate(tmp_path / "s", START, 2, new_per_day=10)
    large = simulate(tmp_path / "l", START, 2, new_per_day=40)
    for table in ("telefonicaes_sub_mgr_fact", "sim_subscription"):
        ratio = large.rows[table] / small.rows[table]
        assert 3.0 < ratio < 5.0, (table, ratio)


def test_simulate_rejects_an_empty_window(tmp_path):
    with pytest.raises(ValueError, match="days"):
        simulate(tmp_path, START, 0)


# -- legacy behaviours (legacy rule L14) -------------------------------------------------------

def test_production_proportions(nova):
    per_type = dict(nova.execute(
        "select trans_type_id, count(*) from telefonicaes_sub_mgr_fact group by 1").fetchall())
    assert set(per_type) == {1, 2, 3, 4}
    assert per_type[2] > 10 * (per_type[1] + per_type[3])   # mostly renewals
    assert one(nova, "select count(*) from delaydcttlog_v1_0_0_fact") > 0


def test_identifier_formats(nova):
    fact = nova.execute("select msisdn, generic_act_info, subscription_id from telefonicaes_sub_mgr_fact").fetchall()
    for tmuserid, info, sub_id in fact:
        assert re.fullmatch(r"834\d{16}|34\d{16}", tmuserid)
        phone = re.search(r"(?:^|;)chrg_refid=([^;]*)", info).group(1)
        assert re.fullmatch(r"346\d{8}", phone)
        if sub_id is not None:
            assert 10**17 <= sub_id < 2**63 - 1 and len(str(sub_id)) in (18, 19)
    assert {len(t) for t, _, _ in fact} == {18, 19}
    assert one(nova, "select count(*) from telefonicaes_sub_mgr_fact where msisdn like '%0000'") > 0


def test_timestamps_are_whole_seconds_spread_over_the_day_with_boundaries(nova):
    assert one(nova, """select count(*) from telefonicaes_sub_mgr_fact
                        where epoch_us(tlog_ts) % 1000000 <> 0 or epoch_us(request_ts) % 1000000 <> 0""") == 0
    hours = one(nova, "select count(distinct hour(tlog_ts)) from telefonicaes_sub_mgr_fact")
    assert hours == 24
    for day in range(3):
        d = START + dt.timedelta(days=day)
        for hms in ("00:00:00", "23:59:59"):
            assert one(nova, "select count(*) from telefonicaes_sub_mgr_fact where tlog_ts = cast(? as timestamp)",
                       [f"{d} {hms}"]) >= 1


def test_upgrade_is_act_and_dct_upgrade_the_same_day_then_renewals_on_the_paid_cpc(nova):
    pairs = {e.cpc: e.upgrade_to for e in CATALOGUE if isinstance(e.upgrade_to, int)}
    upgrades = nova.execute("""
        select a.subscription_id, split_part(split_part(';' || a.generic_act_info, ';cpc=', 2), ';', 1),
               split_part(split_part(';' || d.generic_act_info, ';cpc=', 2), ';', 1), a.charged_amount
        from telefonicaes_sub_mgr_fact as a
        join telefonicaes_sub_mgr_fact as d
          on a.subscription_id = d.subscription_id and cast(a.tlog_ts as date) = cast(d.tlog_ts as date)
        where a.trans_type_id = 1 and a.channel_id = 5 and d.trans_type_id = 3 and d.channel_id = 5
    """).fetchall()
    assert upgrades
    for _, paid, free, amount in upgrades:
        assert pairs[int(free)] == int(paid) and amount > 0
    # renewals on a paid CPC reached through an upgrade (the free ACT lies before the window)
    assert one(nova, """
        select count(*) from telefonicaes_sub_mgr_fact as r join sim_subscription as s
          on r.subscription_id = s.subscription_id and s.channel_desc = 'UPGRADE'
        where r.trans_type_id = 2""") > 0


def test_free_trials_are_activations_with_zero_revenue(nova):
    assert one(nova, """select count(*) from telefonicaes_sub_mgr_fact
                        where trans_type_id = 1 and charged_amount = 0""") > 0


def test_subscriptions_that_start_with_a_renewal(nova):
    assert one(nova, """
        select count(distinct r.subscription_id) from telefonicaes_sub_mgr_fact as r
        where r.trans_type_id = 2 and r.request_ts < timestamp '2025-10-06'
          and not exists (select 1 from telefonicaes_sub_mgr_fact as a
                          where a.trans_type_id = 1 and a.subscription_id = r.subscription_id)""") > 100


def test_weekly_renewals_fall_on_the_anniversary_weekday(nova):
    weekly = [e.cpc for e in CATALOGUE if e.model == "W"]
    off = one(nova, f"""
        select count(*) from telefonicaes_sub_mgr_fact
        where trans_type_id = 2
          and {cpc_of()} in ({", ".join(map(str, weekly))})
          -- request_ts is the activation time minus up to 3 minutes
          and date_diff('day', cast(request_ts as date), cast(tlog_ts as date)) % 7 <> 0
          and date_diff('day', cast(request_ts + interval 3 minute as date), cast(tlog_ts as date)) % 7 <> 0""")
    assert off == 0


def test_charges_are_the_cpc_price(nova):
    mismatches = one(nova, f"""
        select count(*) from telefonicaes_sub_mgr_fact as f
        join sim_cpc as c on c.cpc = {cpc_of("f.")}
        where f.trans_type_id in (1, 2, 4) and f.charged_amount <> c.price""")
    assert mismatches == 0


def test_pay_per_download_one_offs(nova):
    rows = nova.execute(f"""
        select f.subscription_id, c.subscription_model from telefonicaes_sub_mgr_fact as f
        join sim_cpc as c on c.cpc = {cpc_of("f.")}
        where f.trans_type_id = 4""").fetchall()
    assert len(rows) >= 6 and {m for _, m in rows} == {"PPD"}
    assert any(s is None for s, _ in rows) and any(s is not None for s, _ in rows)


def test_refunds_regular_automatic_and_without_sbnid(nova):
    both = one(nova, """
        select count(*) from (
            select split_part(split_part(info, 'sbnId=', 2), ',', 1) as sbn, cast("timestamp" as date) as d
            from refund_v1_0_0_fact where info like 'sbnId=%'
            group by 1, 2
            having count(distinct lower(info) like '%automatic refund%') = 2)""")
    assert both >= 3                                    # one a day at least
    assert one(nova, """
        select max(n) from (
            select count(*) as n from refund_v1_0_0_fact where info like 'sbnId=%'
            group by split_part(split_part(info, 'sbnId=', 2), ',', 1), cast("timestamp" as date))""") > 1
    assert one(nova, "select count(*) from refund_v1_0_0_fact where info not like '%sbnId=%'") >= 3
    cases = {r[0] for r in nova.execute(
        "select regexp_extract(info, '(?i)automatic refund') from refund_v1_0_0_fact "
        "where info ilike '%automatic refund%'"
    ).fetchall()}
    assert len(cases) > 1                               # the match must be case-insensitive


def test_cancellations_come_before_the_deactivation(nova, tmp_path):
    rows = nova.execute("""
        select c."timestamp", s.end_ts from delaydcttlog_v1_0_0_fact as c
        join sim_subscription as s on s.subscription_id = cast(c.sbn_id as bigint) and s.cpc = c.cpc""").fetchall()
    assert rows and len(rows) == one(nova, "select count(*) from delaydcttlog_v1_0_0_fact")
    assert all(end is None or end > cancel for cancel, end in rows)
    # a CNR followed by its DCT at the next renewal date, the DCT channel being the CNR
    # mode: needs a window longer than a weekly period
    longer = simulate(tmp_path, START, 10, new_per_day=20)
    con = duckdb.connect(str(longer.database), read_only=True)
    try:
        pairs = con.execute("""
            select c."timestamp", d.tlog_ts, ch.channel_desc = c.mode from delaydcttlog_v1_0_0_fact as c
            join telefonicaes_sub_mgr_fact as d on d.subscription_id = cast(c.sbn_id as bigint) and d.trans_type_id = 3
            left join channel_dim as ch on ch.channel_id = d.channel_id
            where d.channel_id <> 5""").fetchall()
    finally:
        con.close()
    assert pairs and all(dct > cnr and same_mode for cnr, dct, same_mode in pairs)
    assert one(nova, """select count(*) from telefonicaes_sub_mgr_fact
                        where trans_type_id = 3 and channel_id = 4""") > 0   # CCC-CR deactivations


def test_null_channels_duplicates_and_unmapped_cpcs(simulated_nova, nova):
    assert one(nova, """select count(*) from telefonicaes_sub_mgr_fact as f
                        where not exists (select 1 from channel_dim as c where c.channel_id = f.channel_id)""") > 0
    assert one(nova, """select count(*) from (select * from telefonicaes_sub_mgr_fact group by all
                        having count(*) > 1)""") >= 1
    _, _, master = master_sheet(simulated_nova.master_xlsx)
    in_master = {r["CPC"] for r in master}
    used = {c for (c,) in nova.execute(f"select distinct {cpc_of()} from telefonicaes_sub_mgr_fact").fetchall()}
    assert 99200 in used - in_master


def test_generic_act_info_key_order_varies_and_keys_go_missing(nova):
    infos = [i for (i,) in nova.execute("select generic_act_info from telefonicaes_sub_mgr_fact").fetchall()]
    firsts = {i.split("=", 1)[0] for i in infos}
    assert {"chrg_refid", "cpc"} <= firsts and len(firsts) >= 3
    assert any(re.search(r"TEFcampaign=.*;campaign=", i) for i in infos)      # the legacy rule L-D24 trap
    assert any("campaign=" not in i for i in infos)


def test_exclusion_list_holds_users_with_transactions(simulated_nova, nova):
    with open(simulated_nova.exclusions, newline="", encoding="utf-8") as fh:
        rows = list(csv.reader(fh))
    assert rows[0] == ["msisdn", "tmuserid"]
    body = rows[1:]
    assert 5 <= len(body) <= 10
    assert any(t == "" for _, t in body) and any(t for _, t in body)
    for msisdn, tmuserid in body:
        assert one(nova, "select count(*) from telefonicaes_sub_mgr_fact where generic_act_info like ?",
                   [f"%chrg_refid={msisdn}%"]) > 0
        if tmuserid:
            assert one(nova, "select count(*) from telefonicaes_sub_mgr_fact where msisdn = ?", [tmuserid]) > 0


def test_truth_table_has_one_row_per_cpc_segment(nova):
    assert one(nova, "select count(*) - count(distinct (subscription_id, cpc)) from sim_subscription") == 0
    assert one(nova, "select count(*) from sim_subscription where end_ts <= start_ts") == 0
    assert one(nova, """select count(*) from (
                            select subscription_id from sim_subscription group by 1 having count(*) = 2)""") > 0


# -- the Excel master (legacy rules L4.2, L4.5) -------------------------------------------------

def test_master_workbook_has_the_legacy_quirks(simulated_nova):
    sheet, header, rows = master_sheet(simulated_nova.master_xlsx)
    assert sheet == "Hoja2"
    for column in ("CPC", "CPC to upgrade", "Service Name", "TME Category", "Subscription Model", "Price",
                   "Content Provider", "Estado"):
        assert column in header
    cpcs = [r["CPC"] for r in rows]
    assert 80 <= len(set(cpcs)) <= 150 and all(893 <= c <= 80017 for c in cpcs)
    assert len(cpcs) > len(set(cpcs))                      # one CPC twice: the first row wins
    names = [r["Service Name"] for r in rows if r["Service Name"]]
    assert "TP Seman EA 0,99e" in names and any("," in n and n.startswith("Descarga") for n in names)
    assert any(n != n.strip() for n in names)
    assert {"¿Quedamos?", "Club música", "El Kiosko y Más"} <= set(names)
    blank = [r for r in rows if r["CPC"] == 9999]
    assert len(blank) == 1 and not blank[0]["Service Name"] and not blank[0]["TME Category"]
    assert not blank[0]["Subscription Model"]
    models = {r["Subscription Model"] for r in rows if r["Subscription Model"]}
    assert models == {"Weekly subscription", "Monthly subscription", "Trimonthly subscription",
                      "One day subscription", "PPD"}
    assert any(r["Price"] is None and r["CPC"] != 9999 for r in rows)
    by_cpc = {}
    for r in rows:
        by_cpc.setdefault(r["CPC"], r)
    pairs = [(c, r["CPC to upgrade"]) for c, r in by_cpc.items() if isinstance(r["CPC to upgrade"], int)]
    assert len(pairs) >= 10
    for free, paid in pairs:
        assert by_cpc[free]["Price"] == 0 and by_cpc[paid]["Price"] > 0
    assert any(r["CPC to upgrade"] == "N/A" for r in rows)
    lowered = [n.lower() for n in names]
    for service in DEFAULT_EXCLUDED_SERVICES:
        assert any(service in n for n in lowered), service
    assert {r["TME Category"] for r in rows if r["TME Category"]} >= {
        "Light", "Games", "Music", "Free Time", "News", "Beauty and Health", "Kids", "Education", "Images",
        "Sports", "Nubico"}
