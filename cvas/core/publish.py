"""Atomic publication: write in a staging area outside every dataset root, validate, rename."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path


class PublishError(RuntimeError):
    """Raised when a staged output fails its check and is therefore not published."""


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


@contextlib.contextmanager
def staged(staging_root: Path, target: Path) -> Iterator[Path]:
    """Yield a temporary path for `target`; on clean exit rename it into place atomically.

    The temporary file lives under `staging_root` (same filesystem, outside every dataset
    root), so no reader that globs a dataset ever sees it. On error it is removed and the
    previous `target`, if any, is untouched. A forced rerun therefore replaces a file in
    one rename: readers see the old file or the new one, never neither.
    """
    staging_root.mkdir(parents=True, exist_ok=True)
    tmp_dir = Path(tempfile.mkdtemp(prefix=f"{target.stem}.", dir=staging_root))
    tmp = tmp_dir / target.name
    try:
        try:
            yield tmp
        except OSError as exc:  # out of space, file too large, permissions: name what was being written
            raise PublishError(f"{target}: could not be written ({exc.strerror or exc}); "
                               "the previous version, if any, is untouched") from exc
        if not tmp.exists():
            raise PublishError(f"nothing was written for {target}")
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(tmp, target)
        _fsync_dir(target.parent)
    finally:
        shutil.rmtree(tmp_dir, ignore_errors=True)


def write_text_atomic(staging_root: Path, target: Path, text: str) -> None:
    """Publish a small text file atomically."""
    with staged(staging_root, target) as tmp:
        tmp.write_text(text, encoding="utf-8")


def remove_published(target: Path) -> bool:
    """Remove a published file (invalidation). Returns whether it existed."""
    try:
        target.unlink()
        return True
    except FileNotFoundError:
        return False


def clean_staging(staging_root: Path, older_than_s: float = 6 * 3600) -> int:
    """Remove leftovers of crashed runs from the staging area; returns how many were removed."""
    import time

    removed = 0
    if not staging_root.exists():
        return 0
    cutoff = time.time() - older_than_s
    for entry in staging_root.iterdir():
        with contextlib.suppress(OSError):
            if entry.stat().st_mtime < cutoff:
                shutil.rmtree(entry, ignore_errors=True) if entry.is_dir() else entry.unlink()
                removed += 1
    return removed


def unique_run_id() -> str:
    return uuid.uuid4().hex[:12]
