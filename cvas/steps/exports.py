"""The counter exports as a whole-history dataset: one writer at a time, and the exact per-day
files and master each was built from."""

from __future__ import annotations

import datetime as dt

from cvas.core import provenance
from cvas.core.catalogue import day_listing
from cvas.core.layout import Layout
from cvas.core.locking import exclusive
from cvas.steps.counters import export_counters
from cvas.steps.master import read_master_csv


def _daily_listing(layout: Layout) -> dict[str, list[int]]:
    """{day: [size, mtime_ns]} of every per-day counter file (what freshness compares)."""
    return day_listing(layout, "daily_counters")


def publish_counter_exports(layout: Layout, excluded_services: tuple[str, ...], date: dt.date | None = None) -> dict:
    """Publish `Counters_CPC.parquet` and `Counters_Service.csv` from the per-day counter files:
    the new days appended onto the previous export when they follow it, else every day.

    One writer at a time (a lock from reading the sidecar to recording the new one), so two
    runs on one data root never append a day twice or lose one. The sidecar records the
    listing and the master fingerprint taken *before* reading, i.e. exactly what was read: a
    day file replaced meanwhile shows as a change, and the next run rebuilds.
    """
    with exclusive(layout.lock("counters_exports")):
        listing = _daily_listing(layout)
        master = provenance.fingerprints({"master": layout.master_cpc})
        additions = counters_export_additions(layout, excluded_services, listing)
        days, base = (sorted(listing), None) if additions is None else (additions, layout.counters_cpc)
        daily = [layout.daily_counters(dt.date.fromisoformat(d)) for d in days]
        stats = export_counters(daily, read_master_csv(layout.master_cpc), excluded_services,
                                layout.counters_cpc, layout.counters_service, layout.staging, base=base)
        provenance.record(layout, layout.counters_cpc, inputs=master,
                          params={"date": str(date)} if date else {}, rows=stats["cpc_rows"],
                          extra={"daily": listing, "excluded_services": list(excluded_services)})
    stats["mode"] = "rebuild" if base is None else "append"
    return stats


def counters_export_additions(layout: Layout, excluded_services: tuple[str, ...],
                              now: dict[str, list[int]] | None = None) -> list[str] | None:
    """The days of `now` (default: the current listing) to append to the published counter
    exports, or None when they must be rebuilt from every per-day file (a day changed or
    vanished, a day before the last exported one appeared, the master or the excluded services
    changed, or nothing was exported yet)."""
    if not layout.counters_cpc.exists():
        return None
    meta = provenance.read(layout, layout.counters_cpc)
    if meta is None or meta.get("excluded_services") != list(excluded_services):
        return None
    if provenance.changed_inputs(layout, layout.counters_cpc, {"master": layout.master_cpc}):
        return None
    if provenance.file_hash(layout.counters_cpc) != meta.get("output_hash"):
        return None  # the published file is not the one recorded: rebuild it whole
    old, now = meta.get("daily", {}), _daily_listing(layout) if now is None else now
    if any(now.get(day) != stat for day, stat in old.items()):
        return None
    new = sorted(set(now) - set(old))
    if old and new and new[0] <= max(old):
        return None
    return new
