"""Where a day's data comes from: one interface, three implementations (simulated, directory, ssh)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Protocol


class SourceError(RuntimeError):
    """Raised when a source cannot deliver a day's extract (missing file, server error)."""


class Source(Protocol):
    """A provider of the legacy extracts.

    `extract_transactions` writes one kind's rows for one day to `dest` in the legacy CSV
    format (legacy rule L3.3 column order, PostgreSQL COPY CSV with header) and returns the
    number of data rows written. `extract_user_base` writes that day's NBS snapshot.
    Both write only to `dest`, a staging path; publishing is the caller's job.
    """

    name: str

    def extract_transactions(self, kind: str, day: dt.date, dest: Path) -> int: ...

    def extract_user_base(self, day: dt.date, dest: Path) -> int: ...
