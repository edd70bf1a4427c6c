"""Landing and loading one kind's transactions for one day."""

from __future__ import annotations

import luigi

from cvas.steps.fetch import fetch_transactions_days
from cvas.steps.load import load_days_into_layout
from cvas.core.schemas import KINDS
from tasks import datasets
from tasks.base import CvasTask, DayParameter
from tasks.config import cvas, layout, make_source


# RENO is most of a day's rows (legacy rule L14.2: about 43k of 46k a day). Its batches go first, so
# the other kinds' batches run beside them on the other workers instead of after them, and a
# backfill chunk waits on the largest batch no longer than it must (luigi's scheduler runs
# the highest priority first, and a task's priority reaches the tasks it requires). Every
# fetch goes before the other kinds' loads: the loads left at the end of a chunk are then
# whole loads, which a worker freed by RENO's load takes up, not a fetch and its load in a row
# on one worker while the other waits.
LARGEST_KIND = "reno"


class FetchTransactions(CvasTask):
    """The landing copy of one day's extract of one kind, as the source delivered it.

    Kept after loading: it is the replayable record of what Nova said that day. In a backfill
    the days of one kind run as one batch: one range extract where the source can.
    """

    dataset = "raw"
    date = DayParameter(description="The transaction day (the days of a batch run)")
    kind = luigi.ChoiceParameter(choices=KINDS, description="Transaction kind")

    def output(self):
        return self.per_day(lambda d: luigi.LocalTarget(str(layout().raw(self.kind, d))))

    @property
    def priority(self):
        return 3 if self.kind == LARGEST_KIND else 2

    def run(self):
        with self.once() as built:
            if built:
                return
            days = self.pending()
            self.progress(0, f"fetching {self.kind} {days[0]}" + (f"..{days[-1]}" if len(days) > 1 else ""))
            lay = layout()
            rows = fetch_transactions_days(make_source(), self.kind, days, lambda d: lay.raw(self.kind, d), lay.staging)
            self.progress(100, f"{sum(rows.values())} rows")

    bulk_complete = classmethod(datasets.bulk_complete)


class LoadTransactions(CvasTask):
    """One day of one kind as typed, deduplicated Parquet in its month partition.

    Rejected rows go to the rejects file, counts to the quality report; a day over the
    reject limit fails and publishes no partition. Complete when the partition and its
    sidecar exist and its landing copy is the one it was loaded from (a load killed between
    the partition and its sidecar is redone). In a batch run each day loads and publishes
    alone: a day over the limit fails alone.
    """

    dataset = "transactions"
    date = DayParameter(description="The transaction day (the days of a batch run)")
    kind = luigi.ChoiceParameter(choices=KINDS, description="Transaction kind")

    def output(self):
        return self.per_day(lambda d: luigi.LocalTarget(str(layout().transactions(self.kind, d))))

    @property
    def priority(self):
        return 1 if self.kind == LARGEST_KIND else 0

    def run(self):
        with self.once() as built:
            if built:
                return
            self.progress(0, f"loading {self.kind}")
            # a flagged day stays published; a day over the reject limit is checked too (a
            # re-delivered old extract fails there: the verdict says so)
            done = load_days_into_layout(layout(), self.kind, self.pending(), max_reject_ratio=cvas().max_reject_ratio)
            flagged = [f"{h.date}: {h.describe()}" for _, h in done.values() if h.flagged]
            self.progress(100, f"{sum(r['rows_written'] for r, _ in done.values())} rows written, "
                               f"{sum(r['rejected'] for r, _ in done.values())} rejected"
                          + (f"; feed flagged: {'; '.join(flagged)}" if flagged else ""))

    bulk_complete = classmethod(datasets.bulk_complete)
