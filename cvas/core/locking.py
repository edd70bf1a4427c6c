"""Advisory file locks: exclusive read-decide-publish steps that concurrent workers share, and
the registry of running builds."""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
import uuid
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def exclusive(path: Path) -> Iterator[None]:
    """Hold an exclusive flock on `path` (created if absent) for the duration of the block.

    Works between processes and threads on one host and on local filesystems; the lock is
    released when the block ends or the process dies.
    """
    with _flock(path, fcntl.LOCK_EX):
        yield


@contextlib.contextmanager
def shared(path: Path) -> Iterator[None]:
    """Hold a shared flock on `path` for the block: any number of holders, none while an
    `exclusive` holder has it."""
    with _flock(path, fcntl.LOCK_SH):
        yield


@contextlib.contextmanager
def _flock(path: Path, mode: int) -> Iterator[None]:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as fh:
        fcntl.flock(fh.fileno(), mode)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


@contextlib.contextmanager
def registered_run(runs_dir: Path) -> Iterator[float]:
    """Register this process as a running build for the duration of the block; yields its start
    time (epoch seconds).

    The registration is a file in `runs_dir` holding the start time, locked while the run
    lives: a crashed run's file is no longer locked, and `oldest_running` discards it.
    """
    runs_dir = Path(runs_dir)
    runs_dir.mkdir(parents=True, exist_ok=True)
    started = time.time()
    name = f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
    path = runs_dir / f"{name}.run"
    with open(runs_dir / f"{name}.new", "w") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        fh.write(f"{started!r}\n")
        fh.flush()
        os.replace(fh.name, path)     # appears already locked and written
        try:
            yield started
        finally:
            path.unlink(missing_ok=True)
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def oldest_running(runs_dir: Path) -> float | None:
    """The start time of the oldest build registered in `runs_dir` that is still running (None if
    none is); the files of crashed runs are removed on the way."""
    oldest = None
    try:
        entries = [p for p in Path(runs_dir).iterdir() if p.suffix == ".run"]
    except FileNotFoundError:
        return None
    for path in entries:
        try:
            fh = open(path, "r+")
        except FileNotFoundError:
            continue
        with fh:
            try:
                fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:        # held: that run is alive
                try:
                    started = float(fh.read().strip())
                except ValueError:
                    started = 0.0          # unreadable: assume the oldest possible
                oldest = started if oldest is None else min(oldest, started)
                continue
            path.unlink(missing_ok=True)   # not held: its run has ended without removing it
    return oldest
