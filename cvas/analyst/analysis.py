"""The analysts' tools of legacy rule L11, done right: revenue by service and month, refunds per CPC,
lifetime and LTV from the subscription view, and the user-base consistency check.

Each returns a `Table` (raw values, printed for people by `format_table`, written as CSV by
`write_csv`). Where the legacy tool was wrong the fix is stated on the function.
"""

from __future__ import annotations

import csv
import datetime as dt
import difflib
import io
import logging
import re
from collections import defaultdict
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import pyarrow as pa

from cvas.core.csvcells import plain_cell, safe_cell
from cvas.core.csvlines import records
from cvas.core.layout import Layout, transaction_files, parts
from cvas.core.publish import write_text_atomic
from cvas.sql import connect, load_sql

log = logging.getLogger(__name__)

_MONTH = re.compile(r"^\d{4}-(0[1-9]|1[0-2])$")

REFUND_COLUMNS: tuple[str, ...] = (
    "year_month", "cpc", "service_name", "tme_category", "cpcTotalRfdsAmount", "cpcTotalRfdsCount",
    "cpcTotalRfdsCountUU", "RegularRfdsUU", "AutomaticRfdsUU",
)


class AnalysisInputError(ValueError):
    """Raised when an analysis cannot run on its input: a malformed argument (month, empty
    service list), a missing or malformed file, or a name with nothing to match."""


@dataclass
class Table:
    """A result: column names, the kind of each column (`text`, `int`, `eur`, `float`) and rows
    of raw values (None = not available). `notes` are remarks for the person running it."""

    columns: tuple[str, ...]
    kinds: tuple[str, ...]
    rows: list[tuple[Any, ...]]
    notes: list[str] = field(default_factory=list)


def _cell(value: Any, kind: str) -> str:
    if value is None:
        return "n/a"
    if kind == "int":
        return f"{int(value):,}"
    if kind in ("eur", "float"):
        return f"{float(value):,.2f}"
    return str(value)


def _csv_cell(value: Any, kind: str) -> str:
    if value is None:
        return ""
    if kind == "int":
        return str(int(value))
    if kind in ("eur", "float"):
        return f"{float(value):.2f}"
    return safe_cell(str(value))


def format_table(table: Table) -> str:
    """A fixed-width text table: text left-aligned, numbers right-aligned with thousands
    separators and 2 decimals for amounts."""
    cells = [[_cell(v, k) for v, k in zip(row, table.kinds)] for row in table.rows]
    widths = [max([len(c)] + [len(r[i]) for r in cells]) for i, c in enumerate(table.columns)]

    def line(values: list[str]) -> str:
        return "  ".join(v.ljust(w) if k == "text" else v.rjust(w)
                         for v, w, k in zip(values, widths, table.kinds)).rstrip()

    out = [line(list(table.columns)), "  ".join("-" * w for w in widths)]
    out += [line(r) for r in cells]
    if not cells:
        out.append("(no rows)")
    return "\n".join(out)


def csv_text(table: Table) -> str:
    """The table as RFC 4180 CSV (minimal quoting), amounts with 2 decimals, empty for n/a."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(table.columns)
    for row in table.rows:
        writer.writerow([_csv_cell(v, k) for v, k in zip(row, table.kinds)])
    return buf.getvalue()


def write_csv(table: Table, path: Path) -> None:
    """Publish the CSV atomically (staged beside the target: same filesystem)."""
    path = Path(path)
    write_text_atomic(path.parent, path, csv_text(table))


def check_months(months: list[str]) -> list[str]:
    """The distinct months, sorted; each must be `YYYY-MM`."""
    bad = [m for m in months if not _MONTH.match(m)]
    if bad:
        raise AnalysisInputError(f"month(s) {', '.join(map(repr, bad))} are not YYYY-MM")
    if not months:
        raise AnalysisInputError("give at least one month (YYYY-MM)")
    return sorted(set(months))


def _ordered_names(names: list[str]) -> list[str]:
    out: list[str] = []
    for n in names:
        n = n.strip()
        if n and n not in out:
            out.append(n)
    if not out:
        raise AnalysisInputError("give at least one service name")
    return out


def _suggest(name: str, known: set[str]) -> str:
    close = difflib.get_close_matches(name, sorted(known), n=3, cutoff=0.6)
    return f" (did you mean {', '.join(map(repr, close))}?)" if close else ""


# -- revenue_report ----------------------------------------------------------------------

def revenue_by_service_month(service_csv: Path, services: list[str] | None, months: list[str]) -> Table:
    """Revenue of each service (rows, in the order given; None: every service with a row in the
    months, by name) in each month (columns, sorted) and a TOTAL column, from Counters_Service.csv.

    Read with the csv module, so quoted service names with commas stay one field (the legacy
    misread them, legacy rule L-D11); names compare exactly after stripping both sides; amounts are summed
    as decimals, so the totals carry no binary rounding.
    """
    wanted = None if services is None else _ordered_names(services)
    months = check_months(months)
    sums: dict[tuple[str, str], Decimal] = defaultdict(Decimal)
    seen: set[str] = set()
    known: set[str] = set()
    bad_dates = 0
    path = Path(service_csv)
    try:
        fh = open(path, newline="", encoding="utf-8")
    except FileNotFoundError:
        raise AnalysisInputError(f"{path}: the service export does not exist (build the counters first)") from None
    with fh:
        reader = csv.DictReader(fh)
        missing = [c for c in ("date", "service_name", "rev") if c not in (reader.fieldnames or [])]
        if missing:
            raise AnalysisInputError(f"{path}: line 1: missing column(s) {', '.join(missing)}")
        for row in reader:
            name = plain_cell((row["service_name"] or "").strip())
            known.add(name)
            if wanted is not None and name not in wanted:
                continue
            try:
                month = f"{dt.date.fromisoformat((row['date'] or '').strip()):%Y-%m}"
            except ValueError:
                bad_dates += 1
                continue
            if month not in months:
                continue
            try:
                sums[(name, month)] += Decimal((row["rev"] or "0").strip() or "0")
            except InvalidOperation:
                raise AnalysisInputError(
                    f"{path}: line {reader.line_num}: rev {row['rev']!r} is not a number") from None
            seen.add(name)
    rows = []
    for name in sorted(seen) if wanted is None else wanted:
        values = [sums.get((name, m), Decimal(0)) for m in months]
        rows.append(tuple([name] + values + [sum(values, Decimal(0))]))
    table = Table(tuple(["service"] + months + ["TOTAL"]), tuple(["text"] + ["eur"] * (len(months) + 1)), rows)
    for name in wanted or ():
        if name not in known:
            table.notes.append(f"no service named {name!r} in {path.name}{_suggest(name, known)}")
        elif name not in seen:
            table.notes.append(f"{name!r} has no revenue row in {', '.join(months)}")
    if bad_dates:
        table.notes.append(f"{bad_dates} row(s) of the chosen services with an unreadable date were skipped")
    return table


# -- rfnd_analysis -----------------------------------------------------------------------

def refunds_by_cpc(layout: Layout, months: list[str], master: pa.Table) -> Table:
    """The legacy rfnd_analysis (legacy rule L11) per (year_month, cpc) from the RFND partitions of `months`:
    amount (2 dp), Σ rfnd_cnt, distinct users overall, regular ('f') and automatic ('t'),
    with service name and category (empty when the CPC is not in the master). Ordered by
    month, count descending, then cpc (the legacy left ties unordered). A month without a
    partition is noted and skipped, as the legacy did.
    """
    months = check_months(months)
    files: list[str] = []
    notes: list[str] = []
    for month in months:
        found = [str(p) for p in transaction_files(layout, "rfnd") if p.parent.name == f"year_month={month}"]
        if not found:
            notes.append(f"no RFND partition for {month}: skipped")
        files += found
    if not files:
        return Table(REFUND_COLUMNS, _REFUND_KINDS, [], notes)
    con = connect()
    try:
        con.execute("set threads = 2")
        con.register("master", master)
        rows = con.execute(load_sql("analysis_refunds"), {"files": files}).fetchall()
    finally:
        con.close()
    log.info("refunds: %d partition file(s) of %d month(s), %d CPC-month rows", len(files), len(months), len(rows))
    return Table(REFUND_COLUMNS, _REFUND_KINDS, [tuple(r) for r in rows], notes)


_REFUND_KINDS = ("text", "text", "text", "text", "eur", "int", "int", "int", "int")


# -- calculate_lt_ltv --------------------------------------------------------------------

def service_cpcs(master: pa.Table, service: str) -> list[int]:
    """The CPCs MASTERCPC.csv assigns to `service` (names compared case-insensitively after strip)."""
    key = service.strip().lower()
    if not key:
        raise AnalysisInputError("give a service name")
    cpcs = sorted(c for c, n in zip(master["cpc"].to_pylist(), master["service_name"].to_pylist())
                  if (n or "").strip().lower() == key)
    if not cpcs:
        known = {(n or "").strip() for n in master["service_name"].to_pylist()}
        name = service.strip()
        raise AnalysisInputError(f"no CPC in MASTERCPC.csv for service {name!r}{_suggest(name, known)}")
    return cpcs


def lifetime_value(view: Path, master: pa.Table, service: str, months: list[str]) -> Table:
    """Per activation month: the subscriptions whose cpc_list holds a CPC of `service`, their
    mean lifetime_days (to the view's as-of date, decision D6) and mean total_revenue_with_upgrade
    (the decision D4 revenue: upgrade charges added once, the activation never twice). A month without
    subscriptions has count 0 and no means.
    """
    months = check_months(months)
    cpcs = service_cpcs(master, service)
    view = Path(view)
    files = [str(p) for p in parts(view).values()]   # the view's parts only: never a stray file beside them
    if not files:
        raise AnalysisInputError(f"{view}: no subscription view (build SubscriptionView for the as-of day)")
    con = connect()
    try:
        con.execute("set threads = 2")
        con.register("subscriptions", con.read_parquet(files))
        result = con.execute(load_sql("analysis_ltv"), {"months": months, "cpcs": cpcs}).fetchall()
        found = {r[0]: r[1:] for r in result}
    finally:
        con.close()
    names = {(n or "").strip() for c, n in zip(master["cpc"].to_pylist(), master["service_name"].to_pylist())
             if c in set(cpcs)}
    name = min(names)  # the master's spelling
    rows = []
    for month in months:
        count, lifetime, ltv = found.get(month, (0, None, None))
        rows.append((name, month, count, lifetime, ltv))
    table = Table(("service", "activation_month", "subscriptions", "avg_lifetime_days", "avg_ltv_eur"),
                  ("text", "text", "int", "float", "eur"), rows)
    table.notes.append(f"{name}: CPCs {', '.join(map(str, cpcs))} (MASTERCPC.csv)")
    return table


# -- validate_user_base ------------------------------------------------------------------

def _read_pipe(path: Path, header: tuple[str, ...], day: dt.date) -> list[list[str]]:
    """The rows of a pipe-delimited user-base export dated `day` (fields after the date)."""
    path = Path(path)
    try:
        fh = open(path, newline="", encoding="utf-8")
    except FileNotFoundError:
        raise AnalysisInputError(f"{path}: the user-base export does not exist (build ExportUserBase)") from None
    wanted = f"{day:%Y-%m-%d}"
    rows = []
    with fh:
        recs = records(fh, delimiter="|", quoting=csv.QUOTE_NONE)
        got = next((rec.fields for rec in recs), None)
        if got is None or tuple(got) != header:
            raise AnalysisInputError(f"{path}: line 1: header {got!r}, expected {'|'.join(header)}")
        for rec in recs:
            fields = rec.fields
            if not fields:
                continue
            if len(fields) != len(header):
                raise AnalysisInputError(
                    f"{path}: line {rec.end}: {len(fields)} fields, expected {len(header)}")
            if fields[0] == wanted:
                rows.append([plain_cell(f) for f in fields[1:]])
    return rows


def _int(text: str, path: Path, what: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise AnalysisInputError(f"{path}: {what} {text!r} is not an integer") from None


def check_user_base(by_service: Path, by_cpc: Path, master: pa.Table, day: dt.date,
                    services: list[str] | None = None) -> Table:
    """For each service of `day` (or those given): Σ User_Base over its rows of
    user_base_by_service.csv against Σ User_Base over user_base_by_cpc.csv of the CPCs the
    master assigns to it (names stripped). Rows by service name; `status` is ok or MISMATCH.
    """
    service_rows = _read_pipe(by_service, ("date", "service_name", "tme_category", "User_Base"), day)
    cpc_rows = _read_pipe(by_cpc, ("date", "cpc", "User_Base"), day)
    if not service_rows and not cpc_rows:
        raise AnalysisInputError(f"no user base for {day} in {Path(by_service).name} or {Path(by_cpc).name}")
    per_service: dict[str, int] = defaultdict(int)
    for name, _category, value in service_rows:
        per_service[name.strip()] += _int(value, Path(by_service), "User_Base")
    per_cpc: dict[int, int] = defaultdict(int)
    for cpc, value in cpc_rows:
        per_cpc[_int(cpc, Path(by_cpc), "cpc")] += _int(value, Path(by_cpc), "User_Base")
    cpcs_of: dict[str, list[int]] = defaultdict(list)
    for cpc, name in zip(master["cpc"].to_pylist(), master["service_name"].to_pylist()):
        cpcs_of[(name or "").strip()].append(cpc)
    names = sorted(per_service) if services is None else _ordered_names(services)
    rows = []
    for name in names:
        service_sum = per_service.get(name, 0)
        cpcs = cpcs_of.get(name, [])
        cpc_sum = sum(per_cpc.get(c, 0) for c in cpcs)
        rows.append((name, service_sum, cpc_sum, service_sum - cpc_sum, len(cpcs),
                     "ok" if service_sum == cpc_sum else "MISMATCH"))
    table = Table(("service_name", "service_user_base", "cpc_user_base", "difference", "master_cpcs", "status"),
                  ("text", "int", "int", "int", "int", "text"), rows)
    unknown = [n for n in names if n not in cpcs_of]
    if unknown:
        table.notes.append(f"{len(unknown)} service(s) without a CPC in MASTERCPC.csv: "
                           f"{', '.join(map(repr, unknown[:10]))}")
    return table


def mismatches(table: Table) -> Table:
    """The rows of a `check_user_base` table whose status is not ok."""
    return Table(table.columns, table.kinds, [r for r in table.rows if r[-1] != "ok"], list(table.notes))
