"""The directory source: legacy CSV drops under one root (Daily_Data/<day>/, Historical_Data/, User_Base/NBS_BASE/)."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import os
import re
import shutil
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from cvas.core import csvlines
from cvas.core.csvlines import CsvLineError, records
from cvas.core.schemas import KindSpec, spec
from cvas.sources import SourceError

log = logging.getLogger(__name__)

_NULLS = frozenset({"", "NULL", "null"})
_DATE_PREFIX = re.compile(r"([0-9]{4})-([0-9]{2})-([0-9]{2})(?:[ T].*)?", re.DOTALL)
_DAY_DIR = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_CHUNK = 1 << 20
_INDEX_VERSION = 1


@dataclass(frozen=True)
class Unassignable:
    """A historical record that no day can own: its primary date is missing or not a date.

    It is in no day's extract, so it is reported here instead of vanishing. `reason` names
    the column, never a value.
    """

    file: str
    line: int
    reason: str


@dataclass
class _FileIndex:
    """Where each day's records sit in one historical file (byte ranges, file order)."""

    path: str
    size: int
    mtime_ns: int
    header_end: int                                     # bytes [0, header_end) are the header
    days: dict[dt.date, list[tuple[int, int]]] = field(default_factory=dict)
    counts: dict[dt.date, int] = field(default_factory=dict)
    unassignable: list[Unassignable] = field(default_factory=list)

    @property
    def first(self) -> dt.date | None:
        return min(self.days) if self.days else None

    @property
    def last(self) -> dt.date | None:
        return max(self.days) if self.days else None

    def covers(self, day: dt.date) -> bool:
        return bool(self.days) and self.first <= day <= self.last

    def to_json(self) -> dict:
        return {"version": _INDEX_VERSION, "path": self.path, "size": self.size, "mtime_ns": self.mtime_ns,
                "header_end": self.header_end,
                "days": {d.isoformat(): r for d, r in sorted(self.days.items())},
                "counts": {d.isoformat(): n for d, n in sorted(self.counts.items())},
                "unassignable": [[u.line, u.reason] for u in self.unassignable]}

    @classmethod
    def from_json(cls, data: dict) -> _FileIndex:
        return cls(data["path"], data["size"], data["mtime_ns"], data["header_end"],
                   {dt.date.fromisoformat(d): [tuple(r) for r in rs] for d, rs in data["days"].items()},
                   {dt.date.fromisoformat(d): n for d, n in data["counts"].items()},
                   [Unassignable(data["path"], line, reason) for line, reason in data["unassignable"]])


_MEMO: dict[tuple[str, int, int], _FileIndex] = {}
_MEMO_LOCK = threading.Lock()


class DirectorySource:
    """Extracts from CSV drops in the legacy layout under `root`.

    * `Daily_Data/YYYY-MM-DD/<kind>_atlas_day.csv`: the day's extract, copied byte for byte
      (rows of other days in it are rejected by the loader, with a reason). A day folder
      without this kind's file is a partial drop: an error, not an empty day.
    * `Historical_Data/<kind>_atlas*.csv`: many days per file. A file covers the days from
      its first to its last primary date; a covered day's extract is the header plus every
      record whose primary date (the kind's date column, by position) is that day, copied as
      raw text. A covered day without records is a valid empty extract. Several covering
      files are concatenated in name order. Records whose date is missing or not a date
      belong to no day: `historical_unassignable(kind)` lists them and indexing logs a count.
      Each file is scanned once into a day → byte-range index, memoised per process by
      (path, size, mtime) and, with `cache_dir`, kept there as JSON across processes.
    * `User_Base/NBS_BASE/YYYYMMDD_NBS_Base.csv`: the day's NBS snapshot, copied.
    """

    name = "directory"

    # the rows an extract returns are the records counted in the file it wrote (a drop's copy,
    # or a day's cut of historical files, checked against their index), so the delivery check
    # (cvas.steps.fetch) does not count them again
    counts_its_copy = True

    def __init__(self, root: Path, cache_dir: Path | None = None) -> None:
        self.root = Path(root)
        self.cache_dir = Path(cache_dir) if cache_dir is not None else None

    # -- paths -------------------------------------------------------------------------
    def daily_dir(self, day: dt.date) -> Path:
        return self.root / "Daily_Data" / f"{day:%Y-%m-%d}"

    def daily_file(self, kind: str, day: dt.date) -> Path:
        return self.daily_dir(day) / f"{spec(kind).kind}_atlas_day.csv"

    @property
    def historical_dir(self) -> Path:
        return self.root / "Historical_Data"

    def historical_files(self, kind: str) -> list[Path]:
        return sorted(p for p in self.historical_dir.glob(f"{spec(kind).kind}_atlas*.csv") if p.is_file())

    def user_base_file(self, day: dt.date) -> Path:
        return self.root / "User_Base" / "NBS_BASE" / f"{day:%Y%m%d}_NBS_Base.csv"

    # -- the Source interface -------------------------------------------------------------
    def extract_transactions(self, kind: str, day: dt.date, dest: Path) -> int:
        """Write `kind`'s extract for `day` to `dest`; return its number of data records."""
        ks = spec(kind)
        dest = Path(dest)
        daily = self.daily_file(kind, day)
        if daily.is_file():
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(daily, dest)
            rows = max(count_records(dest) - 1, 0)
            log.info("directory %s %s: copied %s (%d records)", kind, day, daily, rows)
            return rows
        if self.daily_dir(day).is_dir():
            raise SourceError(f"partial drop for {day}: {self.daily_dir(day)} exists but has no {daily.name}")

        files = self.historical_files(kind)
        covering = [ix for ix in (self._index(ks, f) for f in files) if ix.covers(day)]
        if not covering:
            ranges = ", ".join(f"{Path(ix.path).name} {ix.first}..{ix.last}" if ix.days else Path(ix.path).name
                               for ix in (self._index(ks, f) for f in files))
            raise SourceError(f"no {kind} extract for {day}: {daily} does not exist and no "
                              f"{self.historical_dir / (kind + '_atlas*.csv')} covers the day"
                              + (f" ({ranges})" if ranges else " (no such files)"))
        rows = self._write_day(covering, day, dest)
        log.info("directory %s %s: %d records from %s", kind, day, rows,
                 ", ".join(Path(ix.path).name for ix in covering))
        return rows

    def extract_transactions_days(self, kind: str, days: list[dt.date], dest_of) -> dict[dt.date, int]:
        """Write `kind`'s extract of each of `days` to `dest_of(day)`, byte for byte the one-day
        extract; returns the data records per day. One pass over the run: the drops are listed
        once, each historical file covering a day is indexed once and opened once for all the
        days it covers. A day the source cannot answer raises SourceError (the caller then
        fetches day by day, so that day fails alone)."""
        ks = spec(kind)
        counts: dict[dt.date, int] = {}
        historical: list[dt.date] = []
        for day in sorted(days):
            if self.daily_file(kind, day).is_file() or self.daily_dir(day).is_dir():
                counts[day] = self.extract_transactions(kind, day, Path(dest_of(day)))
            else:
                historical.append(day)
        if historical:
            indexes = [self._index(ks, f) for f in self.historical_files(kind)]
            covering = {day: [ix for ix in indexes if ix.covers(day)] for day in historical}
            lacking = [day for day, ixs in covering.items() if not ixs]
            if lacking:
                raise SourceError(f"no {kind} extract for {', '.join(map(str, lacking))}: no daily drop and no "
                                  f"{self.historical_dir / (kind + '_atlas*.csv')} covers the day")
            counts.update(self._write_days(covering, dest_of))
        log.info("directory %s %d days %s..%s: %d records", kind, len(days), min(days), max(days),
                 sum(counts.values()))
        return counts

    def extract_user_base(self, day: dt.date, dest: Path) -> int:
        """Copy the day's NBS snapshot to `dest`; return its number of data rows."""
        src = self.user_base_file(day)
        if not src.is_file():
            raise SourceError(f"no NBS snapshot for {day}: {src} does not exist")
        dest = Path(dest)
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, dest)
        rows = max(count_records(dest) - 1, 0)
        log.info("directory user base %s: copied %s (%d rows)", day, src, rows)
        return rows

    # -- planning and reporting -----------------------------------------------------------
    def available_days(self, kind: str) -> set[dt.date]:
        """Days this source answers for `kind`: every `Daily_Data/<day>/` folder (a partial
        one included, so that it fails loudly rather than being skipped) and every day in
        the first..last range of a historical file."""
        ks = spec(kind)
        days: set[dt.date] = set()
        try:
            entries = list((self.root / "Daily_Data").iterdir())
        except FileNotFoundError:
            entries = []
        for entry in entries:
            if _DAY_DIR.fullmatch(entry.name) and entry.is_dir():
                try:
                    days.add(dt.date.fromisoformat(entry.name))
                except ValueError:
                    continue
        for path in self.historical_files(kind):
            ix = self._index(ks, path)
            if ix.days:
                span = (ix.last - ix.first).days
                days.update(ix.first + dt.timedelta(days=i) for i in range(span + 1))
        return days

    def historical_unassignable(self, kind: str) -> list[Unassignable]:
        """Historical records of `kind` that belong to no day (missing or unparseable date)."""
        ks = spec(kind)
        out: list[Unassignable] = []
        for path in self.historical_files(kind):
            out.extend(self._index(ks, path).unassignable)
        return out

    # -- the historical index ---------------------------------------------------------------
    def _index(self, ks: KindSpec, path: Path) -> _FileIndex:
        stat = path.stat()
        memo_key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
        with _MEMO_LOCK:
            cached = _MEMO.get(memo_key)
        if cached is not None:
            return cached
        ix = self._load_cached(memo_key)
        if ix is None:
            ix = build_index(ks, path)
            self._store_cached(memo_key, ix)
        with _MEMO_LOCK:
            _MEMO[memo_key] = ix
        return ix

    def _cache_file(self, resolved: str) -> Path | None:
        if self.cache_dir is None:
            return None
        digest = hashlib.sha256(resolved.encode("utf-8")).hexdigest()[:24]
        return self.cache_dir / f"{Path(resolved).stem}.{digest}.index.json"

    def _load_cached(self, memo_key: tuple[str, int, int]) -> _FileIndex | None:
        cache = self._cache_file(memo_key[0])
        if cache is None or not cache.is_file():
            return None
        try:
            data = json.loads(cache.read_text(encoding="utf-8"))
            if (data.get("version"), data.get("size"), data.get("mtime_ns")) != (_INDEX_VERSION, *memo_key[1:]):
                return None
            ix = _FileIndex.from_json(data)
        except (OSError, ValueError, KeyError, TypeError):
            log.warning("ignoring unreadable index cache %s", cache)
            return None
        return ix

    def _store_cached(self, memo_key: tuple[str, int, int], ix: _FileIndex) -> None:
        cache = self._cache_file(memo_key[0])
        if cache is None:
            return
        cache.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".index.", dir=cache.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                json.dump(ix.to_json(), fh)
            os.replace(tmp, cache)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def _write_day(self, covering: list[_FileIndex], day: dt.date, dest: Path) -> int:
        return self._write_days({day: covering}, lambda _: dest)[day]

    def _write_days(self, covering: dict[dt.date, list[_FileIndex]], dest_of) -> dict[dt.date, int]:
        """Each day's extract from the historical files covering it (`covering`: in name order),
        every file opened once: its header from the first file, then its records from each file."""
        handles: dict[str, object] = {}
        rows: dict[dt.date, int] = {}
        try:
            for day, indexes in sorted(covering.items()):
                dest = Path(dest_of(day))
                dest.parent.mkdir(parents=True, exist_ok=True)
                rows[day] = 0
                with open(dest, "wb") as out:
                    for n, ix in enumerate(indexes):
                        src = handles.get(ix.path) or handles.setdefault(ix.path, open(ix.path, "rb"))
                        if n == 0:
                            _copy_range(src, out, 0, ix.header_end)
                        for start, end in ix.days.get(day, []):
                            _copy_range(src, out, start, end)
                        rows[day] += ix.counts.get(day, 0)
                found = max(count_records(dest) - 1, 0)   # what the delivery check relies on (counts_its_copy)
                if found != rows[day]:
                    raise SourceError(f"{dest}: the cut of {day} holds {found} records, the index of "
                                      f"{', '.join(Path(ix.path).name for ix in indexes)} counted {rows[day]}")
        finally:
            for src in handles.values():
                src.close()
        return rows


def _copy_range(src, out, start: int, end: int) -> None:
    """Copy bytes [start, end) of `src` to `out`, ending with a newline."""
    src.seek(start)
    left = end - start
    last = b""
    while left > 0:
        chunk = src.read(min(_CHUNK, left))
        if not chunk:
            break
        out.write(chunk)
        left -= len(chunk)
        last = chunk[-1:]
    if last not in (b"\n", b""):
        out.write(b"\n")


def _records(path: Path) -> Iterator[tuple[int, int, int, list[str]]]:
    """(start byte, end byte, first line, fields) of every non-blank CSV record, header included.

    Lines end with \\n or \\r\\n; quoted fields may hold newlines (Python's csv module splits
    records exactly as the loader's line scan does). Bytes that are not UTF-8 are carried
    through (the loader rejects the day's file naming the line).
    """
    pos = 0
    with open(path, "rb") as fh:
        def lines() -> Iterator[str]:
            nonlocal pos
            for raw in fh:
                pos += len(raw)
                yield raw.decode("utf-8", errors="surrogateescape")

        start = 0
        try:
            for rec in records(lines()):
                if rec.fields:
                    yield start, pos, rec.start, rec.fields
                start = pos
        except CsvLineError as exc:
            raise SourceError(f"{path}: line {exc.line}: unreadable CSV ({exc})") from None


def count_records(path: Path) -> int:
    """The number of non-blank CSV records in `path`, header included (as `_records` splits them)."""
    from cvas.core.csvlines import map_file

    quick = csvlines.count_records_quick(map_file(path))
    if quick is not None:
        return quick
    with open(path, "rb") as fh:
        try:
            return csvlines.count_records(raw.decode("utf-8", errors="surrogateescape") for raw in fh)
        except CsvLineError as exc:
            raise SourceError(f"{path}: line {exc.line}: unreadable CSV ({exc})") from None


def build_index(ks: KindSpec, path: Path) -> _FileIndex:
    """Scan one historical file: check its header, map each day to its records' byte ranges."""
    stat = path.stat()
    records = _records(path)
    first = next(records, None)
    if first is None:
        raise SourceError(f"{path}: empty file, no header")
    _, header_end, _, header = first
    found = [h.strip().lstrip("\ufeff").strip() for h in header]
    if found != ks.names:
        raise SourceError(f"{path}: line 1: header is not the {ks.kind} columns "
                          f"{','.join(ks.names)} (found {len(found)} columns)")
    ix = _FileIndex(str(path.resolve()), stat.st_size, stat.st_mtime_ns, header_end)
    at = ks.names.index(ks.date_column)
    for start, end, line, fields in records:
        if len(fields) <= at:
            ix.unassignable.append(Unassignable(ix.path, line, f"{len(fields)} fields, no {ks.date_column}"))
            continue
        value = fields[at]
        if value in _NULLS:
            ix.unassignable.append(Unassignable(ix.path, line, f"{ks.date_column} is null"))
            continue
        match = _DATE_PREFIX.fullmatch(value)
        try:
            day = dt.date(int(match[1]), int(match[2]), int(match[3])) if match else None
        except ValueError:
            day = None
        if day is None:
            ix.unassignable.append(Unassignable(ix.path, line, f"{ks.date_column} is not a date"))
            continue
        ranges = ix.days.setdefault(day, [])
        if ranges and ranges[-1][1] == start:
            ranges[-1] = (ranges[-1][0], end)
        else:
            ranges.append((start, end))
        ix.counts[day] = ix.counts.get(day, 0) + 1
    log.info("indexed %s: %d days %s..%s, %d records, %d without a usable %s", path, len(ix.days), ix.first,
             ix.last, sum(ix.counts.values()), len(ix.unassignable), ks.date_column)
    return ix
