"""The bad-input corpus: every malformed input through its real entry point, and docs/bad-input.md kept true.

Inputs are files under tests/corpus/ (transaction extracts, NBS snapshots, exclusion lists)
and Excel masters built here with openpyxl; the transaction extracts of tests/golden/load
(pinned by tests/steps/test_load.py) are part of the table too. Every case states its outcome:
rows quarantined with a reason (the good rows all published), or the step failing with a
named error whose message names the file and the line and quotes no personal data. Never a
bare traceback, never a good row lost.

In the transaction and exclusion files a good row's tmuserid starts 8341, a bad row's 8349.

docs/bad-input.md is generated from the cases below and checked here; `CVAS_UPDATE_DOCS=1`
rewrites it (review the diff).
"""

from __future__ import annotations

import csv
import dataclasses
import datetime as dt
import json
import os
import re
import shutil
import subprocess
import sys
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from cvas.core import provenance
from cvas.steps.exclusions import ExclusionListError, load_exclusions
from cvas.core.layout import Layout
from cvas.steps.load import load_into_layout
from cvas.steps.load_contract import ExtractFormatError, RejectRatioExceeded
from cvas.steps.master import MasterFormatError, master_csv_text, read_master_csv, read_master_xlsx
from cvas.core.schemas import KINDS, spec
from cvas.steps.user_base import SnapshotFormatError, build_user_base_daily

pytestmark = pytest.mark.slow   # see pyproject: make test-fast leaves it out

REPO = Path(__file__).resolve().parents[2]
CORPUS = Path(__file__).parents[1] / "corpus"
GOLDEN = Path(__file__).parents[1] / "golden" / "load"
DOC = REPO / "docs" / "bad-input.md"
DAY = dt.date(2026, 2, 10)
UPDATE = os.environ.get("CVAS_UPDATE_DOCS") == "1"

_GOOD = re.compile(r"(?<![0-9])8341[0-9]{15,}(?![0-9])")
_BAD = re.compile(r"(?<![0-9])8349[0-9]{15,}(?![0-9])")
_LONG_DIGITS = re.compile(r"[0-9]{11,}")


def no_personal_data(text: str, source: bytes) -> None:
    """No identifier of `source` (a run of 11+ digits: msisdn, tmuserid, ids) appears in `text`."""
    found = set(_LONG_DIGITS.findall(source.decode("utf-8", errors="replace")))
    leaked = {x for x in found if x in text}
    assert not leaked, f"message quotes input identifiers: {sorted(leaked)[:3]}"


# ========================================================================================
# transaction extracts


@dataclass(frozen=True)
class Tx:
    """One extract of tests/corpus/transactions, loaded as its kind (the file name's prefix) for DAY."""

    file: str
    what: str
    written: int | None = None                      # rows in the published partition
    rejects: tuple[tuple[int, str], ...] = ()       # (physical line, reason class) in the rejects file
    duplicates: int = 0
    key_conflicts: int = 0
    error: str | None = None                        # the ExtractFormatError message, the file as <file>
    ratio_failure: bool = False                     # loaded at the default limit 0.01: the day fails
    note: str = ""
    check: Callable | None = field(default=None, compare=False)
    day: dt.date = DAY                              # the day it is loaded for
    make: Callable | None = field(default=None, compare=False)   # writes a generated extract (too big to keep)

    @property
    def kind(self) -> str:
        return self.file.split("_", 1)[0]


def _reno_conflicting_copy_kept(table) -> None:
    revs = sorted((r["tmuserid"], r["trans_date"].hour, r["rev"]) for r in table.to_pylist())
    assert revs == [("8341000000000000001", 8, 4.99), ("8341000000000000001", 20, 4.99),
                    ("8341000000000000002", 8, 4.99), ("8341000000000000002", 8, 5.99)]


def _both_dst_renewals_kept(table) -> None:
    rows = [r for r in table.to_pylist() if r["subscription_id"] == 770000000000000001]
    assert len(rows) == 2 and sum(r["rev"] for r in rows) == 9.98
    assert sorted(r["reno_date"].hour for r in rows) == [1, 2]


def _ten_megabyte_field(path: Path) -> None:
    names = spec("cnr").names
    with open(path, "w", encoding="utf-8") as fh:
        fh.write(",".join(names) + "\n2026-02-10 10:00:00,770000000000000001,8341000000000000001,45530,CCC-CR\n")
        fh.write("2026-02-10 11:00:00,770000000000000002,8341000000000000002,45530," + "x" * 10_000_000 + "\n")


def _long_tmuserid_kept(table) -> None:
    assert "8341000000000000000000002" in table["tmuserid"].to_pylist()
    assert 9223372036854775807 in table["sbn_id"].to_pylist()


def _quoted_newline_kept(table) -> None:
    assert table["camp_name"].to_pylist()[0] == "spring,\r\npromo"
    assert 'a "quoted" id' in table["campana_id"].to_pylist()


TX_CASES = [
    Tx("act_amounts.csv",
       "negative, non-numeric (`1,64`, `€4.99`) and non-finite (`inf`) amounts; `1e1` and `0` are valid",
       written=3, rejects=((3, "negative_amount"), (4, "bad_number"), (5, "bad_number"), (6, "bad_number"))),
    Tx("rfnd_amounts_and_ids.csv", "negative and non-numeric refund amounts, non-numeric and int64-overflowing "
       "counts and ids, a flag that is not t/f, a null tmuserid (key); a null sbnid and a time on refnd_date are valid",
       written=3, rejects=((3, "negative_amount"), (4, "bad_number"), (5, "bad_integer"), (6, "int_overflow"),
                           (7, "int_overflow"), (8, "bad_flag"), (10, "null_key"))),
    Tx("dct_other_days.csv", "rows dated the day before, the day after and in 2099; a future act_date and a "
       "date-only trans_date are valid", written=3,
       rejects=((3, "not_this_day"), (4, "not_this_day"), (5, "not_this_day")),
       note="only the primary date (trans_date) decides the day"),
    Tx("ppd_bad_dates.csv", "bad dates: 29 February of a common year, `DD/MM/YYYY`, month 13 (in act_date), a `Z` "
       "zone, `yesterday` (in reno_date); a cpc beyond int64", written=2,
       rejects=((3, "bad_timestamp"), (4, "bad_timestamp"), (5, "bad_timestamp"), (6, "bad_timestamp"),
                (7, "bad_timestamp"), (9, "int_overflow")),
       note="a bad value in any date column rejects the row, never nulls it"),
    Tx("cnr_ids_beyond_int64.csv", "sbn_id 2^63, an id padded with a space, cpc `45530.0`; a 25-digit tmuserid "
       "and sbn_id 2^63-1 are valid", written=3,
       rejects=((4, "int_overflow"), (5, "bad_integer"), (6, "bad_integer")),
       note="tmuserid/msisdn stay text (decision D12)", check=_long_tmuserid_kept),
    Tx("act_crlf_quoted_newline.csv", "CRLF line ends, a quoted field holding a comma and a CRLF, escaped quotes, "
       "a row dated the next day", written=2, rejects=((4, "not_this_day"),),
       note="reject lines are physical lines: the quoted line break counts", check=_quoted_newline_kept),
    Tx("reno_duplicates.csv", "an exact duplicate, a conflicting copy (same key, another rev) and a second "
       "renewal of the same subscription later that day", written=4, duplicates=1, key_conflicts=1,
       note="exact copies merge; rows sharing a key but differing in another column are all kept (decision D16: "
            "1 key conflict reported, no charge dropped); different times are different rows",
       check=_reno_conflicting_copy_kept),
    Tx("cnr_truncated_in_quotes.csv", "file cut inside a quoted field (no final line break)", written=2,
       rejects=((4, "truncated_record"),), note="fixed: the cut value used to be loaded as if whole"),
    Tx("ppd_truncated_mid_row.csv", "file cut in the middle of a row", written=2, rejects=((4, "wrong_field_count"),)),
    Tx("dct_truncated_mid_utf8.csv", "file cut inside a multi-byte UTF-8 character",
       error="<file>: line 4: bytes that are not UTF-8 (offset 460); transactions must be UTF-8"),
    Tx("reno_semicolon.csv", "`;`-separated (a spreadsheet's regional export)",
       error="<file>: line 1: wrong header: none of the 15 expected columns <columns> found in its 1 fields "
             "(is the header missing?)"),
    Tx("dct_header_duplicate_column.csv", "header names trans_date twice, act_date never",
       error="<file>: line 1: wrong header: expected 13 columns <columns>; found 13; missing act_date"),
    Tx("cnr_whitespace_only.csv", "only blanks and line breaks", error="<file>: empty file, no header"),
    Tx("rfnd_out_of_range.csv", "a negative rfnd_cnt (-7), rfnd_cnt 2^63-1, a refund of 10^16 (beyond the "
       "DECIMAL(18,2) the SQL sums in), a negative cpc; a refund just under 10^16 and rfnd_cnt 1,000,000 are valid",
       written=2, rejects=((3, "out_of_range"), (4, "out_of_range"), (5, "out_of_range"), (6, "out_of_range")),
       note="decision D15: every numeric column has a plausible range; these used to be loaded, then lowered a "
            "published rfnd_count or crashed DailyCounters and every later view"),
    Tx("act_money_beyond_decimal.csv", "rev 1e16 and 12345678901234567.5 (beyond DECIMAL(18,2)), a negative "
       "channel_id and tef_prov", written=1,
       rejects=((3, "out_of_range"), (4, "out_of_range"), (5, "out_of_range"), (6, "out_of_range")),
       note="decision D15"),
    Tx("reno_dst_ambiguous_hour.csv", "two renewals of one subscription at 02:30 on 2025-10-26, once CEST and once "
       "CET (Nova writes local time without an offset): same key, another reno_date", written=3, key_conflicts=1,
       day=dt.date(2025, 10, 26), check=_both_dst_renewals_kept,
       note="loaded for 2025-10-26. decision D16: both rows are kept (they differ in a non-key column), both charges "
            "counted; the key conflict is reported and logged. Only rows equal in every column merge"),
    Tx("cnr_utf16.csv", "saved as UTF-16 (a spreadsheet's \"Unicode text\")",
       error="<file>: line 1: NUL byte in the file: it looks like UTF-16 LE (byte order mark); transactions must be "
             "UTF-8 (re-export it as UTF-8)"),
    Tx("cnr_ten_megabyte_field.csv", "a field of 10 MB (generated by the test)", make=_ten_megabyte_field,
       error="<file>: line 3: a record of 10,000,065 bytes, longer than the CSV reader's block (1 MiB): no field of "
             "an extract is that long (an unterminated quote, or a corrupted file?)",
       note="was Arrow's \"straddling object ... try to increase block size\", a setting cvas does not have"),
    Tx("act_all_rows_another_day.csv", "every row dated the previous day (yesterday's extract delivered again, "
       "legacy rule L-D06)", ratio_failure=True,
       rejects=((2, "not_this_day"), (3, "not_this_day"), (4, "not_this_day"), (5, "not_this_day")),
       note="over `[cvas] max_reject_ratio`: RejectRatioExceeded; rejects and quality report published, "
            "no partition (a previous one stays)"),
]

# The golden extracts of tests/golden/load (tests/steps/test_load.py pins their exact outputs).
GOLDEN_WHAT = {
    "act_quoting": "quoted commas and line breaks, `\"\"` escapes, every null marker, `T` separator and fractional "
                   "seconds, leading zeros, the int64 bounds, a 22-digit tmuserid",
    "cnr_basic": "a duplicate cancellation and a null sbn_id (key)",
    "cnr_header_only_crlf": "header only, CRLF",
    "dct_dedup": "exact duplicates, conflicting copies, equal timestamps written differently",
    "ppd_null_subscription": "null subscription_id (allowed for PPD): only exact copies merge",
    "reno_bad_utf8": "a latin-1 byte in a value",
    "reno_bad_utf8_short_row": "a latin-1 byte in a short row",
    "reno_bom_crlf": "UTF-8 BOM and CRLF; a non-numeric rev",
    "reno_cr_stray_quote": "lone-CR line ends, a stray quote in an unquoted field, a quoted line break",
    "reno_empty": "empty file (0 bytes)",
    "reno_header_case": "header in another letter case",
    "reno_header_extra": "an extra column",
    "reno_header_missing": "a missing column",
    "reno_header_only": "header only",
    "reno_header_reordered": "reordered columns",
    "reno_header_wrong": "a renamed column",
    "reno_no_header": "no header (data on line 1)",
    "reno_nul": "a NUL byte",
    "reno_rejects": "one row per reject reason: impossible dates, zone offsets, int64 overflow, wrong field "
                    "counts, another day, wrong trans_type_id, null key and date, hex, `NaN`, 7 decimals",
    "rfnd_grain": "regular and automatic refunds of one subscription, null sbnids, a bad flag",
}
GOLDEN_CASES = sorted(p.name[: -len("_expected.json")] for p in GOLDEN.glob("*_expected.json"))


def _show_columns(message: str, kind: str) -> str:
    return message.replace(",".join(spec(kind).names), "<columns>")


@pytest.mark.parametrize("case", TX_CASES, ids=[c.file for c in TX_CASES])
def test_transaction_extract(case: Tx, layout: Layout):
    """Through load_into_layout (what LoadTransactions runs): raw landing copy → partition, rejects, report."""
    kind, day = case.kind, case.day
    raw = layout.raw(kind, day)
    raw.parent.mkdir(parents=True, exist_ok=True)
    if case.make:
        case.make(raw)
    else:
        shutil.copyfile(CORPUS / "transactions" / case.file, raw)
    source = raw.read_bytes()
    out, quality, rejects_path = layout.transactions(kind, day), layout.quality(kind, day), layout.rejects(kind, day)

    if case.error:
        with pytest.raises(ExtractFormatError) as err:
            load_into_layout(layout, kind, day, max_reject_ratio=1.0)
        message = str(err.value)
        assert _show_columns(message.replace(str(raw), "<file>"), kind) == case.error
        no_personal_data(message, source)
        assert not out.exists() and not quality.exists() and not rejects_path.exists(), "nothing is published"
        return

    if case.ratio_failure:
        with pytest.raises(RejectRatioExceeded) as err:
            load_into_layout(layout, kind, day)
        message = str(err.value)
        assert str(raw) in message and str(rejects_path) in message and "limit 0.0100" in message
        no_personal_data(message, source)
        assert not out.exists()
        report = json.loads(quality.read_text())
        assert report["status"] == "failed"
    else:
        report = load_into_layout(layout, kind, day, max_reject_ratio=1.0)
        table = pq.ParquetFile(out).read()
        assert table.schema.equals(spec(kind).schema)
        assert table.num_rows == report["rows_written"] == case.written
        assert (report["duplicates_removed"], report["key_conflicts"]) == (case.duplicates, case.key_conflicts)
        # no good row lost, no bad row kept
        ids = set(table["tmuserid"].drop_null().to_pylist())
        text = source.decode("utf-8")
        assert ids == set(_GOOD.findall(text)), "every good row, and only good rows, are published"
        assert not ids & set(_BAD.findall(text))
        assert report["rows_read"] == report["rows_written"] + report["rejected"] + report["duplicates_removed"]
        meta = provenance.read(layout, out)
        assert meta["output_hash"] == provenance.file_hash(out) and meta["inputs"]["raw"]["hash"] == \
            provenance.file_hash(raw)
        if case.check:
            case.check(table)

    with open(rejects_path, newline="", encoding="utf-8") as fh:
        published = list(csv.DictReader(fh))
    assert [int(r["line"]) for r in published] == [line for line, _ in case.rejects]
    assert all(r["source_file"] == str(raw) for r in published)
    assert report["rejected_by_reason"] == dict(sorted(Counter(c for _, c in case.rejects).items()))
    # the rejected record is the raw text of its physical line(s)
    lines = source.decode("utf-8").splitlines()
    for r in published:
        assert r["record"].splitlines()[0] == lines[int(r["line"]) - 1]


def test_every_corpus_extract_is_a_case_and_every_kind_is_covered():
    files = {p.name for p in (CORPUS / "transactions").glob("*.csv")}
    assert files == {c.file for c in TX_CASES if not c.make}
    assert {c.kind for c in TX_CASES} == set(KINDS)
    assert set(GOLDEN_CASES) == set(GOLDEN_WHAT), "describe every golden load case in GOLDEN_WHAT"


# ========================================================================================
# NBS snapshots


@dataclass(frozen=True)
class Snap:
    """One snapshot of tests/corpus/user_base, aggregated for DAY by build_user_base_daily."""

    file: str
    what: str
    groups: int | None = None          # rows of the per-day aggregate
    total: int | None = None           # Σ user_base
    error: str | None = None           # the SnapshotFormatError message, the file as <file>
    gap: str = ""                      # a known gap: the outcome it should have (the test is a strict xfail)
    note: str = ""


SNAP_CASES = [
    Snap("bom_crlf_reordered_extra.csv", "UTF-8 BOM, CRLF, columns reordered, an extra column", groups=2, total=205,
         note="columns are found by name; rows of every channel_desc are summed"),
    Snap("quoted_comma.csv", "a quoted service name holding a comma, a padded category, a fractional count",
         groups=2, total=42, note="names stripped; count truncated toward zero (legacy int(float()))"),
    Snap("header_only.csv", "header only", groups=0, total=0, note="a valid empty day, logged as a warning"),
    Snap("truncated.csv", "file cut in the middle of a row", error="<file>: line 3: 3 fields, expected 7"),
    Snap("no_header.csv", "no header (data on line 1)",
         error="<file>: line 1: missing column(s) cpc, service_name, tme_category, count (header: "
               "44009|cp|Abaco|1.64|Education|ACTIVE|120)"),
    Snap("negative_count.csv", "a negative count",
         error="<file>: line 3: count '-3' is not a finite, non-negative count within int64"),
    Snap("nul_byte.csv", "a NUL byte inside a service name", error="<file>: line 2: service_name holds a NUL byte"),
    Snap("cpc_beyond_int64.csv", "a cpc beyond int64",
         error="<file>: line 3: cpc '99999999999999999999' does not fit int64"),
    Snap("count_beyond_int64.csv", "a count beyond int64 (`1e30`)",
         error="<file>: line 3: count '1e30' is not a finite, non-negative count within int64"),
]


def _snap_param(case: Snap):
    marks = [pytest.mark.xfail(strict=True, raises=OverflowError, reason=case.gap)] if case.gap else []
    return pytest.param(case, id=case.file, marks=marks)


@pytest.mark.parametrize("case", [_snap_param(c) for c in SNAP_CASES])
def test_nbs_snapshot(case: Snap, layout: Layout):
    """Through build_user_base_daily (what AggregateUserBase runs): snapshot → per-day aggregate."""
    snapshot = layout.user_base_snapshot(DAY)
    snapshot.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(CORPUS / "user_base" / case.file, snapshot)
    out = layout.user_base_daily(DAY)
    if case.error or case.gap:
        with pytest.raises(SnapshotFormatError) as err:
            build_user_base_daily(snapshot, DAY, out, layout.staging)
        message = str(err.value)
        if case.error:
            assert message.replace(str(snapshot), "<file>") == case.error
        else:
            assert str(snapshot) in message and "line 3" in message
        assert not out.exists()
        return
    info = build_user_base_daily(snapshot, DAY, out, layout.staging)
    table = pq.read_table(out)
    assert (table.num_rows, sum(table["user_base"].to_pylist())) == (case.groups, case.total)
    assert info["groups"] == case.groups


def test_every_corpus_snapshot_is_a_case():
    assert {p.name for p in (CORPUS / "user_base").glob("*.csv")} == {c.file for c in SNAP_CASES}


# ========================================================================================
# the Excel CPC master (workbooks built here: a corpus of specs, not of binary files)

HEADERS = ["CPC", "CPC to upgrade", "TME Category", "Service Name", "Subscription Model", "Price"]
ROW_A = [45530, None, "Music", "Movistar Apple Music", "Monthly subscription", 8.26]
ROW_B = [44009, 45530, "Education", "Abaco", "Weekly subscription", 1.64]


@dataclass(frozen=True)
class Master:
    """One Excel master: sheets as [(title, rows)], or raw bytes written as the .xlsx file."""

    name: str
    what: str
    sheets: tuple = ()
    raw: bytes | None = None
    cpcs: tuple[int, ...] | None = None      # CPCs of MASTERCPC.csv, in order
    logged: str = ""                         # a warning the read logs
    error: str | None = None                 # the MasterFormatError message, the file as <file>
    note: str = ""


def _sheet(*rows, title="Hoja2"):
    return ((title, rows),)


def _cols(row, order):
    return [row[HEADERS.index(h)] if h in HEADERS else None for h in order]


REORDERED = ["Service Name", "Unique_ID", "Price", "CPC", "% VAT", "Subscription Model", "TME Category",
             "CPC to upgrade"]

MASTER_CASES = [
    Master("missing_column", "the Price column is missing", sheets=_sheet(HEADERS[:5], ROW_A[:5]),
           error="<file>: sheet 'Hoja2' row 1: missing column(s) Price"),
    Master("reordered_extra_columns", "columns reordered among extra ones (the real workbook has 34)",
           sheets=_sheet(REORDERED, _cols(ROW_A, REORDERED), _cols(ROW_B, REORDERED)), cpcs=(44009, 45530),
           note="columns are found by name"),
    Master("first_sheet_wrong", "the first sheet is `Mapping Categories` (MASTER_CPC_MATRIX.xlsx)",
           sheets=(("Mapping Categories", (["Category", "Mapped"], ["Games", "Games & Ugames"])),
                   ("MASTER CPC", (HEADERS, ROW_A))),
           error="<file>: sheet 'Mapping Categories' row 1: missing column(s) CPC, CPC to upgrade, TME Category, "
                 "Service Name, Subscription Model, Price"),
    Master("not_xlsx", "a CSV saved with an .xlsx name", raw=b"CPC,Price\n45530,8.26\n",
           error="<file>: not a readable .xlsx workbook (BadZipFile: File is not a zip file)"),
    Master("truncated", "a workbook cut to half its bytes", raw=b"<half>",
           error="<file>: not a readable .xlsx workbook (BadZipFile: File is not a zip file)"),
    Master("empty_file", "empty file (0 bytes)", raw=b"",
           error="<file>: not a readable .xlsx workbook (BadZipFile: File is not a zip file)"),
    Master("empty_sheet", "an empty first sheet", sheets=_sheet(),
           error="<file>: sheet 'Hoja2' is empty (no header row)"),
    Master("price_text", "a non-numeric price", sheets=_sheet(HEADERS, ROW_A, ROW_B[:5] + ["1,64 €"]),
           error="<file>: sheet 'Hoja2' row 3: Price '1,64 €' is not a number"),
    Master("price_nan", "a price `nan`", sheets=_sheet(HEADERS, ROW_A, ROW_B[:5] + ["nan"]),
           error="<file>: sheet 'Hoja2' row 3: Price 'nan' is not a number",
           note="fixed: it used to reach MASTERCPC.csv and the service export as `nan`"),
    Master("cpc_beyond_int64", "a CPC beyond int64",
           sheets=_sheet(HEADERS, ROW_A, ["99999999999999999999"] + ROW_B[1:]),
           error="<file>: sheet 'Hoja2' row 3: CPC 100000000000000000000 does not fit int64",
           note="fixed: it used to be written, then crash every reader of MASTERCPC.csv"),
    Master("duplicate_header", "the CPC column twice", sheets=_sheet(HEADERS + ["CPC"], ROW_A + [1]),
           error="<file>: sheet 'Hoja2' row 1: column(s) CPC appear more than once", note="fixed: the first was used"),
    Master("cpc_not_numeric", "text and fractional CPCs, a blank row",
           sheets=_sheet(HEADERS, ROW_A, ["n/a"] + ROW_B[1:], [None] * 6, [45531.5] + ROW_B[1:], ROW_B),
           cpcs=(44009, 45530), logged="2 row(s) without a numeric CPC dropped (sheet rows 3, 5)",
           note="dropped as the legacy did (NA), logged with their sheet rows"),
    Master("duplicate_cpc", "the same CPC twice", sheets=_sheet(HEADERS, ROW_A, ROW_A[:3] + ["Other name"] + ROW_A[4:]),
           cpcs=(45530,), logged="duplicate CPC 45530 at sheet row 3 ignored (first row kept)"),
    Master("unmapped_model", "an unknown subscription model",
           sheets=_sheet(HEADERS, ROW_A, ROW_B[:4] + ["Fortnightly subscription", 1.64]), cpcs=(44009, 45530),
           logged="subscription model 'Fortnightly subscription' (1 CPCs) is not mapped; period 0"),
    Master("comma_newline_name", "a service name holding a comma and a line break",
           sheets=_sheet(HEADERS, ROW_A[:3] + ["Música, Radio\ny +"] + ROW_A[4:]), cpcs=(45530,),
           note="MASTERCPC.csv quotes it (RFC 4180) and reads it back intact"),
    Master("negative_price", "a negative price", sheets=_sheet(HEADERS, ROW_A[:5] + [-1.0]), cpcs=(45530,),
           note="accepted: reference data, no revenue is computed from it"),
    Master("header_only", "header only", sheets=_sheet(HEADERS), cpcs=(), note="accepted: 0 mappings, logged"),
]


def _write_master(case: Master, path: Path, tmp_path: Path) -> None:
    from openpyxl import Workbook

    if case.raw is not None:
        data = case.raw
        if data == b"<half>":
            whole = tmp_path / "whole.xlsx"
            _write_master(Master("whole", "", sheets=_sheet(HEADERS, ROW_A)), whole, tmp_path)
            data = whole.read_bytes()[: whole.stat().st_size // 2]
        path.write_bytes(data)
        return
    wb = Workbook()
    for i, (title, rows) in enumerate(case.sheets):
        ws = wb.active if i == 0 else wb.create_sheet()
        ws.title = title
        for row in rows:
            ws.append(list(row))
    wb.save(path)


@pytest.mark.parametrize("case", MASTER_CASES, ids=[c.name for c in MASTER_CASES])
def test_excel_master(case: Master, tmp_path, caplog):
    """Through read_master_xlsx and MASTERCPC.csv written and read back (what MasterCpc and the exports run)."""
    path = tmp_path / "Master_CPCs.xlsx"
    _write_master(case, path, tmp_path)
    caplog.set_level("INFO", logger="cvas.steps.master")
    if case.error:
        with pytest.raises(MasterFormatError) as err:
            read_master_xlsx(path)
        assert str(err.value).replace(str(path), "<file>") == case.error
        return
    rows = read_master_xlsx(path)
    csv_path = tmp_path / "MASTERCPC.csv"
    csv_path.write_text(master_csv_text(rows), encoding="utf-8")
    table = read_master_csv(csv_path)
    assert tuple(table["cpc"].to_pylist()) == case.cpcs
    assert table.to_pylist() == [dataclasses.asdict(r) for r in rows]
    if case.logged:
        assert case.logged in caplog.text


# ========================================================================================
# the exclusion list


@dataclass(frozen=True)
class Excl:
    """One list of tests/corpus/exclusions, read by load_exclusions (what DailyCounters runs)."""

    file: str
    what: str
    msisdn: frozenset[str] | None = None
    tmuserid: frozenset[str] | None = None
    error: str | None = None
    note: str = ""


EXCL_CASES = [
    Excl("latin1.csv", "a latin-1 byte",
         error="<file>: line 3: bytes that are not UTF-8 (offset 39); the exclusion list must be UTF-8",
         note="fixed: a bare UnicodeDecodeError"),
    Excl("bom_crlf.csv", "UTF-8 BOM and CRLF", msisdn=frozenset({"34600000001", "34600000002"}),
         tmuserid=frozenset({"8341000000000000001"})),
    Excl("reordered.csv", "columns reversed (`tmuserid,msisdn`), an empty tmuserid",
         msisdn=frozenset({"34600000001", "34600000002"}), tmuserid=frozenset({"8341000000000000001"})),
    Excl("extra_column.csv", "an extra column",
         error="<file>: line 1: unknown column(s) ['comment']; expected msisdn,tmuserid"),
    Excl("too_many_fields.csv", "a row with three fields", error="<file>: line 3: 3 fields, expected 2"),
    Excl("truncated_quote.csv", "file cut inside a quoted field",
         error="<file>: line 3: not valid CSV (unexpected end of data)",
         note="fixed: the cut value used to be read as an id"),
    Excl("duplicate_header.csv", "the msisdn column twice",
         error="<file>: line 1: column(s) msisdn appear more than once", note="fixed: the second was ignored"),
    Excl("quoted_newline_line_numbers.csv", "a quoted value spanning two lines, then a bad value",
         error="<file>: line 4: msisdn is not a number", note="fixed: the line number counted records"),
    Excl("nul.csv", "a NUL byte inside an msisdn", error="<file>: line 2: msisdn is not a number"),
    Excl("negative.csv", "a negative msisdn", error="<file>: line 2: msisdn is not a number"),
    Excl("beyond_int64.csv", "ids beyond int64 (22 and 25 digits)", msisdn=frozenset({"34600000001"}),
         tmuserid=frozenset({"9344000000000000000001", "8341000000000000000000002"}),
         note="values stay strings and compare exactly (decision D5, legacy rules L-D13/L-D23)"),
    Excl("legacy_headerless_blank_lines.csv", "the legacy headerless one-msisdn-per-line form, blank lines",
         msisdn=frozenset({"34600000001", "34600000002"}), tmuserid=frozenset()),
    Excl("header_only.csv", "header only", msisdn=frozenset(), tmuserid=frozenset(), note="excludes nobody"),
    Excl("empty.csv", "empty file (0 bytes)", msisdn=frozenset(), tmuserid=frozenset(), note="excludes nobody"),
]


@pytest.mark.parametrize("case", EXCL_CASES, ids=[c.file for c in EXCL_CASES])
def test_exclusion_list(case: Excl):
    path = CORPUS / "exclusions" / case.file
    if case.error:
        with pytest.raises(ExclusionListError) as err:
            load_exclusions(path)
        message = str(err.value)
        assert message.replace(str(path), "<file>") == case.error
        no_personal_data(message, path.read_bytes())
        return
    got = load_exclusions(path)
    assert (got.msisdn, got.tmuserid) == (case.msisdn, case.tmuserid)


def test_every_corpus_exclusion_list_is_a_case():
    assert {p.name for p in (CORPUS / "exclusions").glob("*.csv")} == {c.file for c in EXCL_CASES}


# ========================================================================================
# through the CLI: `cvas backfill` over legacy drops (source = directory)

CLI_DAYS = [dt.date(2026, 2, 10) + dt.timedelta(days=i) for i in range(4)]


@dataclass(frozen=True)
class Cli:
    what: str
    stderr: str          # what stderr must contain (paths relative to the run's folder)


CLI_CASES = [
    Cli("2026-02-10: the reno drop is `;`-separated",
        "data/raw/reno/2026-02-10.csv: line 1: wrong header: none of the 15 expected columns"),
    Cli("2026-02-10: one act row dated the next day (1 of 3, under a 0.5 limit)", ""),
    Cli("2026-02-11: the rfnd drop is the previous day's file again",
        "data/raw/rfnd/2026-02-11.csv: 4 of 4 rows rejected, ratio 1.0000 > limit 0.5000; top reasons: "
        "not_this_day=4; rejects in"),
    Cli("2026-02-11: the NBS snapshot is cut mid-row", "user_base/snapshots/20260211_NBS_Base.csv: line 3: 3 fields, "
        "expected 7"),
    Cli("2026-02-12: a partial drop (only act)", "partial drop for 2026-02-12: "),
    Cli("2026-02-13: the exclusion list has a latin-1 byte",
        "Users_No_Limits.csv: line 3: bytes that are not UTF-8 (offset 39); the exclusion list must be UTF-8"),
    Cli("the Excel master has a text price", "Master.xlsx: sheet 'Hoja2' row 3: Price '1,64 €' is not a number"),
]

NAMED_ERRORS = {"ExtractFormatError", "RejectRatioExceeded", "SnapshotFormatError", "SourceError", "DeliveryError",
                "ExclusionListError", "MasterFormatError", "DaysFailed", "ViewGapError"}
LUIGI_CFG = """[core]
autoload_range = false
[retcode]
already_running = 10
missing_data = 20
not_run = 25
task_failed = 30
scheduling_error = 35
unhandled_exception = 40
[cvas]
data_root = {root}/data
source = directory
max_reject_ratio = 0.5
master_xlsx = {root}/Master.xlsx
exclusions = {root}/Users_No_Limits.csv
workers = 1
log_dir = {root}/logs
[directory_source]
root = {root}/drops
"""


def _drops(root: Path) -> None:
    """Four days of legacy drops, each with the faults of CLI_CASES."""
    from tests.golden_scenario import write_golden_drops

    for day in CLI_DAYS:
        write_golden_drops(root, day)
        for path in list((root / "Daily_Data" / f"{day}").glob("*.csv")):   # the golden rows are for 2026-02-10
            path.write_text(path.read_text().replace("2026-02-10", f"{day}"))
    d10, d11, d12, _ = (root / "Daily_Data" / f"{d}" for d in CLI_DAYS)
    shutil.copyfile(CORPUS / "transactions" / "reno_semicolon.csv", d10 / "reno_atlas_day.csv")
    shutil.copyfile(CORPUS / "transactions" / "act_crlf_quoted_newline.csv", d10 / "act_atlas_day.csv")
    stale = d11 / "rfnd_atlas_day.csv"
    stale.write_text(stale.read_text().replace("2026-02-11", "2026-02-10"))
    shutil.copyfile(CORPUS / "user_base" / "truncated.csv", root / "User_Base" / "NBS_BASE" / "20260211_NBS_Base.csv")
    for path in d12.glob("*.csv"):
        if path.name != "act_atlas_day.csv":
            path.unlink()


def test_cli_backfill_over_bad_drops(tmp_path):
    """`python -m tasks.cli backfill` fails with exit code 30 and each clear message on stderr; every good
    file of the range is loaded, every good row of the partly bad file too."""
    _drops(tmp_path / "drops")
    _write_master(MASTER_CASES[[c.name for c in MASTER_CASES].index("price_text")], tmp_path / "Master.xlsx", tmp_path)
    shutil.copyfile(CORPUS / "exclusions" / "latin1.csv", tmp_path / "Users_No_Limits.csv")
    cfg = tmp_path / "luigi.cfg"
    cfg.write_text(LUIGI_CFG.format(root=tmp_path))
    # -v: the tracebacks (the error classes checked below) are shown on the console only when asked for
    run = subprocess.run([sys.executable, "-m", "tasks.cli", "-v", "backfill", "--start", f"{CLI_DAYS[0]}",
                          "--end", f"{CLI_DAYS[-1]}"], cwd=REPO, env=dict(os.environ, LUIGI_CONFIG_PATH=str(cfg)),
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 30, run.stdout + run.stderr
    stderr = run.stderr.replace(f"{tmp_path}/", "")
    for case in CLI_CASES:
        assert case.stderr in stderr, case.what
    # every failure is one of our named errors: no bare exception reaches the operator
    raised = set(re.findall(r"\| (?:[A-Za-z_][\w.]*\.)?([A-Za-z_]\w*): ", stderr))
    assert raised and raised <= NAMED_ERRORS, raised
    from tests.golden_scenario import ROWS

    lay = Layout(tmp_path / "data")
    day10, day11, day12, day13 = CLI_DAYS
    # 2026-02-10: the bad row quarantined, the two good ones loaded; the four intact kinds loaded whole
    assert sorted(pq.read_table(lay.transactions("act", day10))["tmuserid"].to_pylist()) == \
        ["8341000000000000001", "8341000000000000002"]
    assert [line.split(",")[1] for line in lay.rejects("act", day10).read_text().splitlines()[1:]] == ["4"]
    assert not lay.transactions("reno", day10).exists()
    for kind in ("dct", "cnr", "ppd", "rfnd"):
        assert pq.read_metadata(lay.transactions(kind, day10)).num_rows == len(ROWS[kind]), kind
    # 2026-02-11: five kinds loaded, rfnd failed with its rejects published; the bad snapshot built nothing
    assert not lay.transactions("rfnd", day11).exists() and lay.rejects("rfnd", day11).exists()
    for kind in ("act", "reno", "dct", "cnr", "ppd"):
        assert lay.transactions(kind, day11).exists(), kind
    assert not lay.user_base_daily(day11).exists()
    assert lay.transactions("act", day12).exists() and not lay.raw("reno", day12).exists()
    # 2026-02-13: all six loaded; only the counters (exclusion list) failed
    assert all(lay.transactions(k, day13).exists() for k in KINDS) and not lay.daily_counters(day13).exists()
    for day in (day10, day12, day13):
        assert lay.user_base_daily(day).exists()
    assert not lay.master_cpc.exists() and not lay.counters_cpc.exists()


# ========================================================================================
# docs/bad-input.md


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _code(text: str) -> str:
    return "`" + text.replace("`", "'") + "`"


def _quarantine(written: int, rejects, duplicates: int = 0) -> str:
    by_line = ", ".join(f"{line} {cls}" for line, cls in rejects)
    out = f"{written} row(s) loaded"
    if duplicates:
        out += f", {duplicates} duplicate(s) merged"
    return out + (f"; quarantined (line reason): {by_line}" if rejects else "")


def _golden_outcome(case: str) -> str:
    data = json.loads((GOLDEN / f"{case}_expected.json").read_text(encoding="utf-8"))
    kind = data["kind"]
    if "error" in data:
        return f"fails: {_code(_show_columns(data['message'], kind))}"
    rep = data["report"]
    return _quarantine(rep["rows_written"], [(r[0], r[1]) for r in data["rejects"]], rep["duplicates_removed"])


def render_doc() -> str:
    out = [
        "# Bad input: cases and outcomes",
        "",
        "<!-- Generated from tests/steps/test_corpus.py (CVAS_UPDATE_DOCS=1 rewrites it); the test fails when this "
        "file and the cases disagree. -->",
        "",
        "What cvas does with malformed input (principle P6: bad input is loud, nothing is lost). Each row is a "
        "file in `tests/corpus/` (or `tests/golden/load/`, or an Excel master built by the test) driven through the "
        "real entry point, with the outcome the test asserts:",
        "",
        "* **accepted**: valid input in an unusual form (BOM, CRLF, quoted line breaks, named columns in another "
        "order, ids beyond int64 in text columns) or a tolerance kept from the legacy, as the note says;",
        "* **quarantined**: the bad rows go to `rejects/<kind>/<date>.csv` with source file, physical line, reason "
        "and raw record; every good row is published (the test checks each good row's id is in the partition and no "
        "bad row's is); the quality report counts them by reason. A day whose rejected/read ratio passes "
        "`[cvas] max_reject_ratio` (0.01 by default) fails instead: `RejectRatioExceeded`, rejects and report "
        "published, no partition;",
        "* **fails**: a named error (`ExtractFormatError`, `SnapshotFormatError`, `MasterFormatError`, "
        "`ExclusionListError`) whose message names the file and the line and never quotes personal data; nothing is "
        "published and the previous output, if any, stays.",
        "",
        "`<file>` stands for the file's path, `<columns>` for the kind's column list. Line numbers are physical "
        "lines (a quoted line break counts).",
        "",
        "## Transaction extracts (`cvas.steps.load`, task LoadTransactions)",
        "",
        "Loaded for 2026-02-10 as the kind the file name starts with.",
        "",
        "| file | malformation | outcome | note |",
        "|---|---|---|---|",
    ]
    for c in TX_CASES:
        if c.error:
            outcome = f"fails: {_code(c.error)}"
        elif c.ratio_failure:
            outcome = "day fails (RejectRatioExceeded); " + _quarantine(0, c.rejects)
        else:
            outcome = _quarantine(c.written, c.rejects, c.duplicates)
        where = f"generated `{c.file}`" if c.make else f"`corpus/transactions/{c.file}`"
        out.append(f"| {where} | {_cell(c.what)} | {_cell(outcome)} | {_cell(c.note)} |")
    for case in GOLDEN_CASES:
        out.append(f"| `golden/load/{case}_in.csv` | {_cell(GOLDEN_WHAT[case])} | {_cell(_golden_outcome(case))} | "
                   f"exact output pinned by tests/steps/test_load.py |")
    out += [
        "",
        "## NBS snapshots (`cvas.steps.user_base`, task AggregateUserBase)",
        "",
        "A malformed snapshot fails as a whole (nothing of it is counted). More cases (a `893.0` cpc, text and `nan` "
        "counts, `|` or a line break in a name, the encoding decided once per file) are in tests/steps/test_userbase.py.",
        "",
        "| file | malformation | outcome | note |",
        "|---|---|---|---|",
    ]
    for c in SNAP_CASES:
        if c.gap:
            outcome, note = "**open gap**: should fail with SnapshotFormatError", c.gap
        elif c.error:
            outcome, note = f"fails: {_code(c.error)}", c.note
        else:
            outcome, note = f"aggregated: {c.groups} group(s), user base {c.total}", c.note
        out.append(f"| `corpus/user_base/{c.file}` | {_cell(c.what)} | {_cell(outcome)} | {_cell(note)} |")
    out += [
        "",
        "## Excel CPC master (`cvas.steps.master`, task MasterCpc)",
        "",
        "Workbooks built by the test with openpyxl; read, written as MASTERCPC.csv and read back.",
        "",
        "| case | malformation | outcome | note |",
        "|---|---|---|---|",
    ]
    for c in MASTER_CASES:
        if c.error:
            outcome = f"fails: {_code(c.error)}"
        else:
            outcome = f"MASTERCPC.csv with CPCs {list(c.cpcs)}" + (f"; logged: {_code(c.logged)}" if c.logged else "")
        out.append(f"| `{c.name}` | {_cell(c.what)} | {_cell(outcome)} | {_cell(c.note)} |")
    out += [
        "",
        "## Exclusion list (`cvas.steps.exclusions`, task DailyCounters)",
        "",
        "| file | malformation | outcome | note |",
        "|---|---|---|---|",
    ]
    for c in EXCL_CASES:
        outcome = (f"fails: {_code(c.error)}" if c.error
                   else f"{len(c.msisdn)} msisdn, {len(c.tmuserid)} tmuserid excluded")
        out.append(f"| `corpus/exclusions/{c.file}` | {_cell(c.what)} | {_cell(outcome)} | {_cell(c.note)} |")
    out += [
        "",
        "## Through the command line",
        "",
        "`python -m tasks.cli backfill --start 2026-02-10 --end 2026-02-13` over legacy drops (`source = directory`, "
        "`max_reject_ratio = 0.5`) holding the faults below exits **30** (`[retcode] task_failed`). Stderr carries "
        "each message (after luigi's report of the failed task); every other task of the range runs, and the good "
        "files and rows are published.",
        "",
        "| fault | stderr contains |",
        "|---|---|",
    ]
    for c in CLI_CASES:
        shown = _code(c.stderr) if c.stderr else "nothing: the row is in `rejects/act/2026-02-10.csv`, line 4"
        out.append(f"| {_cell(c.what)} | {_cell(shown)} |")
    out += [
        "",
        "## Around the files: concurrency, stray files, tampering, re-deliveries, leftovers",
        "",
        "Faults of the data root rather than of one input file, each driven by the test named (in `tests/`).",
        "",
        "| fault | outcome | test |",
        "|---|---|---|",
    ]
    for c in INTEGRITY_CASES:
        out.append(f"| {_cell(c.fault)} | {_cell(c.outcome)} | `{c.test}` |")
    out += [
        "",
        "## What you may touch under the data root",
        "",
        "Read anything, with any reader. Do not edit files under the data root in place: copy an output out "
        "first. A file edited in place is *damage*: cvas finds it by a stat (size and mtime) against the file's "
        "sidecar before any run reads or links it, `cvas status` shows it as `damaged`, and the next run rebuilds "
        "it from its inputs. Files of your own in a dataset folder are never read by cvas; in a view folder they "
        "are moved to `_set_aside/<folder>/<time>/` (with a warning) when cvas replaces or prunes the folder. "
        "What happens when somebody does anyway:",
        "",
        "| accident | outcome | test |",
        "|---|---|---|",
    ]
    for c in TRUST_CASES:
        out.append(f"| {_cell(c.fault)} | {_cell(c.outcome)} | `{c.test}` |")
    out += [
        "",
        "## Spreadsheet formulas in text cells (decision D18)",
        "",
        "Every CSV cvas writes (`Counters/Counters_Service.csv`, `reference/MASTERCPC.csv`, the three "
        "`User_Base/user_base_by_*.csv`, `rejects/<kind>/<date>.csv`, the analyst commands' `--csv` files) writes a "
        "text cell that starts with `=`, `+`, `-`, `@`, a tab or a carriage return with a single quote in front, as "
        "OWASP's CSV-injection guidance says: Excel and LibreOffice show it as text instead of evaluating it. RFC "
        "4180 quoting stays (D10). Numbers are never text cells: a negative amount is written as it is. A text that "
        "already starts with quotes before such a character gets one more, so cvas reads its own files back to the "
        "exact names (MASTERCPC.csv for the exports, the report and the analyst commands; the exports for `cvas "
        "revenue` and `cvas check-userbase`). One function decides it: `cvas.core.csvcells.safe_cell`. The landing "
        "copies (`raw/`, `user_base/snapshots/`) keep the sources' bytes as delivered (the replayable record).",
        "",
        "| input | written as | test |",
        "|---|---|---|",
    ]
    for c in CELL_CASES:
        out.append(f"| {_cell(c.fault)} | {_cell(c.outcome)} | `{c.test}` |")
    out.append("")
    return "\n".join(out)


# ========================================================================================
# integrity: concurrency, stray files, tampering, re-deliveries, leftovers (issue 11)


@dataclass(frozen=True)
class Integrity:
    """A fault around the files rather than inside one, with the outcome `test` (in tests/) asserts."""

    fault: str
    outcome: str
    test: str


INTEGRITY_CASES = [
    Integrity("two `cvas daily`/`cvas backfill` processes at once on one data root (local scheduler and luigid)",
              "the outputs of a sequential build, byte for byte (audit timestamps aside); each whole-dataset writer "
              "holds its lock and records the per-day files it read (listed before reading); a task another run "
              "finished meanwhile is skipped; products are built by one run at a time",
              "tasks/test_faults.py::test_concurrent_daily_and_backfill_runs_give_the_outputs_of_a_sequential_build"),
    Integrity("a day published while another run exports the counters",
              "each day exported once; a day file replaced after the export listed it leaves the export stale "
              "(rebuilt by the next run), never recorded as read",
              "ops/test_integrity.py::test_concurrent_counter_exports_count_every_day_once_and_record_exactly_what_they_read"),
    Integrity("`2025-11-03 - Copy.parquet`, `junk.parquet`, `2025-11-3.parquet` in `daily_counters/`, a "
              "`Parquet_Data/transactions/<kind>/year_month=…/` folder or `user_base/daily/`",
              "never read (readers read exactly the files the layout names); `cvas status` lists them under "
              "\"stray files\", `cvas verify` reports each: `not a file the layout names: cvas never reads it (move it "
              "out of the dataset folder)`",
              "ops/test_integrity.py::test_status_and_verify_report_every_file_the_layout_does_not_name"),
    Integrity("a partition replaced outside cvas by a valid file of half the rows",
              "`damaged` (decision D14: its bytes differ from the hash its sidecar recorded), never a reload: the plan "
              "rebuilds it from its landing copy, then its counters (`stale: reno damaged (rebuilt first)`); "
              "`cvas verify` reports it",
              "ops/test_integrity.py::test_a_partition_replaced_outside_cvas_is_damage_and_is_rebuilt_from_its_landing_copy"),
    Integrity("a sidecar truncated to invalid JSON",
              "its output is stale (decision D13) with `unreadable provenance sidecar _meta/<path>.json`, logged with "
              "the file; verify reports it, the next backfill rebuilds the output and its sidecar",
              "ops/test_integrity.py::test_a_truncated_sidecar_makes_its_output_stale_names_the_file_and_is_rebuilt"),
    Integrity("a 0-byte or wrong-header re-delivery after `cvas invalidate --dataset raw`",
              "DeliveryError naming the landing copy (the loader's header message, or a record count other than the "
              "source's); the good landing copy is kept (decision D17) and stays marked, so the next backfill fetches "
              "again once the drop is fixed",
              "ops/test_integrity.py::test_a_bad_redelivery_keeps_the_landing_copy_and_the_next_backfill_fetches_again"),
    Integrity("an input taken away by another run (or `cvas invalidate`) after this run planned its work",
              "`<task> did not run: its input(s) <task> were complete when this run planned its work and are not any "
              "more. Another run on the same data root is rebuilding them …` instead of luigi's \"Unfulfilled "
              "dependency at run time\"",
              "ops/test_integrity.py::test_an_input_taken_away_by_another_run_fails_with_a_clear_message"),
    Integrity("`.staging/` leftovers of killed runs (one held msisdn values)",
              "removed at the start of each build when older than the oldest running build, logged as "
              "`staging: removed N leftover(s) of ended runs, older than the oldest running build (started …)`; "
              "what a running build may own is kept",
              "ops/test_integrity.py::test_staging_leftovers_older_than_the_oldest_running_build_are_cleaned"),
]


# what a user may touch under the data root: the incremental view under real accidents (issue 19)
TRUST_CASES = [
    Integrity("a part of `Parquet_Data/aggregated/subscriptions.parquet/` rewritten in place (`pandas.to_parquet`, "
              "`pyarrow.parquet.write_table` to the same path) or truncated",
              "the folder is a copy of the newest as-of view and shares no file with cvas's snapshots or state, so "
              "nothing else changes; `cvas status` shows `subscriptions_latest` `damaged`; the next run (or the "
              "rerun of the same day) copies the view again",
              "steps/test_view_trust.py::test_an_analyst_rewriting_the_newest_view_in_place_damages_no_snapshot_and_the_"
              "next_daily_repairs_it"),
    Integrity("a part of an as-of view (`subscriptions/as_of=D/…`) truncated in place",
              "the snapshots share unchanged parts by hard link, so every snapshot holding the file is `damaged` by "
              "a stat against its own sidecar; the next daily writes that part again from the state, never links "
              "it forward; `cvas verify` reports every damaged snapshot, marks it and names one backfill whose "
              "range covers them all; after it verify is clean",
              "steps/test_view_trust.py::test_a_shared_snapshot_part_truncated_in_place_is_never_linked_forward_and_one_"
              "backfill_repairs_every_snapshot"),
    Integrity("a part of a state (`subscription_state/D.parquet/…`) edited in place with the same row count",
              "`damaged`; never folded from: the next view is folded from an older good state or built from every "
              "transaction file, and equals the full build",
              "steps/test_view_trust.py::test_a_state_part_edited_in_place_with_the_same_rows_is_never_folded_from"),
    Integrity("a run killed after the as-of view is published and before the newest copy is replaced, or before "
              "the state's sidecar",
              "the newest copy is `stale` (it is not exactly the newest as-of view) or the view is (its state has "
              "no sidecar): `cvas plan` lists it, the rerun rebuilds it, verify compares the copy with the newest "
              "as-of view",
              "steps/test_view_trust.py::test_a_daily_killed_between_the_view_and_the_newest_copy_is_repaired_by_the_"
              "rerun"),
    Integrity("a day re-delivered (`cvas invalidate --dataset raw`, then `cvas backfill --start D --end D`)",
              "every as-of view on or after D is stale; the backfill refreshes the view and report of D and of the "
              "newest day, the exports and the newest copy",
              "steps/test_view_trust.py::test_a_redelivered_day_refreshes_the_newest_view_and_report_in_one_backfill"),
    Integrity("a late day built alone by `cvas daily --date D`",
              "the later views were refused while it was missing; its run refreshes the newest view and report",
              "steps/test_view_trust.py::test_a_late_day_built_alone_refreshes_the_newest_view_and_report"),
    Integrity("a day missing at the source (never loaded, or its load failed) before the day being built",
              "the day's own partitions, counters and user base are published; its view and report are not: the "
              "run fails with `the subscription view as of D needs every day up to it: <day> has no act, … "
              "transactions loaded …` and the backfill that builds the missing day",
              "steps/test_view_trust.py::test_a_daily_after_a_day_missing_at_the_source_fails_naming_it"),
    Integrity("a file of your own in a view folder (a copy of a part in `Parquet_Data/aggregated/"
              "subscriptions.parquet/`, a file in an as-of folder)",
              "never read by cvas (`cvas ltv`, `cvas query` and every build read the parts the layout names); "
              "`cvas status` and `cvas verify` list it; when cvas replaces or prunes the folder it is moved to "
              "`_set_aside/` and a warning names it. Other readers of the folder read it until then: keep your "
              "files elsewhere",
              "steps/test_view_trust.py::test_strays_in_view_folders_are_listed_never_read_and_set_aside_when_the_folder_"
              "is_replaced"),
]


_CELLS_TEST = "core/test_csv_cells.py::test_formula_like_names_are_written_as_text_and_read_back_intact"
CELL_CASES = [
    Integrity("master service name `=HYPERLINK(\"http://x\",\"y\")`",
              "`\"'=HYPERLINK(\"\"http://x\"\",\"\"y\"\")\"` in MASTERCPC.csv and Counters_Service.csv; `cvas "
              "revenue --service '=HYPERLINK(…)'` finds it", _CELLS_TEST),
    Integrity("master service name `+cmd|' /C calc'!A0`", "`'+cmd|' /C calc'!A0`", _CELLS_TEST),
    Integrity("master TME category `@SUM(1+1)*cmd`", "`'@SUM(1+1)*cmd`", _CELLS_TEST),
    Integrity("NBS service name `=1+2`, category `-2+3 news`",
              "`'=1+2|'-2+3 news` in user_base_by_service.csv (and the category in user_base_by_category.csv)",
              _CELLS_TEST),
    Integrity("a rejected transaction line starting `=1+1`", "its record `'=1+1,…` in the rejects file",
              "core/test_csv_cells.py::test_a_rejected_record_starting_with_a_formula_is_neutralised"),
]


def test_every_integrity_case_names_a_test_that_exists():
    import importlib

    for case in INTEGRITY_CASES + TRUST_CASES + CELL_CASES:
        module, _, name = case.test.partition("::")
        assert callable(getattr(importlib.import_module("tests." + module[:-3].replace("/", ".")), name, None)), case.test


def test_doc_lists_every_case_and_is_current():
    text = render_doc()
    if UPDATE:
        DOC.parent.mkdir(parents=True, exist_ok=True)
        DOC.write_text(text, encoding="utf-8")
    assert DOC.exists(), "run with CVAS_UPDATE_DOCS=1 to write docs/bad-input.md"
    assert DOC.read_text(encoding="utf-8") == text, "docs/bad-input.md is stale: CVAS_UPDATE_DOCS=1 rewrites it"
    cases = len(TX_CASES) + len(GOLDEN_CASES) + len(SNAP_CASES) + len(MASTER_CASES) + len(EXCL_CASES)
    assert cases >= 30
