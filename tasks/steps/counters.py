"""Per-day counters, the CPC master and the legacy counter exports."""

from __future__ import annotations

import datetime as dt

import luigi

from cvas.core import provenance
from cvas.core.batch import each_day
from cvas.steps.counters import build_daily_counters, export_counters
from cvas.steps.exclusions import load_exclusions
from cvas.steps.exports import counters_export_additions, export_manifest_extra
from cvas.steps.master import master_csv_text, read_master_csv, read_master_xlsx
from cvas.core.publish import write_text_atomic
from cvas.core.schemas import KINDS
from tasks import datasets
from tasks.base import CvasTask, DayParameter
from tasks.config import excluded_services, exclusions_path, layout


class DailyCounters(CvasTask):
    """Per-CPC counters of one day, from that day's six partitions and the exclusion list only.

    Complete when the file exists and its recorded inputs are unchanged; a changed
    exclusion list or reloaded partition makes the day stale. A batch run computes its days
    one after the other with the exclusion list read once.
    """

    dataset = "daily_counters"
    date = DayParameter(description="The counter day (the days of a batch run)")

    def output(self):
        return self.per_day(lambda d: luigi.LocalTarget(str(layout().daily_counters(d))))

    def run(self):
        lay = layout()
        exclusions = load_exclusions(exclusions_path())
        days = {task.date: task for task in self.day_tasks()}

        def one_day(day: dt.date) -> int:
            inputs = datasets.inputs(days[day])
            rows = build_daily_counters(day, {k: inputs[k] for k in KINDS}, exclusions,
                                        lay.daily_counters(day), lay.staging)
            provenance.record(lay, lay.daily_counters(day), inputs=inputs, params={"date": str(day)}, rows=rows)
            return rows

        rows = each_day("counters", sorted(days), one_day)
        self.progress(100, f"{sum(rows.values())} CPC rows")

    bulk_complete = classmethod(datasets.bulk_complete)


class MasterCpc(CvasTask):
    """MASTERCPC.csv from the Excel CPC master; rebuilt whenever the workbook changes."""

    dataset = "master_cpc"

    def output(self):
        return luigi.LocalTarget(str(layout().master_cpc))

    def run(self):
        lay = layout()
        inputs = datasets.inputs(self)
        rows = read_master_xlsx(inputs["master_xlsx"])
        write_text_atomic(lay.staging, lay.master_cpc, master_csv_text(rows))
        provenance.record(lay, lay.master_cpc, inputs=inputs, params={}, rows=len(rows))


class ExportCounters(CvasTask):
    """`Counters/Counters_CPC.parquet` and `Counters/Counters_Service.csv`, rebuilt from every
    per-day counter file and the current master, replaced atomically.

    Complete when the exports were built from exactly the per-day files now present
    (including `date`) and the current MASTERCPC.csv, and the day's counters and the master
    are complete (a changed workbook must reach the service export).
    """

    dataset = "counters_export"
    date = luigi.DateParameter(description="A day the exports must include")

    def output(self):
        lay = layout()
        return [luigi.LocalTarget(str(lay.counters_cpc)), luigi.LocalTarget(str(lay.counters_service))]

    def run(self):
        lay = layout()
        additions = counters_export_additions(lay, excluded_services())
        if additions is None:
            daily, base = sorted(lay.daily_counters_root.glob("*.parquet")), None
        else:
            daily, base = [lay.daily_counters(dt.date.fromisoformat(d)) for d in additions], lay.counters_cpc
        self.progress(10, f"exporting {len(daily)} counter days" + (" onto the previous export" if base else ""))
        stats = export_counters(daily, read_master_csv(lay.master_cpc), excluded_services(),
                                lay.counters_cpc, lay.counters_service, lay.staging, base=base)
        provenance.record(lay, lay.counters_cpc, inputs=datasets.inputs(self), params={"date": str(self.date)},
                          rows=stats["cpc_rows"], extra=export_manifest_extra(lay, excluded_services()))
        self.progress(100, f"{len(daily)} counter days exported, {stats['cpc_rows']} CPC rows")
