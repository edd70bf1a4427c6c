"""docs/decisions.md is where every cited decision, principle and legacy rule is written down: each
one the repository cites exists there, and no file cites a document outside the repository."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DECISIONS = REPO / "docs" / "decisions.md"

# The folders and files whose text may cite an entry (generated data and corpora hold none).
SCANNED = ("cvas", "tasks", "tests", "bench", "docs", "scripts", "Makefile", "luigi.cfg", "pyproject.toml",
           "README.md")
SUFFIXES = {".py", ".sql", ".md", ".html", ".css", ".cfg", ".toml", ".sh", ""}
# README.md still cites the old names until its rewrite (issue 20); it is then checked like the rest.
NOT_YET: set = set()

_ID = {"decision": r"D\d{1,2}", "principle": r"P\d{1,2}", "legacy rule": r"L-D\d{2}|L\d+(?:\.\d+)?"}
_ANY_ID = "|".join(f"(?:{p})" for p in _ID.values())
# `decision D14`, `decisions D2, D3 and D9`, `legacy rules L9.4/L9.5`, `principle P6`
CITATION = re.compile(rf"(?i:\b(decision|principle|legacy rule)s?)\s+((?:{_ANY_ID})(?!\d)"
                      rf"(?:(?:,\s*|/|\s+and\s+)(?:{_ANY_ID})(?!\d))*)")
# what the code cited before docs/decisions.md: the design notes' and legacy specification's sections
OUTSIDE = re.compile(r"\b(?:DESIGN|LEGACY)(?:\.md)?\s*(?:§|D-?\d|principle\b|\d)|§\s*\d|(?<![\w-])D-\d{2}\b")


def _files() -> list[Path]:
    found = []
    for name in SCANNED:
        path = REPO / name
        candidates = [path] if path.is_file() else sorted(path.rglob("*")) if path.is_dir() else []
        found += [p for p in candidates if p.is_file() and p.suffix in SUFFIXES and "__pycache__" not in p.parts
                  and p != Path(__file__).resolve()]
    return found


def _text(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        return None


def _anchors() -> set[str]:
    return set(re.findall(r'<a id="([^"]+)"></a>', DECISIONS.read_text(encoding="utf-8")))


def citations(text: str) -> list[tuple[str, str]]:
    """(kind, id) of every citation in `text`: kind is `decision`, `principle` or `legacy rule`."""
    found = []
    for match in CITATION.finditer(text):
        kind = match.group(1).lower()
        found += [(kind, ident) for ident in re.findall(rf"(?:{_ANY_ID})(?!\d)", match.group(2))]
    return found


def test_citations_are_parsed_as_written() -> None:
    text = ("(legacy rule L9.6, decisions D7/D10) and legacy rules L2.3, L2.4, L2.5. Decision D14: see "
            "principle P6, legacy rules L5, L-D10, L-D19 and decisions D2, D3 and D9.")
    assert citations(text) == [("legacy rule", "L9.6"), ("decision", "D7"), ("decision", "D10"),
                               ("legacy rule", "L2.3"), ("legacy rule", "L2.4"), ("legacy rule", "L2.5"),
                               ("decision", "D14"), ("principle", "P6"), ("legacy rule", "L5"),
                               ("legacy rule", "L-D10"), ("legacy rule", "L-D19"), ("decision", "D2"),
                               ("decision", "D3"), ("decision", "D9")]
    for old in ("LEGACY §5.4", "DESIGN D14", "DESIGN principle 6", "fixes D-24", "LEGACY.md §8.3"):
        assert OUTSIDE.search(old), old
    assert not OUTSIDE.search("legacy rule L-D24, decision D14, principle P6, legacy rule L8.3")


def test_every_cited_entry_exists_in_decisions_md() -> None:
    anchors = _anchors()
    cited: dict[tuple[str, str], list[str]] = {}
    for path in _files():
        text = _text(path)
        if text is None or path == DECISIONS:
            continue
        for kind, ident in citations(text):
            cited.setdefault((kind, ident), []).append(str(path.relative_to(REPO)))
    wrong_kind = {f"{kind} {ident}": where for (kind, ident), where in cited.items()
                  if not re.fullmatch(_ID[kind], ident)}
    assert not wrong_kind, f"an id cited as the wrong kind of entry: {wrong_kind}"
    missing = {f"{kind} {ident}": where for (kind, ident), where in cited.items() if ident.lower() not in anchors}
    assert not missing, f"cited but not in docs/decisions.md: {missing}"
    # the code does cite all three kinds (a pattern that found nothing would pass the check above)
    assert {kind for kind, _ in cited} == set(_ID)


def test_decisions_md_holds_every_decision_and_principle_once() -> None:
    text = DECISIONS.read_text(encoding="utf-8")
    ids = re.findall(r'<a id="([^"]+)"></a>', text)
    assert len(ids) == len(set(ids)), "an anchor is defined twice"
    assert {f"d{i}" for i in range(1, 20)} | {f"p{i}" for i in range(1, 16)} <= set(ids)
    for ident in ids:   # each anchor is followed by the heading of its entry, named as the code cites it
        assert re.search(rf'<a id="{re.escape(ident)}"></a>\n### {re.escape(ident.upper())}\. ', text), ident
    # its own links point at its own anchors
    assert not set(re.findall(r"\]\(#([^)]+)\)", text)) - set(ids) - {"decisions", "principles",
                                                                      "legacy-rules-we-keep"}


def test_no_file_cites_a_document_outside_the_repository() -> None:
    offenders = []
    for path in _files():
        text = _text(path)
        if text is None or path in NOT_YET:
            continue
        offenders += [f"{path.relative_to(REPO)}:{text.count(chr(10), 0, m.start()) + 1}: {m.group(0)!r}"
                      for m in OUTSIDE.finditer(text)]
    assert not offenders, "cite docs/decisions.md instead: " + "; ".join(offenders)
