"""The daily report's data: the window's counters and user base read, scoped and shaped into KPIs, tables and health.

What it reads, and nothing else (never the transaction history): the per-day counter files
of the window, MASTERCPC.csv, the per-day user-base files of the window and of the day
before it, the window's quality reports, and directory listings and provenance sidecars
for the health panel. Charts are SVG drawn by cvas.analyst.svgchart and inlined in the page
(no script, no font, no stylesheet and no image is fetched), the same bytes for the same inputs.

Definitions (legacy rule L9.4, decision D7):

* scope: the service export's. Counter rows whose master service name contains an excluded
  keyword (case-insensitive) are left out of every figure; unmapped CPCs stay in as
  `UNKNOWN`. The health panel says what was left out. The user base has the user-base
  exports' scope (services excluded by the snapshot's names, legacy rule L5.4);
* activations = act_count (regular ACT, UPGRADE excluded), of which free = act_free and
  paid = act_pay; upgrades = upg_count; renewals = reno_count; deactivations = dct_count
  (UPGRADE DCT excluded); cancellations = cnr_count; charges refunded = rfnd_count (Σ rfnd_cnt:
  one refund record may refund several charges) and rfnd_amount; revenue = rev;
* net adds = activations − deactivations (the legacy notes' net_activations);
* user base (D) = Σ User_Base of the day's snapshot;
* churn (D) = deactivations(D) / (user base(D−1) + activations(D)): the legacy notes' formula
  with the previous day's snapshot as the start-of-day base; n/a without that snapshot;
* ARPU (D) = revenue(D) / the mean user base of D−1 and D (those present); ARPU 30 days =
  revenue of the 30 days ending D / the mean daily user base of those days;
* services and categories: every CPC, counters and user base alike, is assigned by the
  master: its service name stripped, its tme_category stripped and mapped as the user base
  maps it (legacy rule L5.5: Education/Images → Edu_Ima, News/Sports → News_Sport). A CPC
  missing from the master (or with a blank name or category there) is `UNKNOWN`, service
  and category, as in Counters_Service.csv; the health panel names the CPCs missing from
  the master that the report's data holds (counters or user base, the day and the window).
  The user-base exports keep the snapshot's own names (legacy rules L4.7, L5.6).
"""

from __future__ import annotations

import datetime as dt
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from cvas.core.catalogue import WINDOW_DAYS, days_of, report_window
from cvas.core.layout import Layout
from cvas.steps.master import read_master_csv
from cvas.core.quality import read_quality
from cvas.core.schemas import COUNTER_SCHEMA, KINDS
from cvas.steps.user_base import map_category


log = logging.getLogger(__name__)

ARPU_DAYS = 30
TOP_SERVICES = 10
TOP_CATEGORIES = 8  # stacked charts: the largest categories, the rest summed as REST_CATEGORIES

COUNT_COLUMNS: tuple[str, ...] = ("act_count", "act_free", "act_pay", "upg_count", "reno_count", "dct_count",
                                  "upg_dct_count", "cnr_count", "ppd_count", "rfnd_count")
AMOUNT_COLUMNS: tuple[str, ...] = ("rfnd_amount", "rev")

# KPI tiles: key (the `data-kpi` attribute), label, format.
KPI_DEFS: tuple[tuple[str, str, str], ...] = (
    ("revenue", "Revenue", "eur"),
    ("activations", "Activations", "count"),
    ("activations_free", "Free activations", "count"),
    ("activations_paid", "Paid activations", "count"),
    ("upgrades", "Upgrades", "count"),
    ("renewals", "Renewals", "count"),
    ("deactivations", "Deactivations", "count"),
    ("cancellations", "Cancellations", "count"),
    ("net_adds", "Net adds", "signed"),
    ("refunds", "Charges refunded", "count"),
    ("refund_amount", "Refunded", "eur"),
    ("user_base", "User base", "count"),
    ("churn", "Churn", "pct"),
    ("arpu", "ARPU (day)", "eur_ratio"),
    ("arpu_30d", "ARPU (30 days)", "eur_ratio"),
)
# KPI key → column of the daily frame.
KPI_COLUMN: dict[str, str] = {
    "revenue": "rev", "activations": "act_count", "activations_free": "act_free", "activations_paid": "act_pay",
    "upgrades": "upg_count", "renewals": "reno_count", "deactivations": "dct_count", "cancellations": "cnr_count",
    "net_adds": "net_adds", "refunds": "rfnd_count", "refund_amount": "rfnd_amount", "user_base": "user_base",
    "churn": "churn", "arpu": "arpu",
}

UNKNOWN_SERVICE = "UNKNOWN"
NO_CATEGORY = UNKNOWN_SERVICE  # one name for what the master does not say, services and categories alike
REST_CATEGORIES = "Smaller categories"  # the sum of the categories beyond TOP_CATEGORIES (never UNKNOWN)



class ReportInputError(RuntimeError):
    """Raised when the report day has no counter file: there is nothing to report on."""


# -- formatting for people ---------------------------------------------------------------

def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def fmt_count(value: Any) -> str:
    """1234 → '1,234'; n/a for a missing value."""
    return "n/a" if _missing(value) else f"{int(round(value)):,}"


def fmt_signed(value: Any) -> str:
    """Net figures: '+12', '−3', '0'."""
    if _missing(value):
        return "n/a"
    n = int(round(value))
    return f"+{n:,}" if n > 0 else (f"\u2212{-n:,}" if n < 0 else "0")


def fmt_eur(value: Any) -> str:
    """1234.5 → '€1,234.50'; negative amounts with a minus sign."""
    if _missing(value):
        return "n/a"
    text = f"€{abs(value):,.2f}"
    return "\u2212" + text if round(value, 2) < 0 else text


def fmt_pct(value: Any, digits: int = 2) -> str:
    """A ratio as a percentage: 0.01234 → '1.23%'."""
    return "n/a" if _missing(value) else f"{value * 100:.{digits}f}%"


FORMATTERS = {"count": fmt_count, "signed": fmt_signed, "eur": fmt_eur, "eur_ratio": fmt_eur, "pct": fmt_pct}


def machine_value(value: Any, kind: str) -> str:
    """The `data-value` of a KPI: integers for counts, 2 decimals for amounts, full precision
    for ratios (percentages, euros per user); empty when not available."""
    if _missing(value):
        return ""
    if kind in ("count", "signed"):
        return str(int(round(value)))
    if kind == "eur":
        return f"{value:.2f}"
    return repr(round(float(value), 10))


# -- what the report is made of ----------------------------------------------------------

@dataclass(frozen=True)
class Kpi:
    key: str
    label: str
    kind: str
    value: Any
    previous: Any = None
    average_7d: Any = None
    note: str = ""


@dataclass
class Health:
    """The data-health panel: gaps, rejects, stale outputs, what was left out of the figures."""

    history_start: dt.date | None = None
    missing_counter_days: list[dt.date] = field(default_factory=list)
    user_base_start: dt.date | None = None
    user_base_days: int = 0
    missing_user_base_days: list[dt.date] = field(default_factory=list)
    rejects: list[dict[str, Any]] = field(default_factory=list)
    problems: list[tuple[dt.date, str, str, str]] = field(default_factory=list)
    outputs: list[tuple[str, bool, str]] = field(default_factory=list)
    excluded_keywords: tuple[str, ...] = ()
    excluded_services: list[str] = field(default_factory=list)
    excluded_rows: int = 0
    excluded_revenue: float = 0.0
    unmapped_cpcs: list[int] = field(default_factory=list)         # missing from the master, in the day's data
    unmapped_cpcs_window: list[int] = field(default_factory=list)  # ... in the window's data (the day's included)


@dataclass
class ReportData:
    day: dt.date
    window: list[dt.date]
    shown: list[dt.date]          # the window from the first day with data on: what the trends plot
    daily: pd.DataFrame           # one row per window day: counter totals and derived KPIs (NaN = no data)
    kept: pd.DataFrame            # counter rows in scope, with service and category (by_master)
    user_base: pd.DataFrame       # user-base rows in scope (date, cpc, service_name, tme_category, user_base),
                                  # with service and category by the master as the counters (by_master)
    kpis: list[Kpi]
    categories: pd.DataFrame      # the day, per category
    services: pd.DataFrame        # the day, top services by revenue
    health: Health


def _excluded(name: str, keywords: tuple[str, ...]) -> bool:
    low = name.lower()
    return any(k in low for k in keywords)


def _category(raw: Any) -> str:
    text = "" if raw is None or (isinstance(raw, float) and math.isnan(raw)) else str(raw).strip()
    return map_category(text) if text else NO_CATEGORY


def read_counter_window(layout: Layout, days: list[dt.date]) -> tuple[pd.DataFrame, set[dt.date]]:
    """The counter rows of the days of `days` that have a counter file (one listing, one read
    each), and those days (a file without rows is a day without transactions, not a gap)."""
    built = days_of(layout, "daily_counters") & set(days)
    # ParquetFile: one file as it is, without read_table's dataset discovery (half the cost)
    tables = [pq.ParquetFile(layout.daily_counters(d)).read().cast(COUNTER_SCHEMA) for d in sorted(built)]
    table = pa.concat_tables(tables) if tables else COUNTER_SCHEMA.empty_table()
    return table.drop(["last_updated"]).to_pandas(date_as_object=True), built


def by_master(rows: pd.DataFrame, master: pa.Table) -> pd.DataFrame:
    """`rows` (each with a cpc) with the master's assignment added, one rule for counters and user
    base: `service` (the master's name stripped), `category` (_category of the master's) and
    `mapped` (the CPC is in the master). Missing from the master, or blank there: UNKNOWN."""
    m = master.select(["cpc", "service_name", "tme_category"]).to_pandas().rename(
        columns={"service_name": "master_service", "tme_category": "master_category"})
    df = rows.merge(m, on="cpc", how="left")
    df["service"] = df["master_service"].map(lambda s: (s.strip() if isinstance(s, str) else "") or UNKNOWN_SERVICE)
    df["category"] = df["master_category"].map(_category)
    df["mapped"] = rows["cpc"].isin(m["cpc"]).to_numpy()
    return df.drop(columns=["master_service", "master_category"])


def scope_counters(counters: pd.DataFrame, master: pa.Table,
                   excluded_keywords: tuple[str, ...]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(kept, dropped): counter rows mapped to service and category, split on the excluded
    services as the service export does (unmapped CPCs kept as UNKNOWN)."""
    df = by_master(counters, master)
    dropped = df["service"].map(lambda s: _excluded(s, excluded_keywords)).astype(bool)
    return df[~dropped].reset_index(drop=True), df[dropped].reset_index(drop=True)


def read_user_base_window(layout: Layout, days: list[dt.date], excluded_keywords: tuple[str, ...]) -> pd.DataFrame:
    """The per-day user-base rows of `days` (those with a file), without the excluded services."""
    have = days_of(layout, "user_base_daily")
    tables = [pq.ParquetFile(layout.user_base_daily(d)).read() for d in days if d in have]
    columns = ["date", "cpc", "service_name", "tme_category", "user_base"]
    if not tables:
        return pd.DataFrame({c: pd.Series(dtype="object" if c in ("date", "service_name", "tme_category") else "int64")
                             for c in columns})
    df = pa.concat_tables([t.select(columns) for t in tables]).to_pandas(date_as_object=True)
    keep = ~df["service_name"].map(lambda s: _excluded(s, excluded_keywords)).astype(bool)
    return df[keep].reset_index(drop=True)


def daily_frame(kept: pd.DataFrame, user_base: pd.DataFrame, window: list[dt.date],
                counted: set[dt.date]) -> pd.DataFrame:
    """One row per window day: counter totals (0 on a counted day without rows, NaN on a day
    without counters), net adds, user base, churn and ARPU by the module's definitions."""
    totals = kept.groupby("date")[list(COUNT_COLUMNS + AMOUNT_COLUMNS)].sum()
    daily = totals.reindex(window).astype("float64")
    daily.loc[[d for d in window if d in counted]] = daily.loc[[d for d in window if d in counted]].fillna(0.0)
    for column in AMOUNT_COLUMNS:
        daily[column] = daily[column].round(2)
    daily["net_adds"] = daily["act_count"] - daily["dct_count"]
    base = user_base.groupby("date")["user_base"].sum().astype("float64")
    previous_days = [d - dt.timedelta(days=1) for d in window]
    ub = base.reindex(window).to_numpy()
    ub_before = base.reindex(previous_days).to_numpy()
    daily["user_base"] = ub
    daily["user_base_start"] = ub_before
    start = daily["user_base_start"] + daily["act_count"]
    daily["churn"] = (daily["dct_count"] / start).where(start > 0)
    mean_base = pd.concat([daily["user_base_start"], daily["user_base"]], axis=1).mean(axis=1, skipna=True)
    daily["arpu"] = (daily["rev"] / mean_base).where(mean_base > 0)
    daily.index.name = "date"
    return daily


def arpu_over(daily: pd.DataFrame, day: dt.date, days: int = ARPU_DAYS) -> tuple[float, int]:
    """(ARPU over the `days` days ending `day`, days with both revenue and user base counted)."""
    span = daily.loc[[d for d in daily.index if day - dt.timedelta(days=days) < d <= day]]
    revenue = span["rev"].sum(skipna=True)
    base = span["user_base"].mean(skipna=True)
    covered = int((span["rev"].notna() & span["user_base"].notna()).sum())
    if _missing(base) or not base or span["rev"].notna().sum() == 0:
        return math.nan, covered
    return float(revenue / base), covered


def compute_kpis(daily: pd.DataFrame, day: dt.date) -> list[Kpi]:
    """The KPI tiles of `day`: value, previous day and mean of the 7 days ending `day`."""
    previous = day - dt.timedelta(days=1)
    last7 = [d for d in daily.index if day - dt.timedelta(days=7) < d <= day]
    kpis = []
    for key, label, kind in KPI_DEFS:
        if key == "arpu_30d":
            value, covered = arpu_over(daily, day)
            note = "" if covered >= ARPU_DAYS else f"{covered} of {ARPU_DAYS} days with revenue and user base"
            kpis.append(Kpi(key, label, kind, value, note=note))
            continue
        column = KPI_COLUMN[key]
        value = daily.at[day, column]
        prev = daily.at[previous, column] if previous in daily.index else math.nan
        avg = daily.loc[last7, column].mean(skipna=True)
        kpis.append(Kpi(key, label, kind, float(value), float(prev), float(avg)))
    return kpis


def category_table(kept: pd.DataFrame, user_base: pd.DataFrame, day: dt.date) -> pd.DataFrame:
    """The day per category: counters, revenue share and user base, by revenue (then name)."""
    rows = kept[kept["date"] == day]
    table = rows.groupby("category")[list(COUNT_COLUMNS + AMOUNT_COLUMNS)].sum()
    base = user_base[user_base["date"] == day]
    table = table.join(base.groupby("category")["user_base"].sum(), how="outer").fillna(0)
    total = table["rev"].sum()
    table["share"] = table["rev"] / total if total else 0.0
    table.index.name = "category"
    table = table.reset_index()
    return table.sort_values(["rev", "category"], ascending=[False, True], kind="mergesort").reset_index(drop=True)


def service_table(kept: pd.DataFrame, user_base: pd.DataFrame, day: dt.date, top: int = TOP_SERVICES) -> pd.DataFrame:
    """The day's top services by revenue (then name), with their user base: the snapshot's
    CPCs assigned to services by the master, as the counters are (by_master)."""
    rows = kept[kept["date"] == day]
    table = rows.groupby("service").agg(
        category=("category", lambda s: ", ".join(sorted(set(s)))),
        **{c: (c, "sum") for c in COUNT_COLUMNS + AMOUNT_COLUMNS})
    base = user_base[user_base["date"] == day]
    table = table.join(base.groupby("service")["user_base"].sum(), how="left")
    total = table["rev"].sum()
    table["share"] = table["rev"] / total if total else 0.0
    table = table.reset_index()
    table = table.sort_values(["rev", "service"], ascending=[False, True], kind="mergesort")
    return table.head(top).reset_index(drop=True)


# -- health ------------------------------------------------------------------------------

def _first(days: set[dt.date]) -> dt.date | None:
    return min(days) if days else None


def collect_health(layout: Layout, day: dt.date, window: list[dt.date], exclusions: Path | None,
                   excluded_keywords: tuple[str, ...], dropped: pd.DataFrame, kept: pd.DataFrame,
                   user_base: pd.DataFrame) -> Health:
    """Gaps, rejects and stale outputs of the window, from listings, sidecars and quality reports."""
    from cvas.core.catalogue import Settings
    from cvas.core.freshness import Freshness
    from cvas.ops.status import MISSING, PRESENT, dataset_label, grid
    from cvas.core.layout import as_of_days

    health = Health(excluded_keywords=excluded_keywords)
    built = days_of(layout, "daily_counters")
    health.history_start = _first(built)
    ub_days = days_of(layout, "user_base_daily")
    health.user_base_start = _first(ub_days)
    in_window = set(window)
    if health.history_start is not None:
        health.missing_counter_days = [d for d in window if d >= health.history_start and d not in built]
    health.user_base_days = len(ub_days & in_window)
    if health.user_base_start is not None:
        health.missing_user_base_days = [d for d in window if d >= health.user_base_start and d not in ub_days]

    start = max(window[0], health.history_start or day)
    datasets = [("transactions", k) for k in KINDS] + [("daily_counters", None), ("user_base_daily", None)]
    own_checks = {dataset_label("daily_counters", None), dataset_label("user_base_daily", None)}  # missing days: above
    settings = Settings(exclusions=exclusions, excluded_services=excluded_keywords)
    cells = grid(layout, start, day, settings, datasets=datasets)
    fresh = Freshness(layout, settings)
    for d, row in cells.items():
        for label, cell in row.items():
            if cell.state not in (PRESENT, MISSING):
                health.problems.append((d, label, cell.state, cell.reason))
            elif cell.state == MISSING and label not in own_checks and d in built:
                health.problems.append((d, label, cell.state, "partition absent but counters exist"))

    for kind in KINDS:
        read = rejected = days = 0
        failed: list[dt.date] = []
        for d in window:
            report = read_quality(layout.quality(kind, d))
            if report is None:
                continue
            days += 1
            read += int(report.get("rows_read", 0) or 0)
            rejected += int(report.get("rejected", 0) or 0)
            if report.get("status") == "failed":
                failed.append(d)
        health.rejects.append({"kind": kind, "days": days, "rows_read": read, "rejected": rejected, "failed": failed})

    ok = fresh.state("counters_export", day).fresh
    health.outputs.append(("Counters_CPC.parquet / Counters_Service.csv", ok,
                           "up to date" if ok else "missing, or older than the per-day counters or master"))
    if ub_days:
        ok = fresh.state("user_base_export", day).fresh
        health.outputs.append(("user_base_by_{service,category,cpc}.csv", ok,
                               "up to date" if ok else "missing, or older than the per-day user-base files"))
    # views up to the report day only: a later day's run must not change this day's page
    views = {v for v in as_of_days(layout) if v <= day}
    if not views:
        health.outputs.append(("subscription view", False, "not built"))
    else:
        newest = max(views)
        current = fresh.state("subscriptions", newest).fresh
        text = f"newest as of {newest}" + ("" if newest >= day else " (before the report day)")
        text += ", up to date" if current else ", stale: transaction files changed since it was built"
        health.outputs.append(("subscription view", current and newest >= day, text))

    today = dropped[dropped["date"] == day]
    health.excluded_rows = int(len(today))
    health.excluded_revenue = round(float(today["rev"].sum()), 2)
    health.excluded_services = sorted(set(today["service"]))
    health.unmapped_cpcs_window, health.unmapped_cpcs = unmapped_cpcs([kept, user_base], window, day)
    return health


def unmapped_cpcs(frames: list[pd.DataFrame], window: list[dt.date], day: dt.date) -> tuple[list[int], list[int]]:
    """The CPCs missing from the master in `frames` (by_master rows): over `window`, and on `day`."""
    rows = pd.concat([f.loc[~f["mapped"].astype(bool), ["date", "cpc"]] for f in frames])
    rows = rows[rows["date"].isin(set(window))]
    return (sorted({int(c) for c in rows["cpc"]}), sorted({int(c) for c in rows.loc[rows["date"] == day, "cpc"]}))


# -- collect -----------------------------------------------------------------------------

def collect(layout: Layout, day: dt.date, *, excluded_services: tuple[str, ...], exclusions: Path | None = None,
            master: pa.Table | None = None, window_days: int = WINDOW_DAYS) -> ReportData:
    """Everything the report shows, computed from the window's files."""
    if not layout.daily_counters(day).exists():
        raise ReportInputError(f"no counters for {day} ({layout.daily_counters(day)}): "
                               f"build the day first (cvas daily --date {day})")
    keywords = tuple(k.strip().lower() for k in excluded_services if k.strip())
    window = report_window(day, window_days)
    master = master if master is not None else read_master_csv(layout.master_cpc)
    counters, counted = read_counter_window(layout, window)
    kept, dropped = scope_counters(counters, master, keywords)
    user_base = by_master(read_user_base_window(layout, [window[0] - dt.timedelta(days=1)] + window, keywords),
                          master)
    daily = daily_frame(kept, user_base, window, counted)
    health = collect_health(layout, day, window, exclusions, keywords, dropped, kept, user_base)
    first_data = min([d for d in (health.history_start, health.user_base_start) if d] or [day])
    shown = [d for d in window if d >= first_data]
    data = ReportData(day=day, window=window, shown=shown, daily=daily, kept=kept,
                      user_base=user_base[user_base["date"].isin(set(window))].reset_index(drop=True),
                      kpis=compute_kpis(daily, day), categories=category_table(kept, user_base, day),
                      services=service_table(kept, user_base, day), health=health)
    log.info("report %s: %d counter days, %d user-base days in the %d-day window; %d CPC rows left out "
             "(excluded services)", day, int(daily["rev"].notna().sum()), health.user_base_days, window_days,
             len(dropped))
    return data


# -- charts ------------------------------------------------------------------------------
