"""What is built, from storage alone: bulk completeness per dataset family (one listing each)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from pathlib import Path

from cvas.core import provenance
from cvas.core.layout import Layout, days_in_dir, tombstone, transaction_days
from cvas.core.schemas import KINDS


def raw_days(layout: Layout, kind: str) -> set[dt.date]:
    return days_in_dir(layout.raw(kind, dt.date(2000, 1, 1)).parent, ".csv")


def loaded_days(layout: Layout, kind: str) -> set[dt.date]:
    return transaction_days(layout, kind)


def counter_inputs(layout: Layout, day: dt.date, exclusions: Path | None) -> dict[str, Path]:
    """The files a day's counters are computed from (their provenance inputs)."""
    inputs = {kind: layout.transactions(kind, day) for kind in KINDS}
    if exclusions is not None:
        inputs["exclusions"] = Path(exclusions)
    return inputs


def counter_days(layout: Layout) -> set[dt.date]:
    return days_in_dir(layout.daily_counters_root, ".parquet")


def stale_counter_inputs(layout: Layout, day: dt.date, exclusions: Path | None) -> list[str]:
    """Inputs of a built counter day that changed since it was computed ([] when fresh)."""
    return provenance.changed_inputs(layout, layout.daily_counters(day), counter_inputs(layout, day, exclusions))


def invalidated(layout: Layout) -> set[Path]:
    """Every output currently marked for rebuild (usually none: one empty listing)."""
    root = layout.root / "_invalid"
    if not root.exists():
        return set()
    return {layout.root / p.relative_to(root) for p in root.rglob("*") if p.is_file()}


def is_invalidated(layout: Layout, output: Path) -> bool:
    return tombstone(layout, output).exists()


def clear_invalidation(layout: Layout, output: Path) -> None:
    """Called once `output` has been rebuilt and published."""
    tombstone(layout, output).unlink(missing_ok=True)


def fresh_counter_days(layout: Layout, days: Iterable[dt.date], exclusions: Path | None) -> set[dt.date]:
    """Of `days`, those whose counters exist, are not invalidated and whose inputs are unchanged."""
    built = counter_days(layout)
    marked = invalidated(layout)
    return {d for d in days
            if d in built and layout.daily_counters(d) not in marked
            and not stale_counter_inputs(layout, d, exclusions)}
