"""Per-day counters, the CPC master and the legacy counter exports."""

from __future__ import annotations


import luigi

from cvas.steps.counters import build_counters_days
from cvas.steps.exclusions import load_exclusions
from cvas.steps.exports import publish_counter_exports
from cvas.steps.master import publish_master
from tasks import datasets
from tasks.base import CvasTask, DayParameter
from tasks.config import excluded_services, exclusions_path, layout


class DailyCounters(CvasTask):
    """Per-CPC counters of one day, from that day's six partitions and the exclusion list only.

    Complete when the file exists and its recorded inputs are unchanged; a changed
    exclusion list or reloaded partition makes the day stale. A batch run computes its days
    two at a time with the exclusion list read once, and publishes them in order.
    """

    dataset = "daily_counters"
    date = DayParameter(description="The counter day (the days of a batch run)")

    def output(self):
        return self.per_day(lambda d: luigi.LocalTarget(str(layout().daily_counters(d))))

    def run(self):
        with self.once() as built:
            if built:
                return
            days = {task.date: task for task in self.day_tasks() if task.date in self.pending()}
            rows = build_counters_days(layout(), sorted(days), lambda day: datasets.inputs(days[day]),
                                       load_exclusions(exclusions_path()))
            self.progress(100, f"{sum(rows.values())} CPC rows")

    bulk_complete = classmethod(datasets.bulk_complete)


class MasterCpc(CvasTask):
    """MASTERCPC.csv from the Excel CPC master; rebuilt whenever the workbook changes."""

    dataset = "master_cpc"

    def output(self):
        return luigi.LocalTarget(str(layout().master_cpc))

    def run(self):
        with self.once() as built:
            if built:
                return
            rows = publish_master(layout(), datasets.inputs(self)["master_xlsx"])
            self.progress(100, f"{rows} CPCs")


class ExportCounters(CvasTask):
    """`Counters/Counters_CPC.parquet` and `Counters/Counters_Service.csv` from the per-day
    counter files and the current master, replaced atomically: the new days appended when the
    exports are fresh as of the last day they hold, else rebuilt from every per-day file.

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
        with self.once() as built:
            if built:
                return
            self.progress(10, "exporting the counter days")
            stats = publish_counter_exports(layout(), excluded_services(), self.date)
            self.progress(100, f"{stats['mode']}: {stats['days']} counter day(s) exported, {stats['cpc_rows']} CPC rows")
