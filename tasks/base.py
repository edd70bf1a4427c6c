"""The base of cvas tasks: requires() and complete() from the catalogue; success clears the mark."""

from __future__ import annotations

from pathlib import Path

import luigi
from luigi.task import flatten

from cvas.core.catalogue import dataset as catalogue_entry
from cvas.core.freshness import clear_invalidation
from cvas.core.logs import redact
from tasks import datasets
from tasks.config import layout


class CvasTask(luigi.Task):
    """A task writing one output of the catalogue dataset named by `dataset`.

    Requires the tasks of its upstream datasets; complete when `cvas.core.freshness` says its
    output is present (not missing, failed, invalidated or stale) and, for a product (exports,
    view, report), every upstream task is complete too. `cvas invalidate` marks outputs for
    rebuild without deleting them, so readers keep the old file until the rerun replaces it
    in one rename.
    """

    dataset: str = ""  # the catalogue name of what the task writes (a class attribute, not a parameter)

    def requires(self):
        return datasets.requires(self)

    def complete(self):
        if not datasets.state(self).fresh:
            return False
        return not catalogue_entry(self.dataset).product or all(t.complete() for t in flatten(self.requires()))

    def on_success(self):
        lay = layout()
        for target in flatten(self.output()):
            clear_invalidation(lay, Path(target.path))
        return super().on_success()

    def on_failure(self, exception):
        # the return value becomes the failure e-mail body and the visualiser's error text
        return redact(super().on_failure(exception))
