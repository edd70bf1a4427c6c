"""The extraction SQL through the simulated source: legacy columns, COPY CSV format, windows, legacy rule L-D24."""

from __future__ import annotations

import csv
import datetime as dt
import io
import re

import duckdb
import pytest

from cvas.core.schemas import KINDS, SPECS
from cvas.sources import SourceError
from cvas.sources.simulated import SimulatedSource
from cvas.sql import load_sql

pytestmark = pytest.mark.slow   # see pyproject: make test-fast leaves it out

START = dt.date(2025, 10, 6)
DAY = START + dt.timedelta(days=1)
TS = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d")
FACT_KINDS = ("act", "reno", "dct", "ppd")
NBS_HEADER = "cpc,content_provider,service_name,last_billed_amount,tme_category,channel_desc,count"


def psql_variables(sql: str) -> set[str]:
    """The psql variables (:'name') a SQL text refers to."""
    return set(re.findall(r":'([A-Za-z_][A-Za-z0-9_]*)'", sql))


@pytest.fixture(scope="module")
def source(simulated_nova):
    return SimulatedSource(simulated_nova.database)


@pytest.fixture(scope="module")
def extracts(source, tmp_path_factory):
    """Every kind for every simulated day: {(kind, day): (rows returned, file text)}."""
    out = tmp_path_factory.mktemp("extracts")
    found = {}
    for day in (START, DAY, DAY + dt.timedelta(days=1)):
        for kind in KINDS:
            dest = out / kind / f"{day}.csv"
            n = source.extract_transactions(kind, day, dest)
            found[kind, day] = (n, dest.read_text(encoding="utf-8"))
    return found


def raw_rows(text):
    """Data rows split on commas, quotes kept: tells "" (empty string) from an empty field (NULL)."""
    lines = text.splitlines()
    return lines[0].split(","), [line.split(",") for line in lines[1:]]


def parsed_rows(text):
    return list(csv.DictReader(io.StringIO(text)))


# -- format -------------------------------------------------------------------------------

@pytest.mark.parametrize("kind", KINDS)
def test_header_is_the_legacy_column_order_and_rows_are_counted(extracts, kind):
    for day in (START, DAY):
        n, text = extracts[kind, day]
        assert text.splitlines()[0] == ",".join(SPECS[kind].names)
        assert n == len(text.splitlines()) - 1
        assert text.endswith("\n") and "\r" not in text
    assert sum(extracts[kind, d][0] for d in (START, DAY)) > 0


def test_null_is_an_empty_field_and_empty_string_is_quoted(extracts):
    header, rows = raw_rows(extracts["act", DAY][1])
    rows += raw_rows(extracts["reno", DAY][1])[1]
    col = {name: i for i, name in enumerate(header)}
    assert all(len(r) == len(header) for r in rows)      # no comma inside any fact value
    null_channel = [r for r in rows if r[col["channel_act"]] == ""]
    assert null_channel and all(r[col["channel_id"]] in ("0", "99") for r in null_channel)
    assert all(r[col["channel_act"]] != '""' for r in rows)
    # an absent key in generic_act_info is '' (legacy), written as ""
    assert any(r[col["camp_name"]] == '""' for r in rows)
    assert any(r[col["campana_id"]] == '""' for r in rows)
    assert any(r[col["camp_name"]] not in ('""', "") for r in rows)
    # RENO/ACT rows always carry a next charging date; DCT and PPD never do (NULL, not "")
    assert all(TS.fullmatch(r[col["reno_date"]]) for r in rows)
    for kind in ("dct", "ppd"):
        h, rs = raw_rows(extracts[kind, DAY][1])
        assert rs and all(r[h.index("reno_date")] == "" for r in rs)
    # PPD without a subscription id: an empty field
    ppd = [r for d in (START, DAY) for r in raw_rows(extracts["ppd", d][1])[1]]
    sub = SPECS["ppd"].names.index("subscription_id")
    assert any(r[sub] == "" for r in ppd) and any(r[sub].isdigit() for r in ppd)


def test_timestamps_numbers_and_ids_print_like_postgresql(extracts):
    for kind in FACT_KINDS:
        for row in parsed_rows(extracts[kind, DAY][1]):
            assert TS.fullmatch(row["trans_date"]) and TS.fullmatch(row["act_date"])
            assert row["cpc"].isdigit() and row["trans_type_id"] == str(SPECS[kind].trans_type_id)
            if row["subscription_id"]:
                assert re.fullmatch(r"\d{18,19}", row["subscription_id"])
            if "rev" in row:
                assert re.fullmatch(r"\d+\.\d\d", row["rev"])
            assert re.fullmatch(r"834\d{16}|34\d{16}", row["tmuserid"])
            assert re.fullmatch(r"346\d{8}", row["msisdn"])
    for d in (START, DAY):
        for row in parsed_rows(extracts["cnr", d][1]):
            assert TS.fullmatch(row["cancel_date"]) and re.fullmatch(r"\d{18,19}", row["sbn_id"])
            assert row["mode"] in {"CCC-CR", "WEB", "SMS", "IVR"}
    zero = [r for d in (START, DAY) for r in parsed_rows(extracts["act", d][1]) if r["rev"] == "0.00"]
    assert zero                                              # free trials print as 0.00


def test_refunds_are_grouped_with_t_and_f(extracts):
    rows = [r for d in (START, DAY, DAY + dt.timedelta(days=1)) for r in parsed_rows(extracts["rfnd", d][1])]
    assert {r["instant_rfnd"] for r in rows} == {"t", "f"}
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\d", r["refnd_date"]) for r in rows)
    assert all(re.fullmatch(r"\d+\.\d\d", r["rfnd_amount"]) for r in rows)
    assert max(int(r["rfnd_cnt"]) for r in rows) > 1
    kinds_by_sub_day = {}
    for r in rows:
        kinds_by_sub_day.setdefault((r["sbnid"], r["refnd_date"]), set()).add(r["instant_rfnd"])
    assert any(k == {"t", "f"} for (sbn, _), k in kinds_by_sub_day.items() if sbn)
    # info without sbnId=: sbnid is the empty string, written ""
    raw = [line for d in (START, DAY) for line in extracts["rfnd", d][1].splitlines()[1:]]
    assert any(line.split(",")[5] == '""' for line in raw)


def test_refund_groups_add_up_to_the_source_rows(simulated_nova, extracts):
    con = duckdb.connect(str(simulated_nova.database), read_only=True)
    try:
        rows, amount = con.execute("""select count(*), sum(amount) from refund_v1_0_0_fact
                                      where cast("timestamp" as date) = ?""", [DAY]).fetchone()
    finally:
        con.close()
    grouped = parsed_rows(extracts["rfnd", DAY][1])
    assert sum(int(r["rfnd_cnt"]) for r in grouped) == rows
    assert round(sum(float(r["rfnd_amount"]) for r in grouped), 2) == float(amount)


# -- windows ------------------------------------------------------------------------------

def test_window_is_half_open_on_the_source_timestamp(extracts):
    next_day = DAY + dt.timedelta(days=1)
    for kind, column in [*((k, "trans_date") for k in FACT_KINDS), ("cnr", "cancel_date"), ("rfnd", "refnd_date")]:
        for day in (START, DAY, next_day):
            assert all(r[column].startswith(str(day)) for r in parsed_rows(extracts[kind, day][1])), (kind, day)
    reno = extracts["reno", DAY][1]
    assert f"{DAY} 23:59:59" in reno and f"{DAY} 00:00:00" in reno
    assert f"{next_day} 00:00:00" not in reno
    assert f"{next_day} 00:00:00" in extracts["reno", next_day][1]


def test_days_add_up_to_the_whole_table(simulated_nova, extracts):
    con = duckdb.connect(str(simulated_nova.database), read_only=True)
    try:
        per_type = dict(con.execute(
            "select trans_type_id, count(*) from telefonicaes_sub_mgr_fact group by 1").fetchall())
        cnr = con.execute("select count(*) from delaydcttlog_v1_0_0_fact").fetchone()[0]
    finally:
        con.close()
    days = (START, DAY, DAY + dt.timedelta(days=1))
    for kind in FACT_KINDS:
        assert sum(extracts[kind, d][0] for d in days) == per_type[SPECS[kind].trans_type_id]
    assert sum(extracts["cnr", d][0] for d in days) == cnr


def test_exact_duplicate_rows_are_extracted_as_they_are(extracts):
    lines = [line for d in (START, DAY, DAY + dt.timedelta(days=1)) for k in FACT_KINDS
             for line in extracts[k, d][1].splitlines()[1:]]
    assert len(lines) > len(set(lines))


# -- legacy rule L-D24 ---------------------------------------------------------------------------------

def test_camp_name_is_the_campaign_key_even_after_tefcampaign(simulated_nova, extracts):
    con = duckdb.connect(str(simulated_nova.database), read_only=True)
    try:
        infos = con.execute("""select subscription_id, tlog_ts, generic_act_info from telefonicaes_sub_mgr_fact
                               where trans_type_id = 2 and cast(tlog_ts as date) = ?""", [DAY]).fetchall()
    finally:
        con.close()
    extracted = {(r["subscription_id"], r["trans_date"]): r for r in parsed_rows(extracts["reno", DAY][1])}
    trapped = missing = 0
    for sub_id, ts, info in infos:
        keys = dict(field.split("=", 1) for field in info.split(";"))
        row = extracted[str(sub_id), f"{ts:%Y-%m-%d %H:%M:%S}"]
        assert row["camp_name"] == keys.get("campaign", "")
        assert row["campana_id"] == keys.get("TEFcampaign", "")
        assert row["tef_prov"] == keys.get("TEFProvider", "")
        assert row["campana_medium"] == keys.get("TEFmedium", "")
        legacy = info.split("campaign=", 1)[1].split(";", 1)[0] if "campaign=" in info else ""
        if "TEFcampaign" in keys and info.index("TEFcampaign=") < info.find(";campaign=") or (
                "TEFcampaign" in keys and "campaign" not in keys):
            assert legacy != row["camp_name"]             # the legacy substring search got these wrong
            trapped += "campaign" in keys
            missing += "campaign" not in keys
    assert trapped > 0 and missing > 0


# -- the NBS snapshot ---------------------------------------------------------------------

def test_user_base_snapshot_counts_the_subscriptions_alive_at_the_end_of_the_day(simulated_nova, source, tmp_path):
    dest = tmp_path / "nbs.csv"
    n = source.extract_user_base(DAY, dest)
    text = dest.read_text(encoding="utf-8")
    assert text.splitlines()[0] == NBS_HEADER
    rows = parsed_rows(text)
    assert n == len(rows) > 50
    con = duckdb.connect(str(simulated_nova.database), read_only=True)
    try:
        alive = con.execute("""select count(*) from sim_subscription
                               where start_ts < ? and (end_ts is null or end_ts >= ?)""",
                            [DAY + dt.timedelta(days=1)] * 2).fetchone()[0]
    finally:
        con.close()
    assert sum(int(r["count"]) for r in rows) == alive
    assert all(r["cpc"].isdigit() and re.fullmatch(r"\d+\.\d\d", r["last_billed_amount"]) for r in rows)
    names = {r["service_name"] for r in rows}
    assert any("nubico" in s.lower() for s in names) and any("," in s for s in names)
    assert '"TP Seman EA 0,99e"' in text
    assert {r["channel_desc"] for r in rows} >= {"ACTIVE", "CCC-CR"}


# -- errors, concurrency, portability -----------------------------------------------------

def test_missing_database_and_days_outside_the_simulation_are_errors(source, tmp_path):
    with pytest.raises(SourceError, match="does not exist"):
        SimulatedSource(tmp_path / "nope.duckdb").extract_transactions("act", DAY, tmp_path / "a.csv")
    with pytest.raises(SourceError, match=r"outside the simulated range 2025-10-06\.\.2025-10-08"):
        source.extract_transactions("act", dt.date(2025, 10, 9), tmp_path / "a.csv")
    with pytest.raises(SourceError, match="outside the simulated range"):
        source.extract_user_base(dt.date(2025, 10, 5), tmp_path / "b.csv")
    with pytest.raises(ValueError, match="unknown transaction kind"):
        source.extract_transactions("refund", DAY, tmp_path / "c.csv")
    assert not list(tmp_path.glob("*.csv"))


def test_extracts_while_another_reader_holds_the_database(simulated_nova, source, tmp_path, extracts):
    reader = duckdb.connect(str(simulated_nova.database), read_only=True)
    try:
        assert source.extract_transactions("reno", DAY, tmp_path / "r.csv") == extracts["reno", DAY][0]
        assert (tmp_path / "r.csv").read_text(encoding="utf-8") == extracts["reno", DAY][1]
    finally:
        reader.close()


@pytest.mark.parametrize("name", [f"extract_{k}" for k in KINDS] + ["nbs_snapshot"])
def test_sql_is_one_portable_statement(name):
    sql = load_sql(name)
    assert psql_variables(sql) == ({"end_ts"} if name == "nbs_snapshot" else {"start_ts", "end_ts"})
    # code without comments and string literals: one statement, lower case, no engine dialect
    code = re.sub(r"'[^']*'", "''", "\n".join(line.split("--", 1)[0] for line in sql.splitlines()))
    assert ";" not in code
    assert code == code.lower()
    for construct in ("::", "ilike", "$", "strftime", "date_trunc", "regexp", "list_", "struct", "qualify"):
        assert construct not in code, construct
