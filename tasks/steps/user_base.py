"""The NBS user base: a day's snapshot, its per-day aggregate and the three legacy exports."""

from __future__ import annotations

import luigi

from cvas.core.batch import each_day
from cvas.core.publish import published_together
from cvas.steps.fetch import fetch_user_base
from cvas.steps.user_base import build_user_base_days, export_user_base
from tasks import datasets
from tasks.base import CvasTask, DayParameter
from tasks.config import excluded_services, layout, make_source


class FetchUserBase(CvasTask):
    """`user_base/snapshots/YYYYMMDD_NBS_Base.csv`: the day's NBS snapshot as the source delivered it."""

    dataset = "user_base_snapshot"
    date = DayParameter(description="The snapshot day (the days of a batch run)")

    def output(self):
        return self.per_day(lambda d: luigi.LocalTarget(str(layout().user_base_snapshot(d))))

    def run(self):
        with self.once() as built:
            if built:
                return
            lay, source = layout(), make_source()
            with published_together(lay.staging):
                rows = each_day("fetch user base", self.pending(),
                                lambda d: fetch_user_base(source, d, lay.user_base_snapshot(d), lay.staging))
            self.set_status_message(f"{sum(rows.values())} rows")

    bulk_complete = classmethod(datasets.bulk_complete)


class AggregateUserBase(CvasTask):
    """`user_base/daily/<date>.parquet`: one snapshot summed per (cpc, service_name, tme_category),
    names stripped, categories mapped (legacy rules L5.3, L5.5), every service kept.

    The excluded services are dropped by ExportUserBase, so a changed keyword list never
    requires re-reading snapshots. Complete when the file exists and the snapshot is unchanged.
    """

    dataset = "user_base_daily"
    date = DayParameter(description="The snapshot day (the days of a batch run)")

    def output(self):
        return self.per_day(lambda d: luigi.LocalTarget(str(layout().user_base_daily(d))))

    def run(self):
        with self.once() as built:
            if built:
                return
            infos = build_user_base_days(layout(), self.pending())
            self.set_status_message(f"{sum(i['rows'] for i in infos.values())} rows, "
                                    f"{sum(i['groups'] for i in infos.values())} groups")

    bulk_complete = classmethod(datasets.bulk_complete)


class ExportUserBase(CvasTask):
    """`User_Base/user_base_by_{service,category,cpc}.csv` (legacy rule L5.6), from the per-day files
    only, without the excluded services ([cvas] excluded_services).

    Appends the new days when they follow the exported ones, else rebuilds from every
    per-day file. Complete when the day's aggregate is current and the exports include
    `date` and reflect the per-day files now present and the current keyword list.
    """

    dataset = "user_base_export"
    date = luigi.DateParameter(description="A day the exports must include")

    def output(self):
        lay = layout()
        return [luigi.LocalTarget(str(lay.user_base_export(by))) for by in ("service", "category", "cpc")]

    def run(self):
        with self.once() as built:
            if built:
                return
            stats = export_user_base(layout(), excluded_services())
            self.set_status_message(f"{stats['mode']}: {stats['days_read']} of {stats['days']} days read")
