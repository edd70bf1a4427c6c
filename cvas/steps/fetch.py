"""Landing a day's extract: ask the source, write to staging, publish the raw CSV when complete."""

from __future__ import annotations

import datetime as dt
import logging
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from cvas.core.batch import each_day
from cvas.core.publish import published_together, staged
from cvas.core.schemas import spec
from cvas.sources import Source, SourceError
from cvas.sources.directory import count_records

log = logging.getLogger(__name__)


class DeliveryError(RuntimeError):
    """Raised when a delivered extract fails its checks (the loader's header check, a record
    count other than the source's): it is not landed, and the previous landing copy, if any,
    stays (decision D17)."""


def check_delivery(kind: str, path: Path, rows: int, recount: bool = True) -> None:
    """An extract may become the landing copy only with the kind's header on line 1 (the
    loader's check) and exactly the `rows` data records the source said it wrote (not counted
    again without `recount`: the source counted them in this very file)."""
    from cvas.core.csvlines import map_file
    from cvas.steps.extract_file import check_header
    from cvas.steps.load_contract import ExtractFormatError

    try:
        check_header(path, map_file(path), spec(kind).names)
    except ExtractFormatError as exc:
        raise DeliveryError(str(exc)) from None
    found = count_records(path) - 1 if recount else rows
    if found != rows:
        raise DeliveryError(f"{path}: holds {found} records, the source reported {rows}")


def fetch_transactions(source: Source, kind: str, day: dt.date, out: Path, staging: Path) -> int:
    """Publish `out` (the landing CSV) with the source's extract of `kind` for `day`; returns rows.

    The extract replaces `out` only once it passed `check_delivery`; otherwise `out` is kept as
    it was and DeliveryError names the file (the task stays to do: the next run fetches again).
    """
    with staged(staging, out) as tmp:
        rows = source.extract_transactions(kind, day, tmp)
        _accept(source, kind, tmp, rows, out)
    log.info("fetched %s %s from %s: %d rows", kind, day, source.name, rows)
    return rows


def _accept(source: Source, kind: str, tmp: Path, rows: int, out: Path) -> None:
    """`check_delivery` on the staged extract, its message naming the landing copy it would replace."""
    try:
        check_delivery(kind, tmp, rows, recount=not getattr(source, "counts_its_copy", False))
    except DeliveryError as exc:
        kept = "the previous landing copy is kept" if Path(out).exists() else "nothing was landed"
        raise DeliveryError(f"{str(exc).replace(str(tmp), str(out))}; the {source.name} delivery is refused, "
                            f"{kept}") from None


def fetch_transactions_days(source: Source, kind: str, days: list[dt.date], out_of: Callable[[dt.date], Path],
                            staging: Path) -> dict[dt.date, int]:
    """Publish the landing CSV `out_of(day)` of each of `days`; returns rows per day.

    A source that extracts ranges (`extract_transactions_days`) does it in one pass, into a
    scratch folder under `staging`; each day is then checked alone, and the days that pass are
    published together (`published_together`). If the range fails, every day is fetched on
    its own, so a bad day fails alone (`cvas.core.batch.DaysFailed`).
    """
    days = sorted(days)
    extract_days = getattr(source, "extract_transactions_days", None)
    with published_together(staging):
        if extract_days is None or len(days) == 1:
            return each_day(f"fetch {kind}", days, lambda d: fetch_transactions(source, kind, d, out_of(d), staging))
        staging.mkdir(parents=True, exist_ok=True)
        scratch = Path(tempfile.mkdtemp(prefix=f"fetch-{kind}.", dir=staging))
        try:
            try:
                counts = extract_days(kind, days, lambda d: scratch / f"{d}.csv")
            except SourceError as exc:
                log.warning("range extract of %s %s..%s failed (%s); fetching day by day", kind, days[0], days[-1], exc)
                return each_day(f"fetch {kind}", days,
                                lambda d: fetch_transactions(source, kind, d, out_of(d), staging))

            def publish(day: dt.date) -> int:
                with staged(staging, out_of(day)) as tmp:
                    os.replace(scratch / f"{day}.csv", tmp)
                    _accept(source, kind, tmp, counts[day], out_of(day))
                log.info("fetched %s %s from %s: %d rows", kind, day, source.name, counts[day])
                return counts[day]

            return each_day(f"fetch {kind}", days, publish)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)


def fetch_user_base(source: Source, day: dt.date, out: Path, staging: Path) -> int:
    """Publish the day's NBS snapshot copy; returns data rows."""
    with staged(staging, out) as tmp:
        rows = source.extract_user_base(day, tmp)
    log.info("fetched user base %s from %s: %d rows", day, source.name, rows)
    return rows
