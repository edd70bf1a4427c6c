"""The base of cvas tasks: complete means published, not invalidated; success clears the mark."""

from __future__ import annotations

from pathlib import Path

import luigi
from luigi.task import flatten

from cvas.core.logs import redact
from cvas.core.freshness import clear_invalidation, is_invalidated
from tasks.config import layout


class CvasTask(luigi.Task):
    """A task whose outputs are files under the data root.

    `cvas invalidate` marks outputs for rebuild without deleting them, so readers keep the
    old file until the rerun replaces it in one rename.
    """

    def complete(self):
        lay = layout()
        return all(t.exists() and not is_invalidated(lay, Path(t.path)) for t in flatten(self.output()))

    def on_success(self):
        lay = layout()
        for target in flatten(self.output()):
            clear_invalidation(lay, Path(target.path))
        return super().on_success()

    def on_failure(self, exception):
        # the return value becomes the failure e-mail body and the visualiser's error text
        return redact(super().on_failure(exception))
