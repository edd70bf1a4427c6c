"""The daily report: one self-contained HTML page with a day's KPIs, 90-day trends, breakdowns and data
health, rendered from the report's data (report_data) and charts (report_charts) with the page template.

What it reads, and nothing else (never the transaction history): the per-day counter files
of the window, MASTERCPC.csv, the per-day user-base files of the window and of the day
before it, the window's quality reports, and directory listings and provenance sidecars
for the health panel. Charts are SVG drawn by cvas.analyst.svgchart and inlined in the page
(no script, no font, no stylesheet and no image is fetched), the same bytes for the same inputs.
The definitions of every figure are in cvas.analyst.report_data.
"""


import datetime as dt
import logging
from pathlib import Path
from typing import Any

from markupsafe import Markup

from cvas import __version__
from cvas.core import provenance
from cvas.core.catalogue import WINDOW_DAYS, report_inputs
from cvas.core.layout import Layout
from cvas.core.publish import write_text_atomic
from cvas.templates import load_template, render
from cvas.steps.user_base import CATEGORY_MAP

from cvas.analyst.report_charts import charts, day_runs
from cvas.analyst.report_data import (FORMATTERS, NO_CATEGORY, UNKNOWN_SERVICE, Health, Kpi, ReportData, collect,
                                     fmt_count, fmt_eur, fmt_pct, fmt_signed, machine_value)


log = logging.getLogger(__name__)

_CSS = load_template("report.css")


def _kpi_tile(k: Kpi) -> dict[str, Any]:
    fmt = FORMATTERS[k.kind]
    sub = []
    if k.key != "arpu_30d":
        sub.append(f"previous day {fmt(k.previous)}")
        sub.append(f"7-day mean {fmt(k.average_7d) if k.kind != 'signed' else fmt_signed(k.average_7d)}")
    if k.note:
        sub.append(k.note)
    return {"key": k.key, "label": k.label, "machine": machine_value(k.value, k.kind), "text": fmt(k.value),
            "sub": sub}


def _table(headers: list[str], rows: list[list[str]], attrs: list[dict[str, str]] | None = None) -> dict[str, Any]:
    """A table for the page: header cells, rows of cell texts, and per row its `data-` attributes."""
    return {"headers": headers, "rows": rows, "attrs": attrs}


def _category_table(data: ReportData) -> dict[str, Any]:
    rows, attrs = [], []
    for r in data.categories.itertuples(index=False):
        rows.append([r.category, fmt_count(r.act_count), fmt_count(r.upg_count), fmt_count(r.reno_count),
                     fmt_count(r.dct_count), fmt_count(r.cnr_count), fmt_count(r.rfnd_count), fmt_eur(r.rfnd_amount),
                     fmt_eur(r.rev), fmt_pct(r.share, 1),
                     fmt_count(r.user_base) if data.health.user_base_days else "n/a"])
        attrs.append({"data-category": r.category, "data-revenue": f"{r.rev:.2f}",
                      "data-activations": str(int(r.act_count)), "data-user-base": str(int(r.user_base))})
    return _table(["Category", "Activations", "Upgrades", "Renewals", "Deactivations", "Cancellations",
                   "Charges refunded", "Refunded", "Revenue", "Share", "User base"], rows, attrs)


def _service_table(data: ReportData) -> dict[str, Any]:
    rows, attrs = [], []
    for r in data.services.itertuples(index=False):
        rows.append([r.service, r.category, fmt_count(r.act_count), fmt_count(r.reno_count), fmt_count(r.dct_count),
                     fmt_count(r.cnr_count), fmt_count(r.rfnd_count), fmt_eur(r.rev), fmt_pct(r.share, 1),
                     fmt_count(r.user_base)])
        attrs.append({"data-service": r.service, "data-revenue": f"{r.rev:.2f}"})
    return _table(["Service", "Category", "Activations", "Renewals", "Deactivations", "Cancellations",
                   "Charges refunded", "Revenue", "Share", "User base"], rows, attrs)


def _user_base_table(data: ReportData) -> dict[str, Any] | None:
    """The day's user base per category, or None without a user-base file for the day."""
    day_rows = data.user_base[data.user_base["date"] == data.day]
    if not len(day_rows):
        return None
    per = day_rows.groupby("category")["user_base"].sum()
    per = per.sort_values(ascending=False, kind="mergesort")
    total = per.sum()
    rows = [[cat, fmt_count(v), fmt_pct(v / total if total else 0, 1)] for cat, v in per.items()]
    rows.append(["Total", fmt_count(total), "100.0%"])
    return _table(["Category", "Users", "Share"], rows)


def _days_text(days: list[dt.date], limit: int = 12) -> str:
    runs = [f"{a}" if a == b else f"{a} … {b}" for a, b in day_runs(days)]
    return ", ".join(runs[:limit]) + (f" and {len(runs) - limit} more" if len(runs) > limit else "")


def _reject_table(h: Health) -> dict[str, Any]:
    return _table(["Kind", "Days loaded", "Rows read", "Rejected", "Reject ratio", "Days over the limit"],
                  [[r["kind"], fmt_count(r["days"]), fmt_count(r["rows_read"]), fmt_count(r["rejected"]),
                    fmt_pct(r["rejected"] / r["rows_read"] if r["rows_read"] else 0, 3),
                    _days_text(r["failed"]) or "none"] for r in h.rejects])


def _problem_table(h: Health, limit: int = 40) -> dict[str, Any] | None:
    """The first `limit` per-day outputs needing attention, or None when there are none."""
    if not h.problems:
        return None
    return _table(["Day", "Dataset", "State", "Why"], [[str(d), lab, st, why] for d, lab, st, why in h.problems[:limit]])


def render_html(data: ReportData, generated_at: dt.datetime | None = None) -> str:
    """The report page (template `report.html`): inline CSS and SVG only, nothing fetched when it is opened."""
    chart = {name: (title, Markup(svg)) for name, (title, svg) in charts(data).items()}
    trend_names = ["revenue", "activations", "renewals", "terminations", "net_adds", "refunds", "user_base",
                   "churn_arpu"]
    h = data.health
    return render(
        "report.html", css=Markup(_CSS), day=data.day, window=data.window, window_days=len(data.window),
        span=f"{data.shown[0]} … {data.day}" if data.shown else str(data.day),
        kpis=[_kpi_tile(k) for k in data.kpis], trends=[chart[n] for n in trend_names if n in chart], charts=chart,
        categories=_category_table(data), services=_service_table(data), user_base=_user_base_table(data),
        health=h, rejected=sum(r["rejected"] for r in h.rejects),
        failed=sorted({d for r in h.rejects for d in r["failed"]}), rejects=_reject_table(h),
        problems=_problem_table(h), days_text=_days_text, count=fmt_count, eur=fmt_eur,
        unknown_service=UNKNOWN_SERVICE, no_category=NO_CATEGORY, category_map=category_map(),
        version=__version__, generated_at=generated_at)


def category_map() -> list[tuple[str, list[str]]]:
    """[(report category, [the master's categories shown as it])]: the user base's mapping (legacy
    rule L5.5), which the report applies to the master's categories so counters and user base agree."""
    merged: dict[str, list[str]] = {}
    for source, target in CATEGORY_MAP.items():
        merged.setdefault(target, []).append(source.title())
    return sorted(merged.items())


# -- publish -----------------------------------------------------------------------------

def build_report(layout: Layout, day: dt.date, *, excluded_services: tuple[str, ...], exclusions: Path | None = None,
                 out: Path | None = None, window_days: int = WINDOW_DAYS,
                 generated_at: dt.datetime | None = None) -> dict[str, Any]:
    """Render the report of `day` and publish it atomically: at `layout.report(day)` with a
    provenance sidecar (what `cvas.core.freshness` checks), or at `out` (a copy for someone, no
    sidecar). Returns facts about it."""
    read = provenance.fingerprints(report_inputs(layout, day, window_days))   # before reading: see record()
    data = collect(layout, day, excluded_services=excluded_services, exclusions=exclusions, window_days=window_days)
    page = render_html(data, generated_at=generated_at)
    target = Path(out) if out is not None else layout.report(day)
    staging = layout.staging if out is None else target.parent  # same filesystem as the target
    write_text_atomic(staging, target, page)
    if out is None:
        provenance.record(layout, target, inputs=read,
                          params={"date": str(day), "window_days": window_days}, rows=None,
                          extra={"excluded_services": list(excluded_services)})
    info = {"path": str(target), "bytes": len(page.encode("utf-8")), "charts": page.count("data-chart="),
            "counter_days": int(data.daily["rev"].notna().sum()), "user_base_days": data.health.user_base_days}
    log.info("report %s: %s (%d bytes, %d charts)", day, target, info["bytes"], info["charts"])
    return info
