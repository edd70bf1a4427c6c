"""What the counter exports record and append: which per-day files and master they were built from."""

from __future__ import annotations

from typing import Any

from cvas.core import provenance
from cvas.core.catalogue import day_listing
from cvas.core.layout import Layout


def _daily_listing(layout: Layout) -> dict[str, list[int]]:
    """{day: [size, mtime_ns]} of every per-day counter file (what freshness compares)."""
    return day_listing(layout, "daily_counters")


def export_manifest_extra(layout: Layout, excluded_services: tuple[str, ...]) -> dict[str, Any]:
    """What goes in the export sidecar beyond the generic provenance."""
    return {"daily": _daily_listing(layout), "excluded_services": list(excluded_services)}


def counters_export_additions(layout: Layout, excluded_services: tuple[str, ...]) -> list[str] | None:
    """The days to append to the published counter exports, or None when they must be rebuilt
    from every per-day file (a day changed or vanished, a day before the last exported one
    appeared, the master or the excluded services changed, or nothing was exported yet)."""
    if not layout.counters_cpc.exists():
        return None
    meta = provenance.read(layout, layout.counters_cpc)
    if meta is None or meta.get("excluded_services") != list(excluded_services):
        return None
    if provenance.changed_inputs(layout, layout.counters_cpc, {"master": layout.master_cpc}):
        return None
    if provenance.file_hash(layout.counters_cpc) != meta.get("output_hash"):
        return None  # the published file is not the one recorded: rebuild it whole
    old, now = meta.get("daily", {}), _daily_listing(layout)
    if any(now.get(day) != stat for day, stat in old.items()):
        return None
    new = sorted(set(now) - set(old))
    if old and new and new[0] <= max(old):
        return None
    return new
