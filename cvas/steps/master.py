"""The CPC master: Excel workbook → MASTERCPC.csv (legacy rule L4), and reading it back."""

from __future__ import annotations

import csv
import io
import logging
import math
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa

from cvas.core.csvcells import plain_cell, safe_cell
from cvas.core.csvlines import records
from cvas.core.schemas import MASTER_COLUMNS

log = logging.getLogger(__name__)

REQUIRED_HEADERS = ("CPC", "CPC to upgrade", "TME Category", "Service Name", "Subscription Model", "Price")

# First word of `Subscription Model` → period in days (legacy rule L4.3). PPD is the sentinel 99999.
PERIOD_BY_MODEL_WORD = {
    "Monthly": 30, "Weekly": 7, "Trimonthly": 90, "Bimontly": 60, "One": 1, "3": 3, "45": 45,
    "0": 0, "Other": 0, "Sesion": 0, "PPD": 99999,
}
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1


class MasterFormatError(ValueError):
    """Raised when the Excel master or MASTERCPC.csv cannot be read: names the file, row and reason."""


@dataclass(frozen=True)
class MasterRow:
    cpc: int
    service_name: str
    tme_category: str
    cpc_period: int
    cpc_price: float | None


def _as_int(value: object) -> int | None:
    """Coerce a CPC cell to int; non-numeric gives None (legacy: NA)."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value) if math.isfinite(value) and value == int(value) else None
    text = str(value).strip()
    try:
        number = float(text)
    except ValueError:
        return None
    return int(number) if math.isfinite(number) and number == int(number) else None


def period_of(model: object) -> int:
    """`cpc_period` of a Subscription Model cell; numeric cells and unmapped words give 0."""
    if not isinstance(model, str) or not model.strip():
        return 0
    return PERIOD_BY_MODEL_WORD.get(model.split()[0], 0)


def _text(value: object) -> str:
    """A text cell as the legacy wrote it: untrimmed, blank for empty."""
    if value is None:
        return ""
    if isinstance(value, float) and value == int(value):
        return str(int(value))
    return str(value)


def read_master_xlsx(path: Path) -> list[MasterRow]:
    """Rows of the first sheet of the Excel master, as the legacy Stage 0 kept them.

    Rows without a numeric CPC are dropped (logged with their sheet row numbers);
    a duplicate CPC keeps the first row in sheet order (logged); an unmapped subscription
    model gives period 0 (logged). A price that is not a finite number, a CPC outside int64
    and a required column present twice fail with the sheet row.
    """
    from openpyxl import load_workbook

    path = Path(path)
    try:
        workbook = load_workbook(path, read_only=True, data_only=True)
    except FileNotFoundError:
        raise MasterFormatError(f"{path}: the Excel CPC master does not exist") from None
    except Exception as exc:  # openpyxl raises many kinds for a non-xlsx file
        raise MasterFormatError(f"{path}: not a readable .xlsx workbook ({type(exc).__name__}: {exc})") from None
    try:
        sheet = workbook.worksheets[0]
        rows = sheet.iter_rows(values_only=True)
        header = next(rows, None)
        if header is None:
            raise MasterFormatError(f"{path}: sheet {sheet.title!r} is empty (no header row)")
        names = [str(h).strip() if h is not None else "" for h in header]
        missing = [h for h in REQUIRED_HEADERS if h not in names]
        if missing:
            raise MasterFormatError(f"{path}: sheet {sheet.title!r} row 1: missing column(s) {', '.join(missing)}")
        repeated = [h for h in REQUIRED_HEADERS if names.count(h) > 1]
        if repeated:  # which of the two would be meant is a guess
            raise MasterFormatError(f"{path}: sheet {sheet.title!r} row 1: column(s) {', '.join(repeated)} "
                                    f"appear more than once")
        col = {h: names.index(h) for h in REQUIRED_HEADERS}
        kept: dict[int, MasterRow] = {}
        dropped: list[int] = []
        duplicates: list[tuple[int, int]] = []
        unmapped: dict[str, int] = {}
        for line, row in enumerate(rows, start=2):
            cells = list(row) + [None] * (len(names) - len(row))
            cpc = _as_int(cells[col["CPC"]])
            if cpc is None:
                if any(c not in (None, "") for c in cells):
                    dropped.append(line)
                continue
            if not _INT64_MIN <= cpc <= _INT64_MAX:
                raise MasterFormatError(f"{path}: sheet {sheet.title!r} row {line}: CPC {cpc} does not fit int64")
            if cpc in kept:
                duplicates.append((cpc, line))
                continue
            model = cells[col["Subscription Model"]]
            if isinstance(model, str) and model.strip() and model.split()[0] not in PERIOD_BY_MODEL_WORD:
                unmapped[model] = unmapped.get(model, 0) + 1
            price_cell = cells[col["Price"]]
            if price_cell is None or (isinstance(price_cell, str) and not price_cell.strip()):
                price = None
            else:
                try:
                    price = float(price_cell)
                except (TypeError, ValueError):
                    price = math.nan
                if not math.isfinite(price):   # nan/inf would reach every export as text
                    raise MasterFormatError(
                        f"{path}: sheet {sheet.title!r} row {line}: Price {price_cell!r} is not a number")
            kept[cpc] = MasterRow(cpc, _text(cells[col["Service Name"]]), _text(cells[col["TME Category"]]),
                                  period_of(model), price)
    finally:
        workbook.close()
    if dropped:
        log.warning("%s: %d row(s) without a numeric CPC dropped (sheet rows %s)", path.name, len(dropped),
                    ", ".join(map(str, dropped[:20])))
    for cpc, line in duplicates:
        log.warning("%s: duplicate CPC %d at sheet row %d ignored (first row kept)", path.name, cpc, line)
    for model, n in sorted(unmapped.items()):
        log.warning("%s: subscription model %r (%d CPCs) is not mapped; period 0", path.name, model, n)
    log.info("%s: %d CPC mappings", path.name, len(kept))
    return [kept[c] for c in sorted(kept)]


def _price_text(price: float | None) -> str:
    return "" if price is None else repr(float(price))


def master_csv_text(rows: list[MasterRow]) -> str:
    """MASTERCPC.csv text: header, sorted by cpc, RFC 4180 minimal quoting, floats as repr, text cells
    safe for spreadsheets (D18; `read_master_csv` gives back the names as in the workbook)."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(MASTER_COLUMNS)
    for r in rows:
        writer.writerow([r.cpc, safe_cell(r.service_name), safe_cell(r.tme_category), r.cpc_period,
                         _price_text(r.cpc_price)])
    return buf.getvalue()


def read_master_csv(path: Path) -> pa.Table:
    """MASTERCPC.csv as an Arrow table (cpc int64, service_name, tme_category, cpc_period int64,
    cpc_price float64 nullable), validated: header, numeric fields and unique CPCs."""
    path = Path(path)
    cpcs, names, cats, periods, prices = [], [], [], [], []
    try:
        fh = open(path, newline="", encoding="utf-8")
    except FileNotFoundError:
        raise MasterFormatError(f"{path}: MASTERCPC.csv does not exist (run the MasterCpc task)") from None
    with fh:
        recs = records(fh)
        header = next((rec.fields for rec in recs), None)
        if header is None or tuple(h.strip() for h in header) != MASTER_COLUMNS:
            raise MasterFormatError(f"{path}: line 1: header {header!r}, expected {','.join(MASTER_COLUMNS)}")
        seen: set[int] = set()
        for rec in recs:
            line, fields = rec.end, rec.fields
            if not fields:
                continue
            if len(fields) != len(MASTER_COLUMNS):
                raise MasterFormatError(f"{path}: line {line}: {len(fields)} fields, expected {len(MASTER_COLUMNS)}")
            try:
                cpc = int(fields[0])
                period = int(fields[3]) if fields[3].strip() else 0
                price = float(fields[4]) if fields[4].strip() else None
            except ValueError as exc:
                raise MasterFormatError(f"{path}: line {line}: {exc}") from None
            if cpc in seen:
                raise MasterFormatError(f"{path}: line {line}: duplicate cpc {cpc}")
            seen.add(cpc)
            cpcs.append(cpc)
            names.append(plain_cell(fields[1]))
            cats.append(plain_cell(fields[2]))
            periods.append(period)
            prices.append(price)
    return pa.table({
        "cpc": pa.array(cpcs, pa.int64()),
        "service_name": pa.array(names, pa.string()),
        "tme_category": pa.array(cats, pa.string()),
        "cpc_period": pa.array(periods, pa.int64()),
        "cpc_price": pa.array(prices, pa.float64()),
    })


def publish_master(layout, master_xlsx: Path) -> int:
    """MASTERCPC.csv from the Excel master, with its sidecar recording the workbook as fingerprinted
    before it was read; returns its rows."""
    from cvas.core import provenance
    from cvas.core.publish import write_text_atomic

    read = provenance.fingerprints({"master_xlsx": Path(master_xlsx)})
    rows = read_master_xlsx(Path(master_xlsx))
    write_text_atomic(layout.staging, layout.master_cpc, master_csv_text(rows))
    provenance.record(layout, layout.master_cpc, inputs=read, params={}, rows=len(rows))
    return len(rows)
