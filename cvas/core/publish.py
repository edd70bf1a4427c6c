"""Atomic publication: write in a staging area outside every dataset root, validate, rename."""

from __future__ import annotations

import contextlib
import os
import queue
import shutil
import tempfile
import threading
from concurrent.futures import ThreadPoolExecutor
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from cvas.core.timing import phase


class PublishError(RuntimeError):
    """Raised when a staged output fails its check and is therefore not published."""


def _fsync_dir(path: Path) -> None:
    with phase("fsync"), contextlib.suppress(OSError):
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
    one rename: readers see the old file or the new one, never neither. Inside
    `published_together`, the checked file is queued and renamed with the others on its exit.
    """
    batch = _together[-1] if _together else None
    if batch is not None:
        tmp_dir, tmp = None, batch.new_file(target)
    else:
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
        if batch is not None:
            batch.queue(tmp, target)
            return
        with phase("fsync"), open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(tmp, target)
        _fsync_dir(target.parent)
    finally:
        if tmp_dir is not None:
            shutil.rmtree(tmp_dir, ignore_errors=True)
        elif tmp not in batch.queued:
            tmp.unlink(missing_ok=True)


_SYNC_THREADS = 16


class _Together:
    """The files staged inside one `published_together`: those of the day being built (`queued`,
    in staging order), and a publisher thread that publishes the days handed to it, in order."""

    def __init__(self, staging_root: Path):
        staging_root.mkdir(parents=True, exist_ok=True)
        self.dir = Path(tempfile.mkdtemp(prefix="together.", dir=staging_root))
        self.queued: dict[Path, Path] = {}          # staged file -> target, in staging order
        self.latest: dict[Path, Path] = {}          # target -> its newest staged file
        self.folders: dict[Path, None] = {}         # folders published into (by the publisher)
        self.made = 0
        self.inbox: queue.Queue[list[tuple[Path, Path]] | None] = queue.Queue()
        self.failure: BaseException | None = None
        self.publisher = threading.Thread(target=self._run, name="cvas-publish", daemon=True)
        self.publisher.start()

    def new_file(self, target: Path) -> Path:
        """A new staged file for `target`, in the block's one folder (a folder a file costs an
        rmdir each, which is slow on a file system mounted with `discard`); it ends with the
        target's name, so writers that go by the suffix write the same format."""
        self.made += 1
        return self.dir / f"{self.made}.{target.name}"

    def queue(self, tmp: Path, target: Path) -> None:
        self.queued[tmp] = Path(target)
        self.latest[Path(target)] = tmp

    def publish(self) -> None:
        """Hand the queued files to the publisher thread (the next day's work goes on meanwhile)."""
        if self.queued:
            self.inbox.put(list(self.queued.items()))
            self.queued.clear()
            self.latest.clear()

    def close(self) -> None:
        """Publish what is still queued, wait for the publisher, sync each folder published into
        once; raises PublishError when some day could not be published."""
        self.publish()
        self.inbox.put(None)
        with phase("fsync"):
            self.publisher.join()
            for folder in self.folders:
                _fsync_dir(folder)
        if self.failure is not None:
            raise PublishError(f"publishing the staged files failed ({self.failure}); the days before it are "
                               "published, it and the days after it are not") from self.failure

    def _run(self) -> None:
        """The publisher: takes every day handed over so far, makes their files durable with
        concurrent fsyncs (they share the journal's commits), then renames them into place in
        staging order. After a failure nothing more is published (days stay in order)."""
        with ThreadPoolExecutor(_SYNC_THREADS) as pool:
            done = False
            while not done:
                groups = [self.inbox.get()]
                while not self.inbox.empty():
                    groups.append(self.inbox.get_nowait())
                done = groups[-1] is None
                files = [pair for group in groups if group for pair in group]
                if self.failure is not None or not files:
                    continue
                try:
                    list(pool.map(_fsync_file, [tmp for tmp, _ in files]))
                    for tmp, target in files:
                        if target.parent not in self.folders:
                            target.parent.mkdir(parents=True, exist_ok=True)
                            self.folders[target.parent] = None
                        os.replace(tmp, target)
                except BaseException as exc:  # noqa: BLE001 - raised in the building thread by close()
                    self.failure = exc


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def release_cache(path: Path) -> None:
    """Tell the kernel a file read for the last time need not stay in the page cache (its bytes
    are on disk: a landing copy is made durable before it is published). A backfill reads each
    landing copy once; without this a year's copies (1.5 GB) pile up in the cache, and on a
    virtual machine the fresh pages each new copy then takes cost more than the copy itself."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


_together: list[_Together] = []


@contextlib.contextmanager
def published_together(staging_root: Path) -> Iterator[None]:
    """A run of many days whose files are published a day at a time for the cost of one.

    Inside, every file published through `staged` (`publish_parquet`, `write_text_atomic`, ...)
    is written and checked as usual, then queued; `publish_queued` (which `each_day` calls
    after each day) hands the day's files to a publisher thread, which makes them durable
    with concurrent fsyncs (the days handed over meanwhile together) and renames them into
    place in the order they were staged, while the next day is built; on exit, an error
    included, what is still queued is published, the block waits for the publisher and syncs
    each folder published into once. Instead of, per file, a temporary folder, an fsync, a
    rename and an fsync of its folder, in the building thread. If the publisher fails (a disk
    error), the days from that one on are not published and the block raises PublishError.

    The guarantees kept: a file is renamed only once its bytes are on disk, so no crash ever
    shows a half-written file at a dataset path; a day's files appear in the order they were
    staged (report, partition, sidecar), each in one rename, and a run killed (SIGKILL) keeps
    every day published before the kill. What it relies on for a power loss before the
    block's end: a rename not yet made durable by its folder's sync may be lost, which leaves
    the previous version (or nothing) there as a crash just before the rename would, and the
    day is rebuilt because its output and its sidecar no longer agree; and the file system
    keeps one process's renames in order across a crash (ext4 and XFS journal them in order),
    so a partition never survives without the report staged before it. A file is at its
    target once the block has ended (a step reading it runs after the block); until its day
    is handed over, `staged_file` gives the bytes it will have. Not nested."""
    if _together:
        raise RuntimeError("published_together is not nested")
    batch = _Together(staging_root)
    _together.append(batch)
    try:
        yield
    finally:
        _together.pop()
        try:
            batch.close()
        finally:
            shutil.rmtree(batch.dir, ignore_errors=True)


def publish_queued() -> None:
    """Hand the files queued so far in the current `published_together` to its publisher (a day is
    done); nothing outside one."""
    if _together:
        _together[-1].publish()


def staged_file(target: Path) -> Path:
    """The file whose bytes `target` will have: its queued staged file inside `published_together`,
    else `target` itself."""
    batch = _together[-1] if _together else None
    return batch.latest.get(Path(target), Path(target)) if batch is not None else Path(target)


@contextlib.contextmanager
def staged_dir(staging_root: Path, target: Path) -> Iterator[Path]:
    """Yield a temporary directory for the directory `target`; on clean exit its files are
    synced and it takes `target`'s place atomically (`swap_into_place`). On error it is removed
    and the previous `target`, if any, is untouched."""
    staging_root.mkdir(parents=True, exist_ok=True)
    tmp_dir = Path(tempfile.mkdtemp(prefix=f"{target.stem}.", dir=staging_root))
    tmp = tmp_dir / target.name
    tmp.mkdir()
    try:
        try:
            yield tmp
        except OSError as exc:
            raise PublishError(f"{target}: could not be written ({exc.strerror or exc}); "
                               "the previous version, if any, is untouched") from exc
        for entry in tmp.iterdir():
            with phase("fsync"), open(entry, "rb") as fh:
                os.fsync(fh.fileno())
        _fsync_dir(tmp)
        swap_into_place(tmp, target)
    finally:
        shutil.rmtree(tmp_dir, ignore_errors=True)


_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


def _exchange(a: Path, b: Path) -> bool:
    """Atomically exchange two paths (Linux renameat2 RENAME_EXCHANGE); False where unsupported."""
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    done = renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE)
    return done == 0


def swap_into_place(staged_path: Path, target: Path) -> None:
    """Put the staged directory at `target`. A new target is one rename; an existing one (a
    directory, or the single file an older cvas published there) is exchanged with it in one
    atomic step where the system allows it (readers see the old or the new, never neither),
    else moved aside first. The old version ends up at `staged_path`, removed by the caller."""
    target.parent.mkdir(parents=True, exist_ok=True)
    if not os.path.lexists(target):
        os.rename(staged_path, target)
    elif not _exchange(staged_path, target):
        aside = staged_path.with_name(staged_path.name + ".old")
        os.rename(target, aside)
        os.rename(staged_path, target)
        os.rename(aside, staged_path)
    _fsync_dir(target.parent)
    if staged_path.exists() and not staged_path.is_dir():
        staged_path.unlink()


def write_text_atomic(staging_root: Path, target: Path, text: str) -> None:
    """Publish a small text file atomically."""
    with staged(staging_root, target) as tmp:
        tmp.write_text(text, encoding="utf-8")


def copy_and_append(tmp: Path, published: Path, header: bytes, body: bytes) -> None:
    """Fill the staged file `tmp` with the bytes of `published` followed by `body`: the lines of
    days after every day it holds, in a file ordered by day first, so the result is the file a
    rebuild writes. Reads nothing of the past but its first line, which must be `header` (a file
    of another format is refused: delete it to rebuild)."""
    with open(published, "rb") as fh:
        first = fh.readline()
    if first != header:
        raise PublishError(f"{published}: its first line is not the header {header.decode(errors='replace')!r}; "
                           "delete it to rebuild it from every per-day file")
    shutil.copyfile(published, tmp)
    with open(tmp, "ab") as fh:
        fh.write(body)
    if tmp.stat().st_size != published.stat().st_size + len(body):
        raise PublishError(f"{published}: the staged copy with the new lines has an unexpected size")


def publish_parquet(staging_root: Path, target: Path, table: pa.Table, schema: pa.Schema | None = None,
                    use_dictionary: bool | list[str] = True) -> None:
    """Publish `table` as one Parquet file (zstd, column statistics) at `target`, atomically.

    With `schema`, the table must have exactly that schema. The staged file is read back
    before the rename: its row count and schema must be the table's, else PublishError and
    the previous `target`, if any, stays. `use_dictionary` as in `pyarrow.parquet.write_table`.
    """
    with staged(staging_root, target) as tmp:
        write_parquet(tmp, target, table, schema, use_dictionary)


def write_parquet(tmp: Path, target: Path, table: pa.Table, schema: pa.Schema | None = None,
                  use_dictionary: bool | list[str] = True) -> None:
    """Write and check the staged file `tmp` of `target` as `publish_parquet` does; for a file
    published with others (each `staged`, all written and checked before any is renamed)."""
    expected = table.schema if schema is None else schema
    if not table.schema.equals(expected):
        raise PublishError(f"{target}: table schema {table.schema} is not {schema}")
    pq.write_table(table, tmp, compression="zstd", write_statistics=True, use_dictionary=use_dictionary)
    meta = pq.read_metadata(tmp)
    written = pq.read_schema(tmp).remove_metadata()
    if meta.num_rows != table.num_rows or not written.equals(expected):
        raise PublishError(f"{target}: staged file has {meta.num_rows} rows (expected {table.num_rows}) "
                           f"and schema {written}")


def clean_staging(staging_root: Path, before: float) -> list[str]:
    """Remove the entries of the staging area last modified before `before` (epoch seconds:
    the start of the oldest running build, so no running build can own them): leftovers of
    crashed runs, which may hold personal data. Returns their names."""
    removed: list[str] = []
    try:
        entries = list(staging_root.iterdir())
    except FileNotFoundError:
        return removed
    for entry in entries:
        with contextlib.suppress(OSError):
            if entry.lstat().st_mtime < before:
                shutil.rmtree(entry) if entry.is_dir() and not entry.is_symlink() else entry.unlink()
                removed.append(entry.name)
    return sorted(removed)
