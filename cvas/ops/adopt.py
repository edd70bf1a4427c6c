"""Adopting a legacy installation: its Parquet store and Historical_Data CSVs into per-day layout.

Every legacy row ends in exactly one place — a day's partition, that day's duplicates
count, its rejects file, or (a row with no date, from `__HIVE_DEFAULT_PARTITION__`) the
unassigned file — and the counts are reconciled per kind and month.
"""

from __future__ import annotations

import datetime as dt
import logging
import shutil
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from cvas.core.layout import Layout, month_of
from cvas.steps.load import load_into_layout
from cvas.core.publish import publish_parquet, staged
from cvas.core.schemas import KINDS, spec
from cvas.sources import SourceError
from cvas.sources.directory import DirectorySource
from cvas.sql import connect, sql_path

log = logging.getLogger(__name__)


class AdoptError(RuntimeError):
    """Raised when a legacy file cannot be read or the counts do not reconcile."""


@dataclass
class MonthCount:
    """Rows of one kind and month: where they came from and where they went."""

    parquet: int = 0
    csv: int = 0
    written: int = 0
    duplicates: int = 0
    rejected: int = 0
    unassigned: int = 0
    already_present_days: int = 0
    days: set = field(default_factory=set)

    @property
    def source(self) -> int:
        return self.parquet + self.csv

    @property
    def accounted(self) -> int:
        return self.written + self.duplicates + self.rejected + self.unassigned


def legacy_parquet_months(root: Path, kind: str) -> dict[str, list[Path]]:
    """`{year_month: [files]}` of the legacy store `Parquet_Data/transactions/<kind>/`: where the
    layout keeps transactions too (decision D19), with the legacy's `<uuid>-0.parquet` files."""
    base = Layout(root).transactions_root(kind)
    months: dict[str, list[Path]] = {}
    if base.exists():
        for month_dir in sorted(base.glob("year_month=*")):
            files = sorted(month_dir.glob("*.parquet"))
            if files:
                months[month_dir.name.split("=", 1)[1]] = files
    return months


def _read_month(kind: str, files: list[Path]) -> pa.Table:
    ks = spec(kind)
    tables = []
    for f in files:
        try:
            t = pq.ParquetFile(f).read()
        except Exception as exc:  # pyarrow raises several kinds for a damaged file
            raise AdoptError(f"{f}: not a readable Parquet file ({exc})") from None
        missing = [n for n in ks.names if n not in t.column_names]
        if missing:
            raise AdoptError(f"{f}: legacy {kind} file lacks column(s) {', '.join(missing)}")
        try:
            tables.append(t.select(ks.names).cast(ks.schema))
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
            raise AdoptError(f"{f}: columns do not fit the {kind} schema ({exc})") from None
    return pa.concat_tables(tables) if tables else ks.schema.empty_table()


def _elsewhere(legacy_root: Path, layout: Layout) -> Path:
    """`legacy_root`, unless it is the data root: cvas keeps its transactions where the legacy kept
    them, so adopting in place would read cvas's own partitions as legacy ones."""
    if legacy_root.resolve() == layout.root.resolve():
        raise AdoptError(f"{legacy_root}: the legacy installation is the data root itself; cvas writes its "
                         "transactions where the legacy kept them (Parquet_Data/transactions): move the legacy "
                         "tree to another folder and adopt it from there")
    return legacy_root


def adopt(legacy_root: Path, layout: Layout, *, kinds: tuple[str, ...] = KINDS,
          progress=lambda msg: None) -> dict[tuple[str, str], MonthCount]:
    """Take a legacy tree into `layout`; returns the reconciliation per (kind, month).

    Days already present in `layout` are left as they are (counted, not re-read).
    Raises AdoptError when a file is unreadable or a month's counts do not reconcile.
    """
    legacy_root = _elsewhere(Path(legacy_root), layout)
    directory = DirectorySource(legacy_root, cache_dir=layout.cache("adopt"))
    counts: dict[tuple[str, str], MonthCount] = defaultdict(MonthCount)
    scratch = layout.staging / "adopt"
    scratch.mkdir(parents=True, exist_ok=True)
    con = connect()
    try:
        for kind in kinds:
            ks = spec(kind)
            csv_days = {d for d in directory.available_days(kind)
                        if not directory.daily_file(kind, d).exists()} if directory.historical_files(kind) else set()
            for item in directory.historical_unassignable(kind):
                raise AdoptError(f"{item.file}: line {item.line}: {item.reason} (no day can own this record)")
            parquet_rows: dict[dt.date, Path] = {}
            parquet_counts: dict[dt.date, int] = {}
            for month, files in legacy_parquet_months(legacy_root, kind).items():
                table = _read_month(kind, files)
                days = pc.cast(table.column(ks.date_column), pa.date32())
                undated = table.filter(pc.is_null(days))
                if undated.num_rows:
                    target = layout.adopt_unassigned(kind, month)
                    publish_parquet(layout.staging, target, undated)
                    counts[(kind, month)].unassigned += undated.num_rows
                    counts[(kind, month)].parquet += undated.num_rows
                    log.warning("adopt %s %s: %d row(s) without a date kept in %s", kind, month, undated.num_rows,
                                target)
                dated = table.filter(pc.is_valid(days)).append_column("_day", pc.cast(table.filter(
                    pc.is_valid(days)).column(ks.date_column), pa.date32()))
                con.register("month_rows", dated)
                for (day,) in con.execute("select distinct _day from month_rows order by 1").fetchall():
                    body = scratch / f"{kind}-{day}.parquet.csv"
                    # COPY's own row count: the file is not re-read to count its records
                    (parquet_counts[day],) = con.execute(
                        f"copy (select * exclude (_day) from month_rows where _day = $day) "
                        f"to {sql_path(body)} (header false)", {"day": day}).fetchone()
                    parquet_rows[day] = body
                con.unregister("month_rows")
            for day in sorted(csv_days | set(parquet_rows)):
                month = month_of(day)
                mc = counts[(kind, month)]
                if layout.transactions(kind, day).exists():
                    mc.already_present_days += 1
                    parquet_rows.pop(day, Path("/nonexistent")).unlink(missing_ok=True)
                    continue
                with staged(layout.staging, layout.raw(kind, day)) as tmp:
                    if day in csv_days:
                        try:
                            mc.csv += directory.extract_transactions(kind, day, tmp)
                        except SourceError as exc:
                            raise AdoptError(str(exc)) from None
                    else:
                        tmp.write_text(",".join(ks.names) + "\n")
                    if day in parquet_rows:
                        with open(tmp, "ab") as out, open(parquet_rows[day], "rb") as src:
                            shutil.copyfileobj(src, out)
                        mc.parquet += parquet_counts[day]
                        parquet_rows[day].unlink()
                report = load_into_layout(layout, kind, day, max_reject_ratio=1.0)
                mc.written += report["rows_written"]
                mc.duplicates += report["duplicates_removed"]
                mc.rejected += report["rejected"]
                mc.days.add(day)
            progress(f"adopted {kind}")
    finally:
        con.close()
        shutil.rmtree(scratch, ignore_errors=True)
    bad = [(k, m) for (k, m), mc in counts.items() if mc.source != mc.accounted]
    if bad:
        raise AdoptError("counts do not reconcile for " + ", ".join(f"{k} {m}" for k, m in bad))
    return dict(counts)


def format_reconciliation(counts: dict[tuple[str, str], MonthCount]) -> str:
    head = f"{'kind':<5} {'month':<8} {'parquet':>9} {'csv':>9} {'written':>9} {'dups':>7} {'rejected':>8} " \
           f"{'no date':>7} {'days':>5} {'kept':>5}  check"
    lines = [head]
    for (kind, month), mc in sorted(counts.items()):
        ok = "ok" if mc.source == mc.accounted else "MISMATCH"
        lines.append(f"{kind:<5} {month:<8} {mc.parquet:>9,} {mc.csv:>9,} {mc.written:>9,} {mc.duplicates:>7,} "
                     f"{mc.rejected:>8,} {mc.unassigned:>7,} {len(mc.days):>5} {mc.already_present_days:>5}  {ok}")
    lines.append("parquet + csv = written + dups + rejected + no date, per kind and month; 'kept' = days "
                 "already in cvas, left as they were")
    return "\n".join(lines)
