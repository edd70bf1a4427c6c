"""The subscription lifecycle view as of a day."""

from __future__ import annotations

import luigi

from cvas.steps.subscriptions import build_subscription_view, outside_retention, publish_latest
from tasks.base import CvasTask
from tasks.config import cvas, layout


class SubscriptionView(CvasTask):
    """`subscriptions/as_of=<date>/subscriptions.parquet/`: every subscription with an ACT or RENO
    on or before `date`, its lifecycle as of the end of that day (legacy rule L8.3, 34 columns), as a
    folder of parts (`open-0.parquet` .. `open-3.parquet`, `deactivated-YYYY-MM.parquet`) read as
    one table.

    Folded by DuckDB from the newest usable state on or before `date` and the transaction
    files of the days after it, rewriting only the parts those days change (from every
    transaction file when there is none, or when the view is marked for rebuild); publishes
    `subscription_state/<date>.parquet/` for the next day. When `date` is the newest as-of it also replaces
    `Parquet_Data/aggregated/subscriptions.parquet`, and as-of views and states older than
    `[cvas] subscriptions_keep_days` before the newest are pruned.

    Complete when the view exists, is not invalidated and was built from the transaction
    files now present up to `date` (a reloaded or backfilled day makes it stale), or when
    `date` lies outside the retention window (such a view would be pruned as soon as built).
    """

    dataset = "subscriptions"
    date = luigi.DateParameter(description="The as-of day: events dated after it are ignored")

    def output(self):
        return luigi.LocalTarget(str(layout().subscriptions(self.date)))

    def complete(self):
        return outside_retention(layout(), self.date, cvas().subscriptions_keep_days) or super().complete()

    def run(self):
        with self.once() as built:
            if built:
                return
            self.progress(0, f"building the subscription view as of {self.date}")
            stats = build_subscription_view(layout(), self.date, keep_days=cvas().subscriptions_keep_days,
                                            memory_limit=cvas().duckdb_memory_limit or None)
            self.progress(100, f"{stats['rows']} subscriptions{' (latest)' if stats['latest'] else ''}")


class LatestSubscriptions(CvasTask):
    """`Parquet_Data/aggregated/subscriptions.parquet/`, the legacy path: a copy of the newest
    as-of view (its parts), replaced atomically. SubscriptionView refreshes it when it builds the
    newest view; this task repairs it when it is not exactly that view (a run killed between the
    two, a part edited in place, a newer view rebuilt).

    It copies the newest as-of view whatever its `date` (the day whose view it waits for: a late
    day's run also schedules it for the newest day, `tasks.pipeline.refresh_tasks`). Complete when
    the folder's parts are the files its sidecar recorded and it is the newest as-of view's copy.
    """

    dataset = "subscriptions_latest"
    date = luigi.DateParameter(description="The as-of day whose view it waits for (it copies the newest)")

    def output(self):
        return luigi.LocalTarget(str(layout().subscriptions_latest))

    def run(self):
        with self.once() as built:
            if not built:
                meta = publish_latest(layout())
                self.progress(100, f"{meta['rows']} subscriptions as of {meta['as_of']}")
