"""Landing and loading one kind's transactions for one day."""

from __future__ import annotations

import luigi

from cvas.steps.fetch import fetch_transactions
from cvas.steps.load import load_into_layout
from cvas.core.schemas import KINDS
from cvas.core.layout import Layout, sidecar
from cvas.core.freshness import invalidated, loaded_days, raw_days
from tasks.base import CvasTask
from tasks.config import cvas, layout, make_source


def _bulk(cls, parameter_tuples, days_of, path_of):
    """Shared bulk_complete for (date, kind) families: one directory listing per kind."""
    fixed = dict(getattr(cls, "keywords", {}) or {})
    complete = []
    cache: dict[str, set] = {}
    lay = layout()
    marked = invalidated(lay)
    for params in parameter_tuples:
        values = dict(fixed, **params) if isinstance(params, dict) else dict(fixed, date=params)
        kind = values["kind"]
        if kind not in cache:
            cache[kind] = days_of(layout(), kind)
        if values["date"] in cache[kind] and path_of(lay, kind, values["date"]) not in marked:
            complete.append(params)
    return complete


class FetchTransactions(CvasTask):
    """The landing copy of one day's extract of one kind, as the source delivered it.

    Kept after loading: it is the replayable record of what Nova said that day.
    """

    date = luigi.DateParameter(description="The transaction day")
    kind = luigi.ChoiceParameter(choices=KINDS, description="Transaction kind")

    def output(self):
        return luigi.LocalTarget(str(layout().raw(self.kind, self.date)))

    def run(self):
        self.set_status_message(f"fetching {self.kind} {self.date}")
        rows = fetch_transactions(make_source(), self.kind, self.date, layout().raw(self.kind, self.date),
                                  layout().staging)
        self.set_status_message(f"{rows} rows")

    @classmethod
    def bulk_complete(cls, parameter_tuples):
        return _bulk(cls, parameter_tuples, raw_days, Layout.raw)


class LoadTransactions(CvasTask):
    """One day of one kind as typed, deduplicated Parquet in its month partition.

    Rejected rows go to the rejects file, counts to the quality report; a day over the
    reject limit fails and publishes no partition.
    """

    date = luigi.DateParameter(description="The transaction day")
    kind = luigi.ChoiceParameter(choices=KINDS, description="Transaction kind")

    def requires(self):
        return FetchTransactions(date=self.date, kind=self.kind)

    def output(self):
        return luigi.LocalTarget(str(layout().transactions(self.kind, self.date)))

    def complete(self):
        # the sidecar is written just after the partition: a load killed in between is redone
        lay = layout()
        return super().complete() and sidecar(lay, lay.transactions(self.kind, self.date)).exists()

    def run(self):
        report = load_into_layout(layout(), self.kind, self.date, max_reject_ratio=cvas().max_reject_ratio)
        self.set_status_message(f"{report['rows_written']} rows written, {report['rejected']} rejected")

    @classmethod
    def bulk_complete(cls, parameter_tuples):
        return _bulk(cls, parameter_tuples, loaded_days, Layout.transactions)

