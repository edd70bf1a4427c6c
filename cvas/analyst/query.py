"""`cvas query` (legacy rule L11: check_users, query_*_from_tx): a subscription's or user's view rows and timeline.

It is a manual tool: its result holds msisdn and tmuserid and is meant for the terminal.
Nothing here logs those values (only counts); every searched value is bound as a SQL
parameter, never formatted into SQL text (legacy rule L-D20).
"""

from __future__ import annotations

import datetime as dt
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa

from cvas.core import provenance
from cvas.core.layout import Layout, parts
from cvas.core.schemas import KINDS
from cvas.sql import connect, load_sql, sql_path
from cvas.steps.subscriptions import SUBSCRIPTION_SCHEMA, register_transactions

log = logging.getLogger(__name__)

_DIGITS = re.compile(r"^[0-9]+$")


class QueryError(ValueError):
    """Raised for an unusable search: no or several keys, a non-numeric id or msisdn, a missing as-of view."""


@dataclass
class Investigation:
    """What `cvas query` found. `subscriptions` has the 34 view columns; `timeline` one row per
    ACT/RENO/DCT/CNR/RFND event of those subscriptions; `totals` one row per subscription;
    `user_events` the same users' PPD purchases and refunds without a subscription id."""

    key: str
    value: str
    as_of: dt.date | None
    view_path: Path | None
    view_as_of: str | None
    subscriptions: pa.Table
    timeline: pa.Table
    totals: pa.Table
    user_events: pa.Table
    notes: list[str] = field(default_factory=list)


def normalize_msisdn(text: str) -> str:
    """Digits only, `34` prefixed when absent (as the legacy query_msisdn_from_tx)."""
    value = re.sub(r"[\s-]", "", text.strip())
    value = value[1:] if value.startswith("+") else value
    if not _DIGITS.match(value):
        raise QueryError("an msisdn is digits only (an optional + and spaces are ignored)")
    return value if value.startswith("34") else "34" + value


def _search(subscription_id, tmuserid, msisdn) -> tuple[str, str, dict]:
    given = {k: v for k, v in (("subscription_id", subscription_id), ("tmuserid", tmuserid), ("msisdn", msisdn))
             if v is not None and str(v).strip() != ""}
    if len(given) != 1:
        raise QueryError("give exactly one of --subscription-id, --tmuserid, --msisdn")
    key, value = next(iter(given.items()))
    params = {"subscription_id": None, "tmuserid": None, "msisdn": None}
    if key == "subscription_id":
        text = str(value).strip()
        if not re.match(r"^-?[0-9]+$", text):
            raise QueryError("a subscription id is an integer")
        params["subscription_id"] = int(text)
        return key, text, params
    if key == "msisdn":
        params["msisdn"] = normalize_msisdn(str(value))
        return key, params["msisdn"], params
    params["tmuserid"] = str(value).strip()
    return key, params["tmuserid"], params


def missing_view(layout: Layout, as_of: dt.date, keep_days: int) -> str:
    """Why there is no subscription view as of `as_of`, and how to get one (one sentence)."""
    from cvas.steps.subscriptions import as_of_days, outside_retention

    build = f"`luigi --module tasks SubscriptionView --date {as_of}`"
    days = as_of_days(layout)
    where = f"there is no subscription view as of {as_of} ({layout.subscriptions(as_of)})"
    if not days or as_of > max(days):
        return f"{where}: build the day first (`cvas daily --date {as_of}`)"
    if outside_retention(layout, as_of, keep_days):
        need = (max(days) - as_of).days + 1
        return (f"{where}: views are kept {keep_days} day(s) back from the newest ({max(days)}); set [cvas] "
                f"subscriptions_keep_days = {need} in luigi.cfg, then run {build}")
    return f"{where}: build it with {build}"


def _view_path(layout: Layout, as_of: dt.date | None) -> Path:
    return layout.subscriptions(as_of) if as_of else layout.subscriptions_latest


def investigate(layout: Layout, *, subscription_id: int | str | None = None, tmuserid: str | None = None,
                msisdn: str | None = None, as_of: dt.date | None = None, keep_days: int = 7) -> Investigation:
    """Find the subscriptions of one id or user in the view (as of `as_of`, else the latest),
    then their timeline across ACT, RENO, DCT, CNR and RFND, their totals, and the same
    users' PPD purchases. With `as_of`, events after that day are left out too (`keep_days`:
    the views' retention, for the explanation when that view is absent)."""
    key, value, params = _search(subscription_id, tmuserid, msisdn)
    view = _view_path(layout, as_of)
    notes: list[str] = []
    if as_of and not view.exists():
        raise QueryError(missing_view(layout, as_of, keep_days) + "; or omit --as-of")
    con = connect()
    try:
        register_transactions(con, layout, KINDS)
        ids: list[int] = []
        if params["subscription_id"] is not None:
            ids = [params["subscription_id"]]
        else:
            ids = [r[0] for r in con.execute(load_sql("query_subscription_ids"),
                                             {"tmuserid": params["tmuserid"], "msisdn": params["msisdn"],
                                              "as_of": as_of}).fetchall()]
        files = list(parts(view).values())   # the view's parts only: never a stray file beside them
        if files:
            con.execute(f"create temp view view_rows as select * from read_parquet([{', '.join(map(sql_path, files))}], "
                        f"hive_partitioning = false)")
            subscriptions = con.execute(load_sql("query_view"), dict(params, ids=ids)).fetch_arrow_table()
            meta = provenance.read(layout, view) or {}
            view_as_of = meta.get("as_of") or (str(as_of) if as_of else None)
        else:
            notes.append(f"no subscription view at {view}: showing transactions only")
            subscriptions, view_as_of = SUBSCRIPTION_SCHEMA.empty_table(), None
        all_ids = sorted(set(ids) | set(subscriptions.column("subscription_id").to_pylist()))
        timeline = con.execute(load_sql("query_timeline"), {"ids": all_ids, "as_of": as_of}).fetch_arrow_table()
        con.register("timeline", timeline)
        totals = con.execute(load_sql("query_totals")).fetch_arrow_table()
        tmuserids = {params["tmuserid"]} | set(subscriptions.column("tmuserid").to_pylist()) \
            | set(timeline.column("tmuserid").to_pylist())
        msisdns = {params["msisdn"]} | set(subscriptions.column("msisdn").to_pylist()) \
            | set(timeline.column("msisdn").to_pylist())
        user_events = con.execute(load_sql("query_user_events"), {
            "tmuserids": sorted(v for v in tmuserids if v), "msisdns": sorted(v for v in msisdns if v),
            "as_of": as_of}).fetch_arrow_table()
    finally:
        con.close()
    log.info("query by %s: %d subscription(s) in the view, %d timeline event(s), %d user event(s)", key,
             subscriptions.num_rows, timeline.num_rows, user_events.num_rows)
    return Investigation(key, value, as_of, view if view.exists() else None, view_as_of, subscriptions,
                         timeline.drop_columns(["tmuserid", "msisdn"]), totals, user_events, notes)


# -- terminal output -----------------------------------------------------------------------

def _cell(value) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, float):
        return f"{value:.2f}"
    if isinstance(value, dt.datetime):
        return value.isoformat(sep=" ")
    if isinstance(value, list):
        return "[" + ", ".join(_cell(v) for v in value) + "]"
    return str(value)


def _grid(rows: list[dict], columns: list[str]) -> list[str]:
    cells = [[_cell(r[c]) for c in columns] for r in rows]
    widths = [max([len(c)] + [len(row[i]) for row in cells]) for i, c in enumerate(columns)]
    out = ["  " + "  ".join(c.ljust(w) for c, w in zip(columns, widths)).rstrip()]
    out += ["  " + "  ".join(v.ljust(w) for v, w in zip(row, widths)).rstrip() for row in cells]
    return out


def format_investigation(inv: Investigation) -> str:
    """The report printed by `cvas query` (holds PII: for the terminal only)."""
    source = f"view as of {inv.view_as_of}" if inv.view_as_of else "no view"
    lines = [f"search: {inv.key} = {inv.value}" + (f", as of {inv.as_of}" if inv.as_of else "") + f" ({source})"]
    lines += [f"note: {n}" for n in inv.notes]
    subs = inv.subscriptions.to_pylist()
    lines.append("")
    lines.append(f"== {len(subs)} subscription(s) in the view ==")
    width = max(len(n) for n in SUBSCRIPTION_SCHEMA.names)
    for sub in subs:
        lines.append(f"-- subscription {sub['subscription_id']} --")
        lines += [f"  {name.ljust(width)}  {_cell(sub[name])}" for name in SUBSCRIPTION_SCHEMA.names]
    events = inv.timeline.to_pylist()
    totals = {t["subscription_id"]: t for t in inv.totals.to_pylist()}
    lines.append("")
    lines.append(f"== timeline: {len(events)} event(s) ==")
    columns = ["transaction_type", "trans_type_id", "trans_date", "cpc", "channel", "rev", "mode", "rfnd_amount",
               "rfnd_cnt", "instant_rfnd"]
    for sub_id in sorted(totals):
        own = [e for e in events if e["subscription_id"] == sub_id]
        t = totals[sub_id]
        lines.append(f"-- subscription {sub_id}: {len(own)} event(s) --")
        lines += _grid(own, columns)
        lines.append(f"  totals: ACT {t['act_rows']}, RENO {t['reno_rows']}, DCT {t['dct_rows']}, CNR {t['cnr_rows']}, "
                     f"RFND {t['rfnd_rows']} row(s) ({t['refunded_charges']} refunded charge(s)); "
                     f"revenue {t['revenue']:.2f} EUR, refunded {t['refunded']:.2f} EUR")
    user = inv.user_events.to_pylist()
    lines.append("")
    lines.append(f"== same user(s): {len(user)} one-off purchase(s) (PPD) and refund(s) without a subscription ==")
    if user:
        lines += _grid(user, ["transaction_type", "trans_date", "cpc", "rev", "rfnd_amount", "rfnd_cnt",
                              "instant_rfnd"])
        ppd_rev = sum(e["rev"] or 0 for e in user if e["transaction_type"] == "PPD")
        refunded = sum(e["rfnd_amount"] or 0 for e in user if e["transaction_type"] == "RFND")
        lines.append(f"  totals: PPD revenue {ppd_rev:.2f} EUR, refunded {refunded:.2f} EUR")
    return "\n".join(lines)
