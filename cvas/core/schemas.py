"""The transaction contracts: kinds, CSV column orders, Arrow types, dates and keys, declared once."""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa

KINDS: tuple[str, ...] = ("act", "reno", "dct", "cnr", "rfnd", "ppd")
# The kinds the subscription view reads (PPD has no lifecycle, see cvas.steps.subscriptions).
VIEW_KINDS: tuple[str, ...] = ("act", "reno", "dct", "cnr", "rfnd")

STR = pa.large_string()
INT = pa.int64()
FLT = pa.float64()
TS = pa.timestamp("us")

# Columns shared by the four telefonicaes_sub_mgr_fact extracts (legacy rule L3.3).
_TAIL = [
    ("trans_date", TS), ("act_date", TS), ("reno_date", TS), ("camp_name", STR),
    ("tef_prov", INT), ("campana_medium", STR), ("campana_id", STR), ("subscription_id", INT),
]
_HEAD = [("tmuserid", STR), ("msisdn", STR), ("cpc", INT), ("trans_type_id", INT)]


@dataclass(frozen=True)
class KindSpec:
    """One transaction kind: its CSV/Parquet columns in legacy order and its identity."""

    kind: str
    columns: tuple[tuple[str, pa.DataType], ...]
    date_column: str          # the primary date: decides the day and the partition
    key: tuple[str, ...]      # dedup identity within a day (legacy rule L7.6, decision D1)
    trans_type_id: int | None = None

    @property
    def names(self) -> list[str]:
        return [name for name, _ in self.columns]

    @property
    def schema(self) -> pa.Schema:
        return pa.schema([pa.field(name, typ) for name, typ in self.columns])


_SUB_KEY = ("subscription_id", "trans_date", "trans_type_id")

SPECS: dict[str, KindSpec] = {
    "act": KindSpec("act", tuple(_HEAD + [("channel_id", INT), ("channel_act", STR)] + _TAIL + [("rev", FLT)]),
                    "trans_date", _SUB_KEY, 1),
    "reno": KindSpec("reno", tuple(_HEAD + [("channel_id", INT), ("channel_act", STR)] + _TAIL + [("rev", FLT)]),
                     "trans_date", _SUB_KEY, 2),
    "dct": KindSpec("dct", tuple(_HEAD + [("channel_dct", STR)] + _TAIL), "trans_date", _SUB_KEY, 3),
    "ppd": KindSpec("ppd", tuple(_HEAD + [("channel_id", INT)] + _TAIL + [("rev", FLT)]),
                    "trans_date", _SUB_KEY, 4),
    "cnr": KindSpec("cnr", (("cancel_date", TS), ("sbn_id", INT), ("tmuserid", STR), ("cpc", INT), ("mode", STR)),
                    "cancel_date", ("sbn_id", "cancel_date")),
    "rfnd": KindSpec("rfnd", (("tmuserid", STR), ("cpc", INT), ("refnd_date", TS), ("rfnd_amount", FLT),
                              ("rfnd_cnt", INT), ("sbnid", INT), ("instant_rfnd", STR)),
                     "refnd_date", ("sbnid", "tmuserid", "cpc", "refnd_date", "instant_rfnd")),
}

# decision D15: the plausible range [low, high) of every numeric transaction column; a value
# outside is rejected with its reason (`out_of_range`). Money fits the DECIMAL(18, 2) the SQL
# sums in (negative amounts have their own reason); a refund count stays small enough that
# years of them sum within int64; codes (cpc, channel, provider) are not negative. Ids and the
# transaction type (checked for its exact value) keep the whole int64 range.
MONEY_LIMIT = 10**16
INT64_LIMIT = 2**63
NUMERIC_RANGES: dict[str, tuple[int, int]] = {
    "rev": (0, MONEY_LIMIT), "rfnd_amount": (0, MONEY_LIMIT), "rfnd_cnt": (0, 1_000_001),
    "cpc": (0, INT64_LIMIT), "channel_id": (0, INT64_LIMIT), "tef_prov": (0, INT64_LIMIT),
    "trans_type_id": (-INT64_LIMIT, INT64_LIMIT), "subscription_id": (-INT64_LIMIT, INT64_LIMIT),
    "sbn_id": (-INT64_LIMIT, INT64_LIMIT), "sbnid": (-INT64_LIMIT, INT64_LIMIT),
}

# Per-day counters (legacy rules L9.4/L9.5): the 15 columns of Counters_CPC, canonical order.
COUNTER_COLUMNS: tuple[tuple[str, pa.DataType], ...] = (
    ("date", pa.date32()), ("cpc", INT), ("act_count", INT), ("act_free", INT), ("act_pay", INT),
    ("upg_count", INT), ("reno_count", INT), ("dct_count", INT), ("upg_dct_count", INT),
    ("cnr_count", INT), ("ppd_count", INT), ("rfnd_count", INT), ("rfnd_amount", FLT), ("rev", FLT),
    ("last_updated", TS),
)
COUNTER_SCHEMA = pa.schema([pa.field(n, t) for n, t in COUNTER_COLUMNS])

# Counters_Service.csv (legacy rule L9.6): 18 columns.
SERVICE_EXPORT_COLUMNS: tuple[str, ...] = (
    "date", "service_name", "tme_category", "cpc", "cpc_period", "cpc_price", "act_count", "act_free",
    "act_pay", "upg_count", "reno_count", "dct_count", "upg_dct_count", "cnr_count", "ppd_count",
    "rfnd_count", "rfnd_amount", "rev",
)

# MASTERCPC.csv (legacy rule L4.4).
MASTER_COLUMNS: tuple[str, ...] = ("cpc", "service_name", "tme_category", "cpc_period", "cpc_price")

# Services dropped from the service export and the user base (legacy rule L5.4, decision D7).
DEFAULT_EXCLUDED_SERVICES: tuple[str, ...] = ("nubico", "challenge arena", "movistar apple music", "juegos onmo")


def spec(kind: str) -> KindSpec:
    """The spec of `kind`; raises ValueError naming the valid kinds."""
    try:
        return SPECS[kind]
    except KeyError:
        raise ValueError(f"unknown transaction kind {kind!r}; expected one of {', '.join(KINDS)}") from None
