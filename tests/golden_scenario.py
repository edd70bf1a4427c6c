"""The golden mini-scenario of legacy rule L15.3 (2026-02-10), as rows per kind. Ids are synthetic."""

from __future__ import annotations

import datetime as dt

DAY = dt.date(2026, 2, 10)


def ts(hh: int, mm: int = 0) -> dt.datetime:
    return dt.datetime(2026, 2, 10, hh, mm)


def _sub(tmuserid, msisdn, cpc, ttype, trans_date, sub_id, **extra):
    row = {"tmuserid": tmuserid, "msisdn": msisdn, "cpc": cpc, "trans_type_id": ttype, "trans_date": trans_date,
           "act_date": extra.pop("act_date", trans_date), "reno_date": None, "camp_name": "normal",
           "tef_prov": None, "campana_medium": None, "campana_id": None, "subscription_id": sub_id}
    row.update(extra)
    return row


ROWS = {
    "act": [
        _sub("834000000000000001", "34600000001", 45531, 1, ts(10), 1001, channel_id=1, channel_act="ORGANIC", rev=0.0),
        _sub("834000000000000001", "34600000001", 45530, 1, ts(12), 1001, channel_id=9, channel_act="UPGRADE", rev=8.26),
        _sub("834000000000000002", "34600000002", 44009, 1, ts(9), 1002, channel_id=2, channel_act="WEB", rev=1.64),
        # empty msisdn and empty channel: kept by the exclusion filter (decision D5), a regular activation (decision D2)
        _sub("834000000000000003", None, 44009, 1, ts(11), 1003, channel_id=77, channel_act=None, rev=1.64),
    ],
    "reno": [
        _sub("834000000000000002", "34600000002", 44009, 2, ts(23), 1002, channel_id=2, channel_act="WEB", rev=1.64),
        _sub("834000000000000004", "34600000004", 41949, 2, ts(8), 1004, channel_id=1, channel_act="ORGANIC",
             rev=1.64, act_date=dt.datetime(2025, 12, 1, 8)),
    ],
    "dct": [
        _sub("834000000000000001", "34600000001", 45531, 3, ts(12), 1001, channel_dct="UPGRADE"),
        _sub("834000000000000004", "34600000004", 41949, 3, ts(18), 1004, channel_dct=None),
        _sub("834000000000000005", "34600000005", 99999, 3, ts(7), 1005, channel_dct="UPGRADE"),
    ],
    "cnr": [
        {"cancel_date": ts(16), "sbn_id": 1002, "tmuserid": "834000000000000002", "cpc": 44009, "mode": "CCC-CR"},
    ],
    "ppd": [
        _sub("834000000000000006", "34600000006", 38687, 4, ts(14), None, channel_id=3, rev=14.99),
    ],
    "rfnd": [
        {"tmuserid": "834000000000000002", "cpc": 44009, "refnd_date": dt.datetime(2026, 2, 10), "rfnd_amount": 3.28,
         "rfnd_cnt": 2, "sbnid": 1002, "instant_rfnd": "f"},
        {"tmuserid": "834000000000000002", "cpc": 44009, "refnd_date": dt.datetime(2026, 2, 10), "rfnd_amount": 1.64,
         "rfnd_cnt": 1, "sbnid": 1002, "instant_rfnd": "t"},
        {"tmuserid": "834000000000000007", "cpc": 44009, "refnd_date": dt.datetime(2026, 2, 10), "rfnd_amount": 1.64,
         "rfnd_cnt": 1, "sbnid": None, "instant_rfnd": "f"},
        {"tmuserid": "834000000000000008", "cpc": 44009, "refnd_date": dt.datetime(2026, 2, 10), "rfnd_amount": 1.64,
         "rfnd_cnt": 1, "sbnid": None, "instant_rfnd": "t"},
    ],
}

# The master rows the scenario needs (service names as in the legacy catalogue).
MASTER = [
    (38687, "Extra juegos", "Games", "PPD", 14.99),
    (41949, "Top Video", "Free Time", "Weekly subscription", 1.64),
    (44009, "Abaco", "Education", "Weekly subscription", 1.64),
    (45530, "Movistar Apple Music", "Music", "Monthly subscription", 8.26),
    (45531, "Movistar Apple Music", "Music", "Trimonthly subscription", 0.0),
]


def write_drop(path, kind: str, rows: list[dict]) -> None:
    """A legacy daily CSV (legacy rule L3.3 column order; RFND dates are date-only)."""
    import csv

    from cvas.core.schemas import spec

    def fmt(v):
        if v is None:
            return ""
        if isinstance(v, dt.datetime):
            return v.strftime("%Y-%m-%d") if kind == "rfnd" else v.strftime("%Y-%m-%d %H:%M:%S")
        return str(v)

    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(spec(kind).names)
        writer.writerows([fmt(r.get(c)) for c in spec(kind).names] for r in rows)


NBS_SNAPSHOT = ("cpc,content_provider,service_name,last_billed_amount,tme_category,channel_desc,count\n"
                "44009,cp,Abaco,1.64,Education,ACTIVE,120\n41949,cp,Top Video,1.64,Free Time,ACTIVE,80\n")


def write_golden_drops(root, day=DAY) -> None:
    """The golden day as a legacy drop folder: six daily CSVs and an NBS snapshot."""
    from cvas.core.schemas import KINDS

    for kind in KINDS:
        write_drop(root / "Daily_Data" / f"{day}" / f"{kind}_atlas_day.csv", kind, ROWS[kind])
    nbs = root / "User_Base" / "NBS_BASE" / f"{day:%Y%m%d}_NBS_Base.csv"
    nbs.parent.mkdir(parents=True, exist_ok=True)
    nbs.write_text(NBS_SNAPSHOT)


def write_golden_master(path) -> None:
    """The scenario's Excel master (the columns cvas reads) at `path`."""
    from openpyxl import Workbook

    wb = Workbook()
    wb.active.title = "Hoja2"
    wb.active.append(["CPC", "CPC to upgrade", "Service Name", "TME Category", "Subscription Model", "Price"])
    for cpc, name, cat, model, price in MASTER:
        wb.active.append([cpc, None, name, cat, model, price])
    wb.save(path)


def write_golden_directory_cfg(folder):
    """The golden day as directory drops under `folder`, with its Excel master and an empty
    exclusion list; returns (drops folder, a luigi.cfg for the `cvas` command with the data
    root `folder/data`)."""
    from tests.cli_runs import write_cfg

    drops = folder / "drops"
    write_golden_drops(drops)
    write_golden_master(folder / "master.xlsx")
    (folder / "excl.csv").write_text("msisdn,tmuserid\n")
    cfg = write_cfg(folder / "luigi.cfg", folder / "data", source="directory", master_xlsx=folder / "master.xlsx",
                    exclusions=folder / "excl.csv", extra=f"[directory_source]\nroot = {drops}\n")
    return drops, cfg
