"""Quality reports of loads: one JSON file per (kind, day) beside its partition, written and read here."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from cvas.core.provenance import read_json
from cvas.core.publish import write_text_atomic


def write_quality(staging_root: Path, path: Path, report: dict[str, Any]) -> None:
    """Publish a load's quality report (see `cvas.steps.load.parse_extract` for its fields)."""
    write_text_atomic(staging_root, Path(path), json.dumps(report, indent=2) + "\n")


def read_quality(path: Path) -> dict[str, Any] | None:
    """The quality report at `path`, or None when it is missing, unreadable or not a JSON object."""
    return read_json(path)
