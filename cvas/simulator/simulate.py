"""A deterministic simulated Nova: the legacy tables in a DuckDB file, the Excel CPC master, the exclusion list."""

from __future__ import annotations

import contextlib
import csv
import datetime as dt
import logging
import os
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa

from cvas.sql import connect, load_sql

from cvas.simulator.cpc_catalogue import (AUTO_TEXTS, CAMPAIGNS, CATALOGUE, CHANNELS, CNR_MODES, DATABASE_NAME,
                                         EXCLUSIONS_NAME, GENERATOR, MASTER_HEADER, MASTER_NAME, MEDIA,
                                         NA_UPGRADE_CELLS, PROVIDERS, REFUND_REASONS, SimulationInfo)
from cvas.simulator.generate import Catalogue, generate, int_array, ts_array

log = logging.getLogger(__name__)

# -- writing -----------------------------------------------------------------------------

_INFO_PARTS = """
    'chrg_refid=346' || lpad(cast(phone8 as varchar), 8, '0') as p_ref,
    case when has_camp then 'campaign=' || campaign end as p_camp,
    case when has_prov then 'TEFProvider=' || provider end as p_prov,
    case when has_medium then 'TEFmedium=' || medium end as p_medium,
    case when has_tefcamp then 'TEFcampaign=tc' || cast(tefcamp as varchar) end as p_tefcamp
"""

# generic_act_info in four key orders; order 1 puts TEFcampaign= before campaign= (legacy rule L-D24)
_INFO = """
    case s.variant
        when 0 then concat_ws(';', s.p_ref, 'cpc=' || k.cpc, s.p_camp, s.p_prov, s.p_medium, s.p_tefcamp)
        when 1 then concat_ws(';', 'cpc=' || k.cpc, s.p_ref, s.p_tefcamp, s.p_camp, s.p_medium, s.p_prov)
        when 2 then concat_ws(';', s.p_prov, s.p_medium, s.p_tefcamp, s.p_ref, 'cpc=' || k.cpc, s.p_camp)
        else concat_ws(';', 'cpc=' || k.cpc, s.p_tefcamp, s.p_ref, s.p_prov, s.p_camp, s.p_medium)
    end
"""


def _vocab(values: tuple[str, ...]) -> str:
    return "[" + ", ".join("'" + v.replace("'", "''") + "'" for v in values) + "]"


def _write_database(path: Path, data: dict, start: dt.date, end: dt.date, days: int, seed: int,
                    new_per_day: int) -> dict[str, int]:
    # one writer thread: parallel inserts leave half-filled, poorly compressed row groups
    con = connect(str(path), threads=1)
    try:
        con.execute(load_sql("nova_schema"))
        _write_reference(con, data["cat"], start, end, days, seed, new_per_day)
        tmuserids, infos, sub_ids = _write_identities(con, data)
        _write_facts(con, data, tmuserids, infos, sub_ids)
        _write_cancellations(con, data)
        _write_refunds(con, data)
        _write_segments(con, data)
        con.execute("drop table subs")

        counts = {}
        for table in ("telefonicaes_sub_mgr_fact", "channel_dim", "delaydcttlog_v1_0_0_fact",
                      "refund_v1_0_0_fact", "sim_cpc", "sim_subscription"):
            counts[table] = con.execute(f"select count(*) from {table}").fetchone()[0]
        con.execute("checkpoint")
    finally:
        con.close()
    return counts


def _write_reference(con: duckdb.DuckDBPyConnection, cat: Catalogue, start: dt.date, end: dt.date, days: int,
                     seed: int, new_per_day: int) -> None:
    """channel_dim, the CPC catalogue and the simulation's own parameters."""
    con.register("channels_arrow", pa.table({"channel_id": [c[0] for c in CHANNELS],
                                             "channel_desc": [c[1] for c in CHANNELS]}))
    con.execute("insert into channel_dim select * from channels_arrow order by channel_id")
    con.register("catalogue_arrow", pa.table({
        "cpc": [e.cpc for e in cat.entries],
        "content_provider": [e.provider for e in cat.entries],
        "service_name": [e.service_name for e in cat.entries],
        "tme_category": [e.tme_category for e in cat.entries],
        "subscription_model": [e.subscription_model for e in cat.entries],
        "cpc_period": [e.period for e in cat.entries],
        "price": [None if e.price is None else f"{e.price:.2f}" for e in cat.entries],
        "in_master": [e.in_master for e in cat.entries],
    }))
    con.execute("insert into sim_cpc select * from catalogue_arrow order by cpc")
    con.unregister("channels_arrow")
    con.unregister("catalogue_arrow")
    con.execute("insert into sim_meta values (?, ?, ?, ?, ?, ?)", [start, end, days, seed, new_per_day, GENERATOR])


def _write_identities(con: duckdb.DuckDBPyConnection, data: dict) -> tuple[pa.Array, pa.Array, np.ndarray]:
    """The temp table `subs` (formatted identities); returns the tmuserids, the generic_act_info
    of each identity's two CPC slots and the subscription ids, in identity order."""
    cat: Catalogue = data["cat"]
    ident = pa.table({k: v for k, v in data["ident"].items() if k != "user_idx"})
    con.register("ident_arrow", ident)
    con.execute(f"""
        create temp table subs as
        select
            sub, subscription_id,
            case tm_kind when 0 then '834' else '34' end || lpad(cast(tm16 as varchar), 16, '0') as tmuserid,
            '346' || lpad(cast(phone8 as varchar), 8, '0') as phone,
            variant,
            {_INFO_PARTS}
        from (
            select *,
                {_vocab(CAMPAIGNS)}[camp + 1] as campaign,
                {_vocab(PROVIDERS)}[prov + 1] as provider,
                {_vocab(MEDIA)}[med + 1] as medium
            from ident_arrow
        )
    """)
    con.unregister("ident_arrow")

    # per identity: tmuserid, and generic_act_info for its first (slot 0) and upgrade
    # (slot 1) CPC; the events then point into these as Arrow dictionaries (no join)
    con.register("slots_arrow", pa.table({
        "sub": data["ident"]["sub"], "cpc_a": cat.cpc[data["cat_a"]], "cpc_b": cat.cpc[data["cat_b"]]}))
    tmuserids = con.execute("select tmuserid from subs order by sub").fetch_arrow_table().column(0).combine_chunks()
    infos = con.execute(f"""
        select {_INFO} as info
        from subs as s
        join (select sub, 0 as slot, cast(cpc_a as varchar) as cpc from slots_arrow
              union all select sub, 1 as slot, cast(cpc_b as varchar) as cpc from slots_arrow) as k on s.sub = k.sub
        order by k.sub, k.slot
    """).fetch_arrow_table().column(0).combine_chunks()
    sub_ids = con.execute("select subscription_id from subs order by sub").fetch_arrow_table().column(0).to_numpy()
    con.unregister("slots_arrow")
    return tmuserids, infos, sub_ids


def _write_facts(con: duckdb.DuckDBPyConnection, data: dict, tmuserids: pa.Array, infos: pa.Array,
                 sub_ids: np.ndarray) -> None:
    """telefonicaes_sub_mgr_fact, in the generated row order."""
    f = data["fact"]
    events = pa.table({
        "msisdn": pa.DictionaryArray.from_arrays(pa.array(f["sub"], pa.int32()), tmuserids),
        "generic_act_info": pa.DictionaryArray.from_arrays(
            pa.array(f["sub"] * 2 + f["slot"], pa.int32()), infos),
        "trans_type_id": f["ttype"].astype(np.int32),
        "channel_id": f["chan"],
        "tlog_ts": ts_array(f["tlog"]),
        "request_ts": ts_array(f["req"]),
        "next_charging_date": ts_array(f["nxt"], f["nxt"] >= 0),
        "subscription_id": int_array(sub_ids[f["sub"]], ~f["null_sub"]),
        "cents": int_array(f["cents"], f["cents"] >= 0),
    })
    con.register("events_arrow", events)
    # a plain projection keeps the Arrow row order (time order, duplicates adjacent)
    con.execute("""
        insert into telefonicaes_sub_mgr_fact
        select msisdn, generic_act_info, trans_type_id, channel_id, tlog_ts, request_ts,
               next_charging_date, subscription_id, cast(cents / 100 as decimal(10, 2))
        from events_arrow
    """)
    con.unregister("events_arrow")
    del events


def _write_cancellations(con: duckdb.DuckDBPyConnection, data: dict) -> None:
    c = data["cnr"]
    con.register("cnr_arrow", pa.table({
        "seq": np.arange(c["sub"].size), "sub": c["sub"], "ts": ts_array(c["ts"]), "cpc": c["cpc"],
        "mode": c["mode"]}))
    modes = _vocab(tuple(m for m, _ in CNR_MODES))
    con.execute(f"""
        insert into delaydcttlog_v1_0_0_fact
        select e.ts, cast(s.subscription_id as varchar), s.tmuserid, e.cpc, {modes}[e.mode + 1]
        from cnr_arrow as e join subs as s on e.sub = s.sub
        order by e.seq
    """)
    con.unregister("cnr_arrow")


def _write_refunds(con: duckdb.DuckDBPyConnection, data: dict) -> None:
    r = data["refund"]
    con.register("refund_arrow", pa.table({
        "seq": np.arange(r["sub"].size), **{k: v for k, v in r.items() if k != "ts"}, "ts": ts_array(r["ts"])}))
    con.execute(f"""
        insert into refund_v1_0_0_fact
        select
            s.tmuserid, e.cpc, e.ts, cast(e.cents / 100 as decimal(10, 2)),
            case when e.no_sbn then '' else 'sbnId=' || cast(s.subscription_id as varchar) || ',' end
            || case when e.auto
                    then 'reason=Charge error,' || {_vocab(AUTO_TEXTS)}[e.auto_text + 1]
                    else 'reason=' || {_vocab(REFUND_REASONS)}[e.reason + 1]
                         || case when e.no_sbn then ',ticket=' || cast(e.ticket as varchar) else '' end
               end
        from refund_arrow as e join subs as s on e.sub = s.sub
        order by e.seq
    """)
    con.unregister("refund_arrow")


def _write_segments(con: duckdb.DuckDBPyConnection, data: dict) -> None:
    """sim_subscription: the truth the user-base snapshot is drawn from."""
    g = data["segments"]
    hi_s = data["hi_s"]
    # the NBS channel_desc vocabulary: CCC-CR and UPGRADE acquisitions keep theirs
    chan_names = ["ACTIVE"] * 100
    for cid, desc in CHANNELS:
        if desc in ("CCC-CR", "UPGRADE"):
            chan_names[cid] = desc
    con.register("segments_arrow", pa.table({
        "seq": np.arange(g["sub"].size), "sub": g["sub"], "cpc": g["cpc"], "start_ts": ts_array(g["start"]),
        "end_ts": ts_array(g["end"], g["end"] < hi_s), "chan": g["chan"].astype(np.int16), "cents": g["cents"]}))
    con.execute(f"""
        insert into sim_subscription
        select s.subscription_id, s.tmuserid, s.phone, e.cpc, e.start_ts, e.end_ts,
               {_vocab(tuple(chan_names))}[e.chan + 1], cast(e.cents / 100 as decimal(10, 2))
        from segments_arrow as e join subs as s on e.sub = s.sub
        order by e.seq
    """)
    con.unregister("segments_arrow")


def master_rows() -> list[list]:
    """The rows of the Excel master's sheet (after its header), in sheet order: one per CPC."""
    rows = []
    order = sorted((e for e in CATALOGUE if e.in_master),
                   key=lambda e: ((e.tme_category or "~"), (e.service_name or "~").strip().lower(), e.cpc))
    for i, e in enumerate(order):
        if e.cpc == 9999:
            rows.append([9999, None, None, None, None, None, None, None, None, None, None, None])
            continue
        upgrade = "N/A" if e.cpc in NA_UPGRADE_CELLS else e.upgrade_to
        rows.append([
            e.cpc, upgrade, f"APP{1000 + i}", (e.service_name or "").strip()[:12].upper(),
            "SI" if e.estado == "Activo" else "NO", e.tme_category, e.provider, e.estado,
            e.service_name, e.subscription_model, e.price, 21,
        ])
    return rows


def _write_master(path: Path) -> None:
    from openpyxl import Workbook

    wb = Workbook()
    ws = wb.active
    ws.title = "Hoja2"
    ws.append(list(MASTER_HEADER))
    for row in master_rows():
        ws.append(row)
    wb.properties.creator = GENERATOR
    wb.properties.created = dt.datetime(2026, 1, 15)
    wb.save(path)


def _write_exclusions(path: Path, rows: list[tuple[str, str]]) -> None:
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(["msisdn", "tmuserid"])
        writer.writerows(rows)


def _atomic(target: Path, write) -> None:
    """Write `target` through a temporary file in its directory, then rename it into place."""
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    for leftover in (tmp, tmp.with_name(tmp.name + ".wal")):
        with contextlib.suppress(FileNotFoundError):
            leftover.unlink()
    try:
        write(tmp)
        os.replace(tmp, target)
    finally:
        for leftover in (tmp, tmp.with_name(tmp.name + ".wal")):
            with contextlib.suppress(FileNotFoundError):
                leftover.unlink()


def simulate(out_dir: Path, start: dt.date, days: int, new_per_day: int = 300, seed: int = 7,
             steady: bool = False) -> SimulationInfo:
    """Simulate `days` days of Nova from `start`: writes nova.duckdb, Master_CPCs.xlsx and Users_No_Limits.csv.

    `new_per_day` (new subscriptions per day) is the one scale knob: the base alive before
    `start` (seen first as RENO) is generated from the same rate over HISTORY_DAYS, so the
    system starts near steady state. The same arguments give identical table contents.
    By default acquisitions switch from a legacy offer to the current one CURRENT_OFFER_DAYS
    before `start`, so the legacy base decays over a long window; `steady` keeps one offer
    throughout and acquisitions level over the week, so daily volumes stay level over years
    and from one day to the next (the benchmark's history).
    """
    if days < 1:
        raise ValueError(f"days must be at least 1, got {days}")
    if new_per_day < 1:
        raise ValueError(f"new_per_day must be at least 1, got {new_per_day}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    end = start + dt.timedelta(days=days - 1)
    data = generate(start, days, new_per_day, seed, steady)
    database = out_dir / DATABASE_NAME
    counts: dict[str, int] = {}

    def write_db(tmp: Path) -> None:
        counts.update(_write_database(tmp, data, start, end, days, seed, new_per_day))
    with contextlib.suppress(FileNotFoundError):
        # a WAL left by a crashed writer of an older file would be replayed onto the new one
        (database.with_name(database.name + ".wal")).unlink()
    _atomic(database, write_db)
    master = out_dir / MASTER_NAME
    _atomic(master, _write_master)
    exclusions = out_dir / EXCLUSIONS_NAME
    _atomic(exclusions, lambda tmp: _write_exclusions(tmp, data["exclusions"]))
    log.info("simulated Nova %s..%s (seed %d, %d new/day): %s", start, end, seed, new_per_day,
             ", ".join(f"{t} {c}" for t, c in counts.items()))
    return SimulationInfo(database, master, exclusions, start, end, seed, new_per_day, counts)
