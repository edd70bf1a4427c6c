"""Landing and loading one kind's transactions for one day."""

from __future__ import annotations

import luigi

from cvas.steps.fetch import fetch_transactions
from cvas.steps.load import load_into_layout
from cvas.core.schemas import KINDS
from tasks import datasets
from tasks.base import CvasTask
from tasks.config import cvas, layout, make_source


class FetchTransactions(CvasTask):
    """The landing copy of one day's extract of one kind, as the source delivered it.

    Kept after loading: it is the replayable record of what Nova said that day.
    """

    dataset = "raw"
    date = luigi.DateParameter(description="The transaction day")
    kind = luigi.ChoiceParameter(choices=KINDS, description="Transaction kind")

    def output(self):
        return luigi.LocalTarget(str(layout().raw(self.kind, self.date)))

    def run(self):
        self.set_status_message(f"fetching {self.kind} {self.date}")
        rows = fetch_transactions(make_source(), self.kind, self.date, layout().raw(self.kind, self.date),
                                  layout().staging)
        self.set_status_message(f"{rows} rows")

    bulk_complete = classmethod(datasets.bulk_complete)


class LoadTransactions(CvasTask):
    """One day of one kind as typed, deduplicated Parquet in its month partition.

    Rejected rows go to the rejects file, counts to the quality report; a day over the
    reject limit fails and publishes no partition. Complete when the partition and its
    sidecar exist and its landing copy is the one it was loaded from (a load killed between
    the partition and its sidecar is redone).
    """

    dataset = "transactions"
    date = luigi.DateParameter(description="The transaction day")
    kind = luigi.ChoiceParameter(choices=KINDS, description="Transaction kind")

    def output(self):
        return luigi.LocalTarget(str(layout().transactions(self.kind, self.date)))

    def run(self):
        report = load_into_layout(layout(), self.kind, self.date, max_reject_ratio=cvas().max_reject_ratio)
        self.set_status_message(f"{report['rows_written']} rows written, {report['rejected']} rejected")

    bulk_complete = classmethod(datasets.bulk_complete)
