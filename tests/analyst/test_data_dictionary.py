"""docs/data.md kept true: every file of a built data root is named there, and every table it
documents lists exactly the columns, in order and with the types, of the files it names."""

from __future__ import annotations

import pytest

import csv
import datetime as dt
import re
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from cvas.core.catalogue import DATASETS, DAY_KIND, NONE
from cvas.core.layout import Layout
from cvas.core.schemas import KINDS

pytestmark = pytest.mark.slow   # see pyproject: make test-fast leaves it out

DOC = Path(__file__).resolve().parents[2] / "docs" / "data.md"
HEADER = "| column | type | unit | meaning | legacy |"
PLACEHOLDERS = {"<date>": r"\d{4}-\d{2}-\d{2}", "YYYY-MM-DD": r"\d{4}-\d{2}-\d{2}", "YYYYMMDD": r"\d{8}",
                "YYYY-MM": r"\d{4}-\d{2}", "<kind>": "(?:" + "|".join(KINDS) + ")"}


@dataclass
class Section:
    """A documented output: the paths it names (with placeholders) and its columns, or none
    for the files the doc lists under "Other files"."""
    paths: list[str]
    columns: list[tuple[str, str]] = field(default_factory=list)

    def names(self, relative: str) -> bool:
        return any(_regex(p).fullmatch(relative) for p in self.paths)


def _regex(path: str) -> re.Pattern:
    parts = re.split("(" + "|".join(map(re.escape, PLACEHOLDERS)) + ")", path)
    text = "".join(PLACEHOLDERS.get(p, re.escape(p)) for p in parts)
    return re.compile(text + (".+" if path.endswith("/") else ""))


def sections() -> tuple[list[Section], Section]:
    """(the documented tables, the "Other files" entries) of docs/data.md."""
    tables: list[Section] = []
    other = Section([])
    current: Section | None = None
    in_other = False
    for line in DOC.read_text(encoding="utf-8").splitlines():
        if line.startswith("## "):
            in_other, current = line == "## Other files", None
        elif line.startswith("### "):
            current = Section(re.findall(r"`([^`]+)`", line))
            tables.append(current)
        elif in_other and line.startswith("- "):
            other.paths += re.findall(r"`([^`]+)`", line.split(": ", 1)[0])
        elif current is not None and line.startswith("| ") and line != HEADER:
            cells = [c.strip() for c in line.strip("|").split("|")]
            assert len(cells) == 5, f"docs/data.md: {line!r} is not a row of {HEADER}"
            current.columns.append((cells[0], cells[1]))
    return tables, other


def _doc_type(t: pa.DataType) -> str:
    if pa.types.is_list(t):
        return f"list<{_doc_type(t.value_type)}>"
    return {"large_string": "string", "string": "string", "int64": "int64", "double": "double", "bool": "bool",
            "date32[day]": "date", "timestamp[us]": "timestamp"}[str(t)]


_PARSE = {"string": str, "int64": int, "double": float, "date": dt.date.fromisoformat,
          "timestamp": dt.datetime.fromisoformat, "bool": {"t": True, "f": False}.__getitem__}


def _columns(path: Path) -> list[tuple[str, str]]:
    """(name, type) of the columns of a Parquet file, in the doc's type names."""
    return [(f.name, _doc_type(f.type)) for f in pq.read_schema(path)]


def _check_csv(path: Path, documented: list[tuple[str, str]]) -> list[str]:
    """The problems of a CSV against its documented columns: header, then every non-empty value
    must parse as its documented type."""
    with open(path, newline="", encoding="utf-8") as fh:
        rows = list(csv.reader(fh, delimiter="|" if path.parent.name == "User_Base" else ","))
    if [c for c, _ in documented] != rows[0]:
        return [f"{path}: header {rows[0]} is not {[c for c, _ in documented]}"]
    problems = []
    for number, row in enumerate(rows[1:], start=2):
        for value, (name, typ) in zip(row, documented):
            try:
                if value != "":
                    _PARSE[typ](value)
            except (ValueError, KeyError):
                problems.append(f"{path}: line {number}: {name} = {value!r} is not {typ}")
    return problems


def test_every_file_of_a_built_root_is_named_once_and_every_table_lists_exactly_its_columns(month_end_root):
    tables, other = sections()
    assert len(tables) >= 15 and all(t.columns for t in tables), "every ### section is a table"
    checked: dict[int, int] = {i: 0 for i in range(len(tables))}
    problems: list[str] = []
    for path in sorted(p for p in month_end_root.rglob("*") if p.is_file()):
        relative = str(path.relative_to(month_end_root))
        named = [i for i, t in enumerate(tables) if t.names(relative)]
        if not named:
            assert other.names(relative), f"{relative}: not named in docs/data.md"
            continue
        assert len(named) == 1 and not other.names(relative), f"{relative}: named more than once in docs/data.md"
        table = tables[named[0]]
        checked[named[0]] += 1
        if path.suffix == ".csv":
            problems += _check_csv(path, table.columns)
        elif _columns(path) != table.columns:
            problems.append(f"{relative}: columns {_columns(path)}\n  documented {table.columns}")
    assert not problems, "\n".join(problems[:20])
    assert [t.paths for i, t in enumerate(tables) if not checked[i]] == [], "documented, but no such file was built"


def test_every_output_the_catalogue_declares_is_in_the_dictionary(tmp_path):
    """Datasets a demo may not build (a switch off, a day not flagged) are named too."""
    tables, other = sections()
    lay = Layout(tmp_path)
    day = dt.date(2025, 11, 2)
    paths = [p for ds in DATASETS.values() for kind in (KINDS if ds.key == DAY_KIND else (None,))
             for p in ds.outputs(lay, None if ds.key == NONE else day, kind)]
    paths += [lay.subscriptions_latest, lay.quality("act", day), lay.rejects("act", day), lay.health("act", day)]
    for path in paths:
        relative = str(path.relative_to(tmp_path))
        # an output that is a folder (the view, its state) is named by its parts
        assert any(t.names(r) for t in tables + [other] for r in (relative, relative + "/open-0.parquet")), \
            f"{relative}: not in docs/data.md"


def test_the_dictionary_and_the_report_use_the_same_words():
    from cvas.analyst.report import category_map
    from cvas.analyst.report_data import KPI_DEFS

    text = DOC.read_text(encoding="utf-8")
    for target, sources in category_map():
        assert " and ".join(f"`{s}`" for s in sources) + f" as `{target}`" in text
    label = dict((key, lab) for key, lab, _ in KPI_DEFS)["refunds"]
    assert label == "Charges refunded" and f"the report's \"{label}\" card" in text
    assert "**Charges refunded.**" in text and "Σ `rfnd_cnt`" in text
