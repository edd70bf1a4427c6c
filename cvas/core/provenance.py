"""Provenance sidecars: what an output was built from, so a changed input marks it stale."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
from pathlib import Path
from typing import Any

from cvas import __version__
from cvas.core.layout import Layout, parts, sidecar
from cvas.core.logs import run_id as current_run_id
from cvas.core.publish import staged_file, write_text_atomic
from cvas.core.timing import phase

log = logging.getLogger(__name__)

_CHUNK = 1 << 20


def file_hash(path: Path) -> str:
    """sha256 of a file's bytes, as `sha256:<hex>`; of a folder of parts, the hash of its parts'
    names and hashes (parts_hash; a stray file beside the parts is not part of the output)."""
    if Path(path).is_dir():
        return parts_hash({p.name: file_hash(p) for p in parts(Path(path)).values()})
    digest = hashlib.sha256()
    with phase("sidecars and hashing"), open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
    return "sha256:" + digest.hexdigest()


def parts_damage(recorded: dict[str, Any] | None, now: dict[str, list[int]]) -> str:
    """Why the parts of a folder output are not the ones its sidecar recorded ('' when they are),
    from their [size, mtime_ns] (`layout.part_stats`): a part rewritten in place, truncated,
    replaced, removed or added since it was published. A part is shared by hard link between
    the snapshots of one folder output, so this finds damage in every snapshot holding it."""
    recorded = recorded if isinstance(recorded, dict) else {}
    problems = [f"{name}.parquet missing" for name in sorted(set(recorded) - set(now))]
    problems += [f"{name}.parquet not published by cvas" for name in sorted(set(now) - set(recorded))]
    problems += [f"{name}.parquet changed since it was published" for name in sorted(set(now) & set(recorded))
                 if not isinstance(recorded[name], dict)
                 or [recorded[name].get("size"), recorded[name].get("mtime_ns")] != now[name]]
    return "; ".join(problems)


def parts_hash(hashes: dict[str, str]) -> str:
    """The hash of a directory output from its parts' {name: hash}: a part carried over from an
    earlier build keeps its recorded hash, so only rewritten parts are read."""
    lines = "".join(f"{name}:{value}\n" for name, value in sorted(hashes.items()))
    return "sha256:" + hashlib.sha256(lines.encode()).hexdigest()


def fingerprint(path: Path) -> dict[str, Any]:
    """Size and content hash of an input file; a missing file is recorded as such."""
    path = Path(path)
    try:
        st = path.stat()
    except FileNotFoundError:
        return {"missing": True}
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "hash": file_hash(path)}


def fingerprints(inputs: dict[str, Path]) -> dict[str, dict[str, Any]]:
    """The fingerprints of `inputs`, taken *before* a step reads them and recorded as they are:
    a file replaced while the step ran then shows as changed (stale), never as read."""
    return {name: fingerprint(path) for name, path in sorted(inputs.items())}


def same_file(recorded: dict[str, Any] | None, path: Path) -> bool:
    """Whether `path` still has the recorded content: size+mtime first, the hash only if they moved."""
    try:
        st = Path(path).stat()
    except FileNotFoundError:
        return same_stat(recorded, path, None)
    return same_stat(recorded, path, [st.st_size, st.st_mtime_ns])


def same_stat(recorded: dict[str, Any] | None, path: Path, now: list[int] | None) -> bool:
    """`same_file` given the file's current [size, mtime_ns] (None when absent), e.g. from a
    directory scan: equal size and mtime are the same content; a moved mtime is decided by the hash."""
    if recorded is None:
        return False
    if now is None:
        return bool(recorded.get("missing"))
    if recorded.get("missing") or now[0] != recorded.get("size"):
        return False
    if now[1] == recorded.get("mtime_ns"):
        return True
    return file_hash(path) == recorded.get("hash")


@phase("sidecars and hashing")
def record(layout: Layout, output: Path, *, inputs: dict[str, Path | dict[str, Any]], params: dict[str, Any],
           rows: int | None, run_id: str | None = None, extra: dict[str, Any] | None = None,
           output_hash: str | None = None) -> dict[str, Any]:
    """Write the sidecar of `output` (call it just after publishing `output`; inside
    `published_together`, its hash is of the queued file that becomes `output`).

    `inputs` are paths or, better, the `fingerprints` taken before the step read them (a path
    is fingerprinted now, which is right only when nothing can have replaced it meanwhile)."""
    built = staged_file(output)
    meta = {
        "output": str(Path(output).resolve().relative_to(layout.root.resolve())),
        "output_hash": output_hash or (file_hash(built) if built.exists() else None),
        "inputs": {name: p if isinstance(p, dict) else fingerprint(p) for name, p in sorted(inputs.items())},
        "params": params,
        "rows": rows,
        "code_version": __version__,
        "run_id": run_id or current_run_id(),
        "created": dt.datetime.now().isoformat(timespec="seconds"),
    }
    if extra:
        meta.update(extra)
    write_text_atomic(layout.staging, sidecar(layout, output), json.dumps(meta, indent=1, sort_keys=True, default=str))
    return meta


def read(layout: Layout, output: Path) -> dict[str, Any] | None:
    """The sidecar of `output`, or None when it has none or it is unreadable (decision D13: stale either way)."""
    path = sidecar(layout, output)
    meta = read_json(path)
    if meta is None and path.exists():
        log.warning("%s: unreadable provenance sidecar: its output counts as stale and is rebuilt", path)
    return meta


def read_json(path: Path) -> dict[str, Any] | None:
    """The JSON object in `path` (a sidecar, a quality report), or None when the file is
    missing, unreadable or holds something else."""
    try:
        found = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return found if isinstance(found, dict) else None


def sidecar_problem(layout: Layout, output: Path) -> str | None:
    """Why the sidecar of `output` gives no provenance ('no provenance sidecar', or 'unreadable
    provenance sidecar <path>'), None when it is readable."""
    path = sidecar(layout, output)
    if not path.exists():
        return "no provenance sidecar"
    return None if read_json(path) is not None else f"unreadable provenance sidecar {path.relative_to(layout.root)}"
