"""Where every dataset lives: each output path is a pure function of (data_root, parameters)."""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import hashlib
import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path

from cvas.core.schemas import spec

log = logging.getLogger(__name__)

def month_of(day: dt.date) -> str:
    """The Hive partition value `YYYY-MM` of a day."""
    return f"{day:%Y-%m}"


@dataclass(frozen=True)
class Layout:
    """The storage layout under one data root.

    Dataset roots (what readers glob) never contain temporary files: staging lives in
    `<root>/.staging`, on the same filesystem so publishing is a rename.
    """

    root: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "root", Path(self.root))

    # -- staging and bookkeeping -------------------------------------------------
    # every bookkeeping folder of a data root, named here only: none is a dataset, readers never
    # enter them, and stray detection leaves them alone
    @property
    def staging(self) -> Path:
        """Work in progress, renamed into place when published (same filesystem as the datasets)."""
        return self.root / ".staging"

    @property
    def meta_root(self) -> Path:
        """The provenance sidecars (`sidecar`)."""
        return self.root / "_meta"

    @property
    def invalid_root(self) -> Path:
        """The rebuild marks (`tombstone`)."""
        return self.root / "_invalid"

    @property
    def failed_root(self) -> Path:
        """The records of failed builds (`failure_record`)."""
        return self.root / "_failed"

    def cache(self, name: str) -> Path:
        """A cache kept between runs (a source's index of its files), outside every dataset."""
        return self.root / ".cache" / name

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def runs(self) -> Path:
        """The registry of running builds (see cvas.core.locking.registered_run)."""
        return self.root / ".locks" / "runs"

    @property
    def set_aside(self) -> Path:
        """Where files found in a dataset folder that the layout does not name (an analyst's
        copy, a download) are moved before cvas replaces or removes that folder: never deleted."""
        return self.root / "_set_aside"

    def lock(self, name: str) -> Path:
        """A lock file serialising one read-decide-publish step (not a dataset)."""
        return self.root / ".locks" / f"{name}.lock"

    # -- transactions ------------------------------------------------------------
    @property
    def raw_root(self) -> Path:
        return self.root / "raw"

    def raw(self, kind: str, day: dt.date) -> Path:
        """The landing copy of one day's extract, in the legacy CSV format."""
        spec(kind)
        return self.raw_root / kind / f"{day:%Y-%m-%d}.csv"

    def transactions_root(self, kind: str | None = None) -> Path:
        """The legacy path (decision D19): the legacy's analyst scripts read
        `Parquet_Data/transactions/<kind>/year_month=YYYY-MM/*.parquet` from the data root."""
        base = self.root / "Parquet_Data" / "transactions"
        return base / spec(kind).kind if kind else base

    def transactions(self, kind: str, day: dt.date) -> Path:
        """One Parquet file per kind and day inside its Hive month partition (`year_month` lives only
        in the folder name, as in the legacy store)."""
        return self.transactions_root(kind) / f"year_month={month_of(day)}" / f"{day:%Y-%m-%d}.parquet"

    def quality(self, kind: str, day: dt.date) -> Path:
        """The per-day quality report of a load (rows read, written, duplicates, rejects)."""
        spec(kind)
        return self.quality_root / kind / f"{day:%Y-%m-%d}.json"

    @property
    def quality_root(self) -> Path:
        return self.root / "quality"

    def health(self, kind: str, day: dt.date) -> Path:
        """The feed-health verdict of a flagged (kind, day); absent when the day looked normal."""
        return self.root / "health" / spec(kind).kind / f"{day:%Y-%m-%d}.json"

    def rejects(self, kind: str, day: dt.date) -> Path:
        """Rows quarantined by a load, with source file, line and reason."""
        spec(kind)
        return self.rejects_root / kind / f"{day:%Y-%m-%d}.csv"

    @property
    def rejects_root(self) -> Path:
        return self.root / "rejects"

    # -- counters ----------------------------------------------------------------
    @property
    def daily_counters_root(self) -> Path:
        return self.root / "daily_counters"

    def daily_counters(self, day: dt.date) -> Path:
        return self.daily_counters_root / f"{day:%Y-%m-%d}.parquet"

    @property
    def counters_export_dir(self) -> Path:
        return self.root / "Counters"

    @property
    def counters_cpc(self) -> Path:
        return self.counters_export_dir / "Counters_CPC.parquet"

    @property
    def counters_service(self) -> Path:
        return self.counters_export_dir / "Counters_Service.csv"

    # -- reference data ----------------------------------------------------------
    @property
    def master_cpc(self) -> Path:
        """The legacy path: the legacy's analyst scripts read `MASTERCPC.csv` from the data root."""
        return self.root / "MASTERCPC.csv"

    # -- subscriptions -----------------------------------------------------------
    @property
    def subscriptions_root(self) -> Path:
        return self.root / "subscriptions"

    def subscriptions(self, as_of: dt.date) -> Path:
        """The view as of a day: a folder of parts (cvas.steps.subscriptions.parts)."""
        return self.subscriptions_root / f"as_of={as_of:%Y-%m-%d}" / "subscriptions.parquet"

    @property
    def subscription_state_root(self) -> Path:
        return self.root / "subscription_state"

    def subscription_state(self, as_of: dt.date) -> Path:
        """The per-subscription aggregates as of a day that the next view is folded from (a folder
        of parts, as the view)."""
        return self.subscription_state_root / f"{as_of:%Y-%m-%d}.parquet"

    @property
    def subscriptions_latest(self) -> Path:
        """The legacy path: a folder of hard links to the newest as-of view's parts, replaced atomically."""
        return self.root / "Parquet_Data" / "aggregated" / "subscriptions.parquet"

    # -- user base ---------------------------------------------------------------
    @property
    def user_base_snapshot_root(self) -> Path:
        return self.root / "user_base" / "snapshots"

    def user_base_snapshot(self, day: dt.date) -> Path:
        return self.user_base_snapshot_root / f"{day:%Y%m%d}_NBS_Base.csv"

    @property
    def user_base_daily_root(self) -> Path:
        return self.root / "user_base" / "daily"

    def user_base_daily(self, day: dt.date) -> Path:
        return self.user_base_daily_root / f"{day:%Y-%m-%d}.parquet"

    def user_base_export(self, by: str) -> Path:
        if by not in ("service", "category", "cpc"):
            raise ValueError(f"unknown user base export {by!r}")
        return self.root / "User_Base" / f"user_base_by_{by}.csv"

    def adopt_unassigned(self, kind: str, month: str) -> Path:
        """Legacy rows without a date found by `cvas adopt` (kept, never loaded)."""
        return self.root / "adopt" / "unassigned" / f"{kind}-{month}.parquet"

    # -- reports -----------------------------------------------------------------
    @property
    def reports_root(self) -> Path:
        return self.root / "reports"

    def report(self, day: dt.date) -> Path:
        """The self-contained HTML daily report of one day."""
        return self.reports_root / f"{day:%Y-%m-%d}.html"


@functools.lru_cache(maxsize=1 << 16)   # listings of a year of days are decided many times a run
def day_of_name(name: str, suffix: str, fmt: str = "%Y-%m-%d") -> dt.date | None:
    """The day a file name `<day><suffix>` stands for, or None when the layout would not make
    exactly that name (`2026-01-09 - Copy.parquet`, `junk.parquet`, `2026-1-9.parquet`)."""
    if not name.endswith(suffix):
        return None
    stem = name[: len(name) - len(suffix)]
    digits = _DIGITS.get(fmt)
    try:
        if digits is not None:   # the layout's formats, without strptime's cost
            if not digits.match(stem):
                return None
            text = stem.replace("-", "")
            day = dt.date(int(text[:4]), int(text[4:6]), int(text[6:]))
        else:
            day = dt.datetime.strptime(stem, fmt).date()
    except ValueError:
        return None
    return day if day.strftime(fmt) == stem else None


_DIGITS = {"%Y-%m-%d": re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}\Z"), "%Y%m%d": re.compile(r"[0-9]{8}\Z")}


# the part files of an output that is a folder (the subscription view and its state)
PART_FILE = re.compile(r"^(open-\d|deactivated-\d{4}-\d{2})\.parquet$")
_AS_OF_DIR = re.compile(r"^as_of=(\d{4}-\d{2}-\d{2})$")


def parts(directory: Path) -> dict[str, Path]:
    """{part name: file} of an output that is a folder of parts (a subscription view or state):
    exactly the files the layout names (`open-0.parquet` .. `open-3.parquet`,
    `deactivated-YYYY-MM.parquet`), never a stray file beside them."""
    try:
        names = [e.name for e in os.scandir(directory) if e.is_file()]
    except (FileNotFoundError, NotADirectoryError):
        return {}
    return {m.group(1): Path(directory) / n for n in sorted(names) if (m := PART_FILE.match(n))}


def part_stats(directory: Path) -> dict[str, list[int]]:
    """{part name: [size, mtime_ns]} of the parts of a folder output: what its sidecar records just
    after publishing and the cheap damage check compares (a part rewritten in place, truncated or
    replaced changes its size or mtime)."""
    found = {}
    for name, path in parts(directory).items():
        with contextlib.suppress(FileNotFoundError):
            st = path.stat()
            found[name] = [st.st_size, st.st_mtime_ns]
    return found


def as_of_days(layout: Layout) -> set[dt.date]:
    """The as-of dates with a published subscription view (one listing of the subscriptions root)."""
    found: set[dt.date] = set()
    try:
        entries = list(os.scandir(layout.subscriptions_root))
    except FileNotFoundError:
        return found
    for entry in entries:
        m = _AS_OF_DIR.match(entry.name)
        if m and entry.is_dir():
            day = dt.date.fromisoformat(m.group(1))
            if layout.subscriptions(day).exists():
                found.add(day)
    return found


def days_in_dir(directory: Path, suffix: str, fmt: str = "%Y-%m-%d") -> set[dt.date]:
    """The days whose `<day><suffix>` file exists in `directory`: one listing, no stat per day.
    Files the layout does not name are not days (readers never see them)."""
    try:
        names = [entry.name for entry in directory.iterdir()]
    except FileNotFoundError:
        return set()
    return {day for day in (day_of_name(name, suffix, fmt) for name in names) if day is not None}


def stat_listing(directory: Path, suffix: str) -> dict[str, list[int]]:
    """{stem: [size, mtime_ns]} of the `*<suffix>` files of a directory, from one scan."""
    import os

    listing: dict[str, list[int]] = {}
    try:
        entries = list(os.scandir(directory))
    except FileNotFoundError:
        return listing
    for entry in entries:
        if entry.name.endswith(suffix):
            st = entry.stat()
            listing[entry.name[: len(entry.name) - len(suffix)]] = [st.st_size, st.st_mtime_ns]
    return listing


def transaction_days(layout: Layout, kind: str) -> set[dt.date]:
    """Days with a published transaction partition for `kind` (one listing per month dir)."""
    found: set[dt.date] = set()
    root = layout.transactions_root(kind)
    try:
        months = [p for p in root.iterdir() if p.name.startswith("year_month=")]
    except FileNotFoundError:
        return found
    for month_dir in months:
        found |= days_in_dir(month_dir, ".parquet")
    return found


def newest_transaction_day(layout: Layout, kinds) -> dt.date | None:
    """The newest day with a published partition of any of `kinds` (the newest month folder of each)."""
    found = []
    for kind in kinds:
        try:
            months = sorted(p for p in layout.transactions_root(kind).iterdir() if p.name.startswith("year_month="))
        except FileNotFoundError:
            continue
        for month_dir in reversed(months):
            days = days_in_dir(month_dir, ".parquet")
            if days:
                found.append(max(days))
                break
    return max(found, default=None)


def transaction_digest(layout: Layout, through: dt.date, kinds: tuple[str, ...]) -> str:
    """What an as-of view was built from, in a number of stats that does not grow with the days:
    the modification time of each month folder before `through`'s month (a file published,
    reloaded or removed there changes it) and (name, size, mtime) of the layout-named files of
    `through`'s month dated on or before it (a day loaded after `through` does not count). A
    reloaded or backfilled day therefore changes the digest of every view as of that day or later."""
    month, key = f"year_month={through:%Y-%m}", f"{through:%Y-%m-%d}"
    entries = []
    for kind in kinds:
        try:
            folders = [e for e in os.scandir(layout.transactions_root(kind))
                       if e.name.startswith("year_month=") and e.name <= month and e.is_dir()]
        except FileNotFoundError:
            continue
        for folder in folders:
            if folder.name < month:
                entries.append(f"{kind}/{folder.name}:{folder.stat().st_mtime_ns}")
                continue
            for f in os.scandir(folder.path):
                day = day_of_name(f.name, ".parquet")
                if day is not None and f.name[:10] <= key and layout.transactions(kind, day) == Path(f.path):
                    st = f.stat()
                    entries.append(f"{kind}/{folder.name}/{f.name}:{st.st_size}:{st.st_mtime_ns}")
    return "sha256:" + hashlib.sha256("\n".join(sorted(entries)).encode()).hexdigest()


def transaction_files(layout: Layout, kind: str, through: dt.date | None = None) -> list[Path]:
    """The published partitions of `kind` (of days up to `through` when given), in day order:
    exactly the files the layout names, never whatever else a glob of the folders would find."""
    days = sorted(d for d in transaction_days(layout, kind) if through is None or d <= through)
    return [layout.transactions(kind, d) for d in days]


def sidecar(layout: Layout, output: Path) -> Path:
    """The provenance sidecar of a published output: `<root>/_meta/<relative path>.json`.

    Kept outside the dataset directories so a reader globbing `*.parquet` or `*.csv` never
    meets it.
    """
    return layout.meta_root / (str(_relative(layout, output)) + ".json")


def tombstone(layout: Layout, output: Path) -> Path:
    """The invalidation marker of an output: present means "rebuild me", while the old file
    stays readable until the rebuild replaces it atomically."""
    return layout.invalid_root / _relative(layout, output)


def failure_record(layout: Layout, output: Path) -> Path:
    """The record of the last failed attempt to build an output: `<root>/_failed/<relative path>.json`,
    removed when a build succeeds (a failed fetch or load leaves no output to show otherwise)."""
    return layout.failed_root / (str(_relative(layout, output)) + ".json")


def _relative(layout: Layout, output: Path) -> Path:
    """`output` relative to the data root; paths made by the layout need no filesystem access."""
    try:
        return Path(output).relative_to(layout.root)
    except ValueError:
        return Path(output).resolve().relative_to(layout.root.resolve())


def through(listing: dict[str, list[int]], day) -> dict[str, list[int]]:
    """The entries of a `{YYYY-MM-DD: stat}` listing for days up to and including `day`."""
    key = f"{day:%Y-%m-%d}"
    return {d: st for d, st in listing.items() if d <= key}
