"""The counter exports as a whole-history dataset: one writer at a time, the new days appended
when they follow the published ones, and the exact per-day files and master each was built from."""

from __future__ import annotations

import datetime as dt
import logging

from cvas.core import provenance
from cvas.core.catalogue import published_outputs, writer_lock
from cvas.core.freshness import Freshness, Settings
from cvas.core.layout import Layout
from cvas.core.locking import exclusive
from cvas.steps.counters import export_counters
from cvas.steps.master import read_master_csv

log = logging.getLogger(__name__)


def publish_counter_exports(layout: Layout, excluded_services: tuple[str, ...], date: dt.date | None = None) -> dict:
    """Publish `Counters_CPC.parquet` and `Counters_Service.csv`: the days listed after the last
    exported one appended to the published files when these are fresh as of that day (the
    catalogue's freshness rule, `Freshness.extension`), else rebuilt from every per-day file.

    One writer at a time (a lock from deciding to recording the new sidecar), so two runs on
    one data root never append a day twice or lose one. The sidecar records the listing the
    decision was made on and the master fingerprint taken before it, i.e. exactly what was read
    (a day file or master replaced meanwhile shows as a change: the next run rebuilds), the
    published files' stats and the path taken (`mode`).
    """
    with exclusive(writer_lock(layout, "counters_export")):
        master = provenance.fingerprints({"master": layout.master_cpc})
        plan = Freshness(layout, Settings(excluded_services=excluded_services)).extension("counters_export")
        days = sorted(plan.listing) if plan.days is None else plan.days
        mode = "rebuild" if plan.days is None else "append"
        if plan.days is None:
            log.info("counters exports: rebuilt from every per-day file (%s)", plan.reason)
        daily = [layout.daily_counters(dt.date.fromisoformat(d)) for d in days]
        stats = export_counters(daily, read_master_csv(layout.master_cpc), excluded_services, layout.counters_cpc,
                                layout.counters_service, layout.staging, append=plan.days is not None)
        provenance.record(layout, layout.counters_cpc, inputs=master,
                          params={"date": str(date)} if date else {}, rows=stats["cpc_rows"],
                          extra={"daily": plan.listing, "excluded_services": list(excluded_services),
                                 "outputs": published_outputs(layout, "counters_export"), "mode": mode})
    stats["mode"] = mode
    return stats
