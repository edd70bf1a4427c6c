"""Helpers for tests that run the `cvas` command in subprocesses and compare what runs publish."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

REPO = Path(__file__).resolve().parents[1]

# Bookkeeping folders under a data root: not datasets (sidecars are compared separately).
BOOKKEEPING = frozenset({"_meta", "_invalid", "_failed", ".staging", ".locks", ".cache", "logs"})
# Columns that record when a row was computed (audit timestamps, not data).
AUDIT_COLUMNS = ("last_updated",)
# Text that records when a file was rendered (the HTML report's footer).
AUDIT_TEXT = re.compile(rb"generated \d{4}-\d{2}-\d{2} \d{2}:\d{2}(?::\d{2})?")
# Sidecar keys that record when or in which run something happened, or file mtimes.
AUDIT_KEYS = frozenset({"created", "run_id", "mtime_ns", "transactions"})

RETCODES = """[retcode]
already_running = 10
missing_data = 20
not_run = 25
task_failed = 30
scheduling_error = 35
unhandled_exception = 40
"""


def write_cfg(path: Path, data_root: Path, *, source: str = "simulated", nova=None, log_dir: Path | None = None,
              workers: int = 1, extra: str = "", core: dict | None = None, **cvas_options) -> Path:
    """A complete luigi.cfg for one run: its own data root and log folder (`core`: more [core] keys)."""
    lines = ["[core]", "autoload_range = false", *(f"{k} = {v}" for k, v in (core or {}).items()), RETCODES, "[cvas]", f"data_root = {data_root}", f"source = {source}",
             f"workers = {workers}", f"log_dir = {log_dir or data_root.parent / 'logs'}"]
    if nova is not None:
        lines += [f"master_xlsx = {nova.master_xlsx}", f"exclusions = {nova.exclusions}"]
    lines += [f"{k} = {v}" for k, v in cvas_options.items()]
    if nova is not None:
        lines += ["[simulated_source]", f"database = {nova.database}"]
    path.write_text("\n".join(lines) + "\n" + extra)
    return path


def copy_nova(nova, folder: Path) -> Path:
    """A copy of a simulated Nova's database, Excel master and exclusion list in `folder` (made)."""
    folder.mkdir(parents=True, exist_ok=True)
    for src in (nova.database, nova.master_xlsx, nova.exclusions):
        (folder / Path(src).name).write_bytes(Path(src).read_bytes())
    return folder


def cvas_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "tasks.cli", *args]


def env_for(cfg: Path) -> dict[str, str]:
    return dict(os.environ, LUIGI_CONFIG_PATH=str(cfg))


def run_cvas(cfg: Path, *args: str, timeout: float = 180, **kwargs) -> subprocess.CompletedProcess:
    """Run `python -m tasks.cli <args>` with `cfg`; returns the completed process (text output)."""
    return subprocess.run(cvas_cmd(*args), cwd=REPO, env=env_for(cfg), capture_output=True, text=True,
                          timeout=timeout, **kwargs)


def dataset_files(root: Path) -> list[Path]:
    """The files a reader of the dataset roots can see, sorted; bookkeeping directories are
    not entered. Safe while a run writes: a directory that vanishes during the walk (a
    staging directory, a retired partition) is skipped, not an error."""
    if not root.is_dir():
        return []
    out = []
    for top in sorted(root.iterdir()):
        if top.name in BOOKKEEPING:
            continue
        if top.is_file():
            out.append(top)
            continue
        for dirpath, _, filenames in os.walk(top):   # os.walk ignores directories it cannot list
            out.extend(Path(dirpath, name) for name in filenames)
    return sorted(out)


def published(root: Path) -> dict[str, Any]:
    """What a data root publishes, comparable across roots and runs.

    Parquet files compare by content without the audit columns (their bytes differ only by
    those); a Parquet file without audit columns also compares byte for byte; every other
    file compares byte for byte with the root's path replaced by `<root>` (quality reports
    and rejects name their source file) and, in HTML reports, the rendering time masked.
    """
    out: dict[str, Any] = {}
    root_bytes = str(root).encode()
    for path in dataset_files(root):
        rel = path.relative_to(root)
        if path.suffix == ".parquet":
            table = pq.ParquetFile(path).read()
            audit = [c for c in AUDIT_COLUMNS if c in table.column_names]
            if audit:
                out[str(rel)] = ("parquet", table.drop_columns(audit))
            else:
                out[str(rel)] = ("bytes", path.read_bytes())
        else:
            data = path.read_bytes().replace(root_bytes, b"<root>")
            if path.suffix == ".html":
                data = AUDIT_TEXT.sub(b"generated <time>", data)
            out[str(rel)] = ("bytes", data)
    return out


def differences(a: dict[str, Any], b: dict[str, Any]) -> list[str]:
    """Names of the outputs that differ between two `published` results (missing ones included)."""
    diff = sorted(set(a) ^ set(b))
    for key in sorted(set(a) & set(b)):
        (kind_a, va), (kind_b, vb) = a[key], b[key]
        same = kind_a == kind_b and (va.equals(vb) if kind_a == "parquet" else va == vb)
        if not same:
            diff.append(key)
    return diff


def _strip(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _strip(v) for k, v in value.items() if k not in AUDIT_KEYS}
    if isinstance(value, list):
        return [_strip(v) for v in value]
    return value


def sidecars(root: Path) -> dict[str, Any]:
    """Every provenance sidecar without its audit fields. Files holding audit columns have no
    comparable hash or size, so those are dropped where they appear (their own sidecar, and
    the per-day listing of the counter export). An export's own files are compared by size
    (their mtimes are audit too), and not the path its last build took (`mode`: appended day
    by day or rebuilt at once gives the same bytes)."""
    out = {}
    meta_root = root / "_meta"
    for path in sorted(meta_root.rglob("*.json")):
        rel = str(path.relative_to(meta_root))
        meta = _strip(json.loads(path.read_text()))
        daily = meta.get("daily")
        if isinstance(daily, dict):   # {day: [size, mtime_ns]} of the per-day files an export read
            meta["daily"] = {day: v[0] if isinstance(v, list) else v for day, v in daily.items()}
        own = meta.get("outputs")
        if isinstance(own, dict):   # {file name: [size, mtime_ns]} of an export's published files
            meta["outputs"] = {name: v[0] if isinstance(v, list) else v for name, v in own.items()}
        meta.pop("mode", None)
        if rel.startswith(("daily_counters/", "Counters/Counters_CPC", "reports/")):
            meta.pop("output_hash", None)
            if isinstance(daily, dict):
                meta["daily"] = sorted(daily)
            if isinstance(own, dict):
                meta["outputs"] = sorted(own)
        for name, fp in (meta.get("inputs") or {}).items():
            if name.startswith("counters") and isinstance(fp, dict):   # per-day counter files (last_updated)
                fp.pop("hash", None)
                fp.pop("size", None)
        out[rel] = meta
    return out


def visible_files_are_whole(root: Path) -> list[str]:
    """Problems with what a reader globbing the dataset roots would see: temporary names and
    Parquet files that do not open."""
    problems = []
    for path in dataset_files(root):
        rel = path.relative_to(root)
        if path.name.startswith(".") or "tmp" in path.name:
            problems.append(f"{rel}: temporary name")
        if path.suffix == ".parquet":
            try:
                pq.read_metadata(path)
            except Exception as exc:  # noqa: BLE001 - any failure to open is the finding
                problems.append(f"{rel}: {type(exc).__name__}")
    return problems
