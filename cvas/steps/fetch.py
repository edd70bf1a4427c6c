"""Landing a day's extract: ask the source, write to staging, publish the raw CSV when complete."""

from __future__ import annotations

import datetime as dt
import logging
from pathlib import Path

from cvas.core.publish import staged
from cvas.sources import Source

log = logging.getLogger(__name__)


def fetch_transactions(source: Source, kind: str, day: dt.date, out: Path, staging: Path) -> int:
    """Publish `out` (the landing CSV) with the source's extract of `kind` for `day`; returns rows."""
    with staged(staging, out) as tmp:
        rows = source.extract_transactions(kind, day, tmp)
    log.info("fetched %s %s from %s: %d rows", kind, day, source.name, rows)
    return rows


def fetch_user_base(source: Source, day: dt.date, out: Path, staging: Path) -> int:
    """Publish the day's NBS snapshot copy; returns data rows."""
    with staged(staging, out) as tmp:
        rows = source.extract_user_base(day, tmp)
    log.info("fetched user base %s from %s: %d rows", day, source.name, rows)
    return rows
