"""A legacy installation made from a simulated Nova: uuid-named monthly Parquet and Historical CSVs."""

from __future__ import annotations

import datetime as dt
import tempfile
import uuid
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from cvas.core.layout import Layout
from cvas.core.schemas import KINDS, spec
from cvas.steps.load import parse_extract
from cvas.sources.simulated import SimulatedSource


def write_legacy_tree(database: Path, root: Path, parquet_days: list[dt.date], csv_days: list[dt.date],
                      seed: int = 1) -> dict[str, int]:
    """Write `root/Parquet_Data/transactions/<kind>/year_month=YYYY-MM/<uuid>-0.parquet` holding the
    `parquet_days` (as the legacy stored them: typed, snappy, no year_month column, plus one row
    without a date in `__HIVE_DEFAULT_PARTITION__` per kind) and `root/Historical_Data/<kind>_atlas_*.csv`
    holding the `csv_days`. Returns the source rows written per kind."""
    source = SimulatedSource(database)
    store = Layout(root)   # the legacy store is where the layout keeps transactions (decision D19)
    rng = uuid.UUID(int=seed)
    written = {}
    with tempfile.TemporaryDirectory() as tmp:
        for kind in KINDS:
            ks = spec(kind)
            by_month: dict[str, list[pa.Table]] = {}
            for day in parquet_days:
                extract = Path(tmp) / f"{kind}-{day}.csv"
                source.extract_transactions(kind, day, extract)
                by_month.setdefault(f"{day:%Y-%m}", []).append(parse_extract(kind, day, extract, 1.0).table)
            n = 0
            for month, tables in sorted(by_month.items()):
                table = pa.concat_tables(tables)
                out = store.transactions_root(kind) / f"year_month={month}"
                out.mkdir(parents=True, exist_ok=True)
                rng = uuid.uuid5(rng, month + kind)
                pq.write_table(table, out / f"{rng.hex}-0.parquet", compression="snappy")
                n += table.num_rows
            if by_month:
                # a legacy row whose date failed to parse: it lived in the null partition
                first = pa.concat_tables(next(iter(by_month.values())))
                if first.num_rows:
                    orphan = first.slice(0, 1).set_column(ks.names.index(ks.date_column), ks.date_column,
                                                          pa.array([None], pa.timestamp("us")))
                    out = store.transactions_root(kind) / "year_month=__HIVE_DEFAULT_PARTITION__"
                    out.mkdir(parents=True, exist_ok=True)
                    pq.write_table(orphan, out / f"{uuid.uuid5(rng, 'null').hex}-0.parquet")
                    n += 1
            if csv_days:
                hist = root / "Historical_Data" / f"{kind}_atlas_day_{min(csv_days)}_to_{max(csv_days)}.csv"
                hist.parent.mkdir(parents=True, exist_ok=True)
                with open(hist, "w", encoding="utf-8") as fh:
                    fh.write(",".join(ks.names) + "\n")
                    for day in sorted(csv_days):
                        extract = Path(tmp) / f"{kind}-{day}-h.csv"
                        n += source.extract_transactions(kind, day, extract)
                        fh.write(extract.read_text(encoding="utf-8").split("\n", 1)[1])
            written[kind] = n
    return written
