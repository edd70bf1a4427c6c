"""Text cells of every CSV cvas writes, made safe for spreadsheets (decision D18, OWASP CSV injection)."""

from __future__ import annotations

import re
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

# A text cell a spreadsheet would read as a formula starts with one of = + - @ tab CR
# (OWASP "CSV Injection"). Such a cell is written with a single quote in front, which
# spreadsheets show as text. Cells already starting with quotes before such a character
# get one more, so the rule is undone exactly by `plain_cell` (a name that really starts
# with `'=` reads back as `'=`). Only text is touched: numbers are never text cells.
_UNSAFE = r"^('*[=+\-@\t\r])"
_UNSAFE_RE = re.compile(_UNSAFE)
_QUOTED_RE = re.compile(r"^'('*[=+\-@\t\r])")


def safe_cell(value: Any) -> Any:
    """`value` as written in a CSV cell: a str a spreadsheet would evaluate gets a leading `'`;
    anything else (numbers, dates, None) is returned as it is."""
    if isinstance(value, str) and _UNSAFE_RE.match(value):
        return "'" + value
    return value


def plain_cell(text: str) -> str:
    """The value `safe_cell` was given, from the text it wrote (for cvas reading its own CSVs)."""
    return _QUOTED_RE.sub(r"\1", text) if text else text


def safe_text_columns(table: pa.Table) -> pa.Table:
    """`table` with `safe_cell` applied to every string column (other columns untouched)."""
    for i, field in enumerate(table.schema):
        if pa.types.is_string(field.type) or pa.types.is_large_string(field.type):
            column = pc.replace_substring_regex(table.column(i), _UNSAFE, r"'\1", max_replacements=1)
            table = table.set_column(i, field, column)
    return table
