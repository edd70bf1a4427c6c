"""A short account of what is built: days, rows per kind, rejects, top CPCs, where outputs are."""

from __future__ import annotations

from pathlib import Path


from cvas.core.layout import Layout, transaction_files
from cvas.core.quality import read_quality
from cvas.core.schemas import KINDS
from cvas.core.catalogue import days_of
from cvas.sql import connect


def summarize(layout: Layout, log_dir: Path, config: Path) -> dict:
    """Figures over every published output (no PII: counts, CPCs, dates only), the configuration
    file they were found by, and where the outputs and the run logs (`log_dir`) are."""
    con = connect()
    rows = {}
    for kind in KINDS:
        files = transaction_files(layout, kind)
        rows[kind] = con.execute("select count(*) from read_parquet($f)", {"f": [str(f) for f in files]}).fetchone()[0] \
            if files else 0
    rejected = 0
    for report in layout.root.glob("quality/*/*.json"):
        rejected += (read_quality(report) or {}).get("rejected", 0)
    top = []
    if layout.counters_service.exists():
        top = con.execute(
            "select cpc, any_value(service_name) as service, round(sum(rev), 2) as revenue "
            "from read_csv($p, header=true) group by cpc order by revenue desc, cpc limit 5",
            {"p": str(layout.counters_service)}).fetchall()
    days = sorted(days_of(layout, "daily_counters"))
    return {
        "configuration": str(config),
        "days_built": len(days),
        "first_day": str(days[0]) if days else None,
        "last_day": str(days[-1]) if days else None,
        "partial_days": len(set().union(*(days_of(layout, "transactions", k) for k in KINDS)) - set(days)),
        "rows": rows,
        "rejected": rejected,
        "top_cpcs": [{"cpc": c, "service": s, "revenue": r} for c, s, r in top],
        "outputs": {
            "transactions": str(layout.transactions_root()),
            "raw extracts": str(layout.raw_root),
            "quality reports": str(layout.quality_root),
            "rejected rows": str(layout.rejects_root),
            "daily counters": str(layout.daily_counters_root),
            "Counters_CPC": str(layout.counters_cpc),
            "Counters_Service": str(layout.counters_service),
            "MASTERCPC": str(layout.master_cpc),
            "subscriptions": str(layout.subscriptions_latest),
            "user base": str(layout.user_base_export("category").parent),
            "daily reports": str(layout.reports_root),
            "run logs": str(log_dir),
        },
    }


def format_summary(s: dict) -> str:
    lines = [f"configuration: {s['configuration']}",
             f"days built: {s['days_built']} ({s['first_day']} .. {s['last_day']})"]
    if s["partial_days"]:
        lines.append(f"days loaded but without counters: {s['partial_days']}")
    lines.append("rows per kind: " + ", ".join(f"{k} {v:,}" for k, v in s["rows"].items()))
    lines.append(f"rows rejected: {s['rejected']:,}")
    if s["top_cpcs"]:
        lines.append("top CPCs by revenue (service export):")
        for t in s["top_cpcs"]:
            lines.append(f"  {t['cpc']:>6}  {t['service']:<28} {t['revenue']:>14,.2f} EUR")
    lines.append("outputs:")
    for name, path in s["outputs"].items():
        lines.append(f"  {name:<17} {Path(path)}")
    return "\n".join(lines)
