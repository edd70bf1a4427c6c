"""The counter exclusion list `Users_No_Limits.csv` (legacy rule L9.2, decision D5), both formats."""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field
from pathlib import Path

from cvas.core.csvlines import CsvLineError, physical_lines, records

log = logging.getLogger(__name__)


class ExclusionListError(ValueError):
    """Raised when the exclusion list is malformed; names the file, line and reason."""


@dataclass(frozen=True)
class Exclusions:
    """Users whose transactions the counters ignore; values are compared as strings."""

    msisdn: frozenset[str] = field(default_factory=frozenset)
    tmuserid: frozenset[str] = field(default_factory=frozenset)
    source: str = "<none>"

    def fingerprint(self) -> str:
        """A content hash independent of row order and format, for staleness checks."""
        digest = hashlib.sha256()
        for tag, values in (("m", self.msisdn), ("t", self.tmuserid)):
            for value in sorted(values):
                digest.update(f"{tag}:{value}\n".encode())
        return "sha256:" + digest.hexdigest()


def _clean(value: str) -> str:
    return value.strip().strip('"').strip()


def load_exclusions(path: Path | None) -> Exclusions:
    """Read the list: headered `msisdn,tmuserid` or the legacy headerless one-msisdn-per-line file.

    A missing or unset file excludes nothing (logged). Empty values are ignored; values stay
    strings (the legacy int parse of the headerless form broke every counter, legacy rule L-D13). The file
    must be UTF-8 (a BOM is allowed) and well-formed CSV (an unterminated quote is an error);
    errors name the physical line where the record starts, never a value.
    """
    if path is None or not Path(path).exists():
        log.warning("exclusion list %s not found: no user is excluded", path)
        return Exclusions()
    path = Path(path)
    data = path.read_bytes()
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[:exc.start].count(b"\n") + 1
        raise ExclusionListError(f"{path}: line {line}: bytes that are not UTF-8 (offset {exc.start}); "
                                 f"the exclusion list must be UTF-8") from None
    msisdns: set[str] = set()
    tmuserids: set[str] = set()
    # (physical line where the record starts, fields)
    try:
        rows = [(rec.start, rec.fields) for rec in records(physical_lines(text), strict=True)]
    except CsvLineError as exc:
        raise ExclusionListError(f"{path}: line {exc.start}: not valid CSV ({exc})") from None
    if not rows:
        return Exclusions(source=str(path))
    first = [_clean(c).lower() for c in rows[0][1]]
    headered = "msisdn" in first or "tmuserid" in first
    if headered:
        unknown = [c for c in first if c not in ("msisdn", "tmuserid")]
        if unknown:
            raise ExclusionListError(f"{path}: line 1: unknown column(s) {unknown}; expected msisdn,tmuserid")
        repeated = sorted({c for c in first if first.count(c) > 1})
        if repeated:
            raise ExclusionListError(f"{path}: line 1: column(s) {', '.join(repeated)} appear more than once")
        index = {name: first.index(name) for name in ("msisdn", "tmuserid") if name in first}
        body = rows[1:]
    else:
        index = {"msisdn": 0}
        body = rows
    width = len(first) if headered else 1
    for line, fields in body:
        if not fields or all(not f.strip() for f in fields):
            continue
        if len(fields) > width:
            raise ExclusionListError(f"{path}: line {line}: {len(fields)} fields, expected {width}")
        values = {name: _clean(fields[i]) if i < len(fields) else "" for name, i in index.items()}
        for name, value in values.items():
            if value and not value.isdigit():
                raise ExclusionListError(f"{path}: line {line}: {name} is not a number")
        if values.get("msisdn"):
            msisdns.add(values["msisdn"])
        if values.get("tmuserid"):
            tmuserids.add(values["tmuserid"])
    log.info("exclusion list %s: %d msisdn, %d tmuserid", path.name, len(msisdns), len(tmuserids))
    return Exclusions(frozenset(msisdns), frozenset(tmuserids), str(path))
