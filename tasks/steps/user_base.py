"""The NBS user base: a day's snapshot, its per-day aggregate and the three legacy exports."""

from __future__ import annotations

import luigi

from cvas.core import provenance
from cvas.steps.fetch import fetch_user_base
from cvas.core.freshness import invalidated
from cvas.steps.user_base import build_user_base_daily, daily_days, export_user_base, exports_current, snapshot_days
from tasks.base import CvasTask
from tasks.config import excluded_services, layout, make_source


def _days(parameter_tuples):
    tuples = list(parameter_tuples)
    return tuples, [p["date"] if isinstance(p, dict) else p for p in tuples]


class FetchUserBase(CvasTask):
    """`user_base/snapshots/YYYYMMDD_NBS_Base.csv`: the day's NBS snapshot as the source delivered it."""

    date = luigi.DateParameter(description="The snapshot day")

    def output(self):
        return luigi.LocalTarget(str(layout().user_base_snapshot(self.date)))

    def run(self):
        rows = fetch_user_base(make_source(), self.date, layout().user_base_snapshot(self.date), layout().staging)
        self.set_status_message(f"{rows} rows")

    @classmethod
    def bulk_complete(cls, parameter_tuples):
        tuples, days = _days(parameter_tuples)
        lay = layout()
        have, marked = snapshot_days(lay), invalidated(lay)
        return [p for p, d in zip(tuples, days) if d in have and lay.user_base_snapshot(d) not in marked]


class AggregateUserBase(CvasTask):
    """`user_base/daily/<date>.parquet`: one snapshot summed per (cpc, service_name, tme_category),
    names stripped, categories mapped (LEGACY §5.3, §5.5), every service kept.

    The excluded services are dropped by ExportUserBase, so a changed keyword list never
    requires re-reading snapshots. Complete when the file exists and the snapshot is unchanged.
    """

    date = luigi.DateParameter(description="The snapshot day")

    def requires(self):
        return FetchUserBase(date=self.date)

    def output(self):
        return luigi.LocalTarget(str(layout().user_base_daily(self.date)))

    def _inputs(self):
        return {"snapshot": layout().user_base_snapshot(self.date)}

    def complete(self):
        lay = layout()
        out = lay.user_base_daily(self.date)
        return super().complete() and not provenance.changed_inputs(lay, out, self._inputs())

    def run(self):
        lay = layout()
        info = build_user_base_daily(lay.user_base_snapshot(self.date), self.date, lay.user_base_daily(self.date),
                                     lay.staging)
        provenance.record(lay, lay.user_base_daily(self.date), inputs=self._inputs(),
                          params={"date": str(self.date)}, rows=info["groups"], extra={"snapshot": info})
        self.set_status_message(f"{info['rows']} rows ({info['encoding']}), {info['groups']} groups")

    @classmethod
    def bulk_complete(cls, parameter_tuples):
        tuples, days = _days(parameter_tuples)
        lay = layout()
        have, marked = daily_days(lay), invalidated(lay)
        return [p for p, d in zip(tuples, days)
                if d in have and lay.user_base_daily(d) not in marked
                and not provenance.changed_inputs(lay, lay.user_base_daily(d), {"snapshot": lay.user_base_snapshot(d)})]


class ExportUserBase(CvasTask):
    """`User_Base/user_base_by_{service,category,cpc}.csv` (LEGACY §5.6), from the per-day files
    only, without the excluded services ([cvas] excluded_services).

    Appends the new days when they follow the exported ones, else rebuilds from every
    per-day file. Complete when the day's aggregate is current and the exports include
    `date` and reflect the per-day files now present and the current keyword list.
    """

    date = luigi.DateParameter(description="A day the exports must include")

    def requires(self):
        return AggregateUserBase(date=self.date)

    def output(self):
        lay = layout()
        return [luigi.LocalTarget(str(lay.user_base_export(by))) for by in ("service", "category", "cpc")]

    def complete(self):
        # a stale per-day file (its snapshot changed) must reach the exports through this task
        return (AggregateUserBase(date=self.date).complete() and super().complete()
                and exports_current(layout(), self.date, excluded_services()))

    def run(self):
        stats = export_user_base(layout(), excluded_services())
        self.set_status_message(f"{stats['mode']}: {stats['days_read']} of {stats['days']} days read")
