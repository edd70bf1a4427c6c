"""The daily HTML report."""

from __future__ import annotations

import datetime as dt

import luigi

from cvas.analyst.report import build_report
from tasks.base import CvasTask
from tasks.config import excluded_services, exclusions_path, layout


class DailyReport(CvasTask):
    """`reports/<date>.html`: one self-contained page with the day's KPIs, the 90-day trends,
    breakdowns by category and service, the user base and a data-health panel.

    Reads the per-day counter and user-base files of the window and the master only. It
    requires the day's counters (through their exports, so the master is current), the day's
    user base (through its exports) and the subscription view, so the health panel's
    freshness lines describe the finished day; earlier days are used as they are, and their
    gaps show in the health panel.

    Complete when the page exists and the files of its window, the master and the excluded
    service list are the ones it was rendered from (a backfilled day in the window makes it
    stale), and every upstream task is complete: a sibling rebuilding an export in the same
    run must not leave this page complete before and stale after.
    """

    dataset = "report"
    date = luigi.DateParameter(description="The report day")

    def output(self):
        return luigi.LocalTarget(str(layout().report(self.date)))

    def run(self):
        with self.once() as built:
            if built:
                return
            info = build_report(layout(), self.date, excluded_services=excluded_services(), exclusions=exclusions_path(),
                                generated_at=dt.datetime.now().replace(microsecond=0))
            self.progress(100, f"{info['charts']} charts, {info['counter_days']} counter days, "
                                    f"{info['user_base_days']} user-base days")
