"""The daily report's charts: SVG trends, stacked areas and bars of the report's data (cvas.analyst.svgchart)."""

from __future__ import annotations

import datetime as dt

import pandas as pd

from cvas.analyst.svgchart import Panel, Series, hbar_chart, time_chart

from cvas.analyst.report_data import NO_CATEGORY, REST_CATEGORIES, TOP_CATEGORIES, TOP_SERVICES, ReportData

# tab10 then tab20's light tones (matplotlib's colours): categories keep one colour across the charts.
PALETTE: tuple[str, ...] = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
                            "#7f7f7f", "#bcbd22", "#17becf", "#aec7e8", "#ffbb78", "#98df8a", "#ff9896")


def day_runs(days: list[dt.date]) -> list[tuple[dt.date, dt.date]]:
    runs: list[tuple[dt.date, dt.date]] = []
    for d in sorted(days):
        if runs and d - runs[-1][1] == dt.timedelta(days=1):
            runs[-1] = (runs[-1][0], d)
        else:
            runs.append((d, d))
    return runs


def _series(data: ReportData, column: str) -> tuple[float, ...]:
    """A column of the daily frame over the shown days (NaN: no data that day)."""
    return tuple(float(v) for v in data.daily.loc[data.shown, column])


def _trend(data: ReportData, name: str, title: str, parts: list[tuple[str, str, str, str]], kind: str = "count",
           missing: list[dt.date] | None = None) -> str:
    """A trend chart over the shown days. parts: (column, label, 'bar'|'stack'|'line', colour);
    `missing` (the days without counters unless given) shaded."""
    series = tuple(Series(label, _series(data, column), colour, style) for column, label, style, colour in parts)
    missing = data.health.missing_counter_days if missing is None else missing
    return time_chart(name, title, data.shown, [Panel(series, kind)], gaps=day_runs(missing))


def _panels(data: ReportData, name: str, title: str, parts: list[tuple[str, str, str, str, str]],
            missing: list[dt.date]) -> str:
    """One panel per series, stacked, sharing the time axis: (column, label, style, format, colour).
    Separate panels, not a second y axis: two scales on one plot invite reading a crossing."""
    panels = [Panel((Series(label, _series(data, column), colour, style),), kind, title=label, height=110)
              for column, label, style, kind, colour in parts]
    return time_chart(name, title, data.shown, panels, gaps=day_runs(missing))


def _top_and_other(pivot: pd.DataFrame, top: int = TOP_CATEGORIES) -> pd.DataFrame:
    """The `top` largest categories and UNKNOWN as their own series; the rest summed as REST_CATEGORIES."""
    order = pivot.sum().sort_values(ascending=False, kind="mergesort")
    keep = [c for c in order.index if c != NO_CATEGORY][:top] + [c for c in order.index if c == NO_CATEGORY]
    out = pivot[keep].copy()
    rest = [c for c in pivot.columns if c not in keep]
    if rest:
        out[REST_CATEGORIES] = pivot[rest].sum(axis=1)
    return out


def _colours(names: list[str]) -> dict[str, str]:
    grey = {REST_CATEGORIES: "#c7c7c7", NO_CATEGORY: "#8c8c8c"}
    return {n: grey.get(n, PALETTE[i % len(PALETTE)]) for i, n in enumerate(sorted(names))}


def _stacked_area(data: ReportData, name: str, title: str, pivot: pd.DataFrame, kind: str,
                  missing: list[dt.date], colours: dict[str, str]) -> str:
    """A stacked area over the days that have data (gaps are shaded, not drawn as zero)."""
    series: tuple[Series, ...] = ()
    if not pivot.empty:
        pivot = _top_and_other(pivot).reindex(data.shown)
        series = tuple(Series(str(c), tuple(float(v) for v in pivot[c]), colours.get(c, "#c7c7c7"), "area")
                       for c in pivot.columns)
    return time_chart(name, title, data.shown, [Panel(series, kind, height=200)], gaps=day_runs(missing),
                      legend="right")


def charts(data: ReportData) -> dict[str, tuple[str, str]]:
    """Every chart of the report: name → (title, inline SVG)."""
    out: dict[str, tuple[str, str]] = {}
    missing = data.health.missing_counter_days
    out["revenue"] = ("Revenue per day", _trend(data, "revenue", "Revenue per day",
                                                [("rev", "Revenue", "bar", PALETTE[0])], kind="eur"))
    out["activations"] = ("Activations and upgrades", _trend(data, "activations", "Activations and upgrades", [
        ("act_pay", "Paid activations", "stack", PALETTE[0]), ("act_free", "Free activations", "stack", PALETTE[10]),
        ("upg_count", "Upgrades", "line", PALETTE[1])]))
    out["renewals"] = ("Renewals", _trend(data, "renewals", "Renewals",
                                          [("reno_count", "Renewals", "bar", PALETTE[2])]))
    out["terminations"] = ("Deactivations and cancellations", _trend(
        data, "terminations", "Deactivations and cancellations",
        [("dct_count", "Deactivations", "line", PALETTE[3]), ("cnr_count", "Cancellations", "line", PALETTE[4])]))
    out["net_adds"] = ("Net adds (activations − deactivations)", _trend(
        data, "net_adds", "Net adds", [("net_adds", "Net adds", "bar", PALETTE[9])], kind="signed"))
    out["refunds"] = ("Refunds", _panels(data, "refunds", "Refunds", [
        ("rfnd_count", "Charges refunded", "bar", "count", PALETTE[5]),
        ("rfnd_amount", "Refunded (€)", "line", "eur", PALETTE[3])], missing))
    if data.health.user_base_days:
        ub_missing = data.health.missing_user_base_days
        out["user_base"] = ("User base", _trend(data, "user_base", "User base",
                                                [("user_base", "User base", "line", PALETTE[0])], missing=ub_missing))
        out["churn_arpu"] = ("Churn and ARPU per day", _panels(
            data, "churn_arpu", "Churn and ARPU per day",
            [("churn", "Churn", "line", "pct", PALETTE[3]), ("arpu", "ARPU (€)", "line", "eur", PALETTE[2])],
            sorted(set(missing) | set(ub_missing))))
    revenue = data.kept.pivot_table(index="date", columns="category", values="rev", aggfunc="sum")
    base = data.user_base.pivot_table(index="date", columns="category", values="user_base", aggfunc="sum")
    colours = _colours(list(set(revenue.columns) | set(base.columns) | set(data.categories["category"])))
    out["revenue_by_category"] = ("Revenue by category", _stacked_area(
        data, "revenue_by_category", "Revenue by category", revenue, "eur", missing, colours))
    cats = data.categories
    out["categories_day"] = (f"Revenue by category on {data.day}", hbar_chart(
        "categories_day", "Revenue by category", list(cats["category"]), [float(v) for v in cats["rev"]],
        [colours[c] for c in cats["category"]], "eur"))
    svc = data.services
    out["services_day"] = (f"Top {TOP_SERVICES} services by revenue on {data.day}", hbar_chart(
        "services_day", "Top services by revenue", list(svc["service"]), [float(v) for v in svc["rev"]],
        [PALETTE[0]] * len(svc), "eur"))
    if data.health.user_base_days:
        out["user_base_by_category"] = ("User base by category", _stacked_area(
            data, "user_base_by_category", "User base by category", base, "count",
            data.health.missing_user_base_days, colours))
    return out


# -- HTML --------------------------------------------------------------------------------
