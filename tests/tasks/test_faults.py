"""Faults: SIGKILL at random moments of a backfill, a write that runs out of space, corrupted published files.

Real `python -m tasks.cli` subprocesses over a tiny simulated Nova (2 days), each run with its
own luigi.cfg and data root. One uninterrupted backfill is the reference every other run is
compared with (`tests.cli_runs.published`: bytes, audit timestamps aside). After a kill the
operator's protocol is followed: rerun the backfill, then `cvas verify` (which marks what it
finds for rebuild) and, when it found something, one more backfill.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import random
import re
import resource
import shutil
import signal
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from cvas.core.layout import Layout, sidecar, tombstone
from cvas.core.locking import exclusive
from cvas.ops.status import invalidate
from cvas.ops.verify import verify_range
from tests.cli_runs import (
    REPO,
    cvas_cmd,
    dataset_files,
    differences,
    env_for,
    published,
    run_cvas,
    visible_files_are_whole,
    write_cfg,
)

pytestmark = pytest.mark.slow   # see pyproject: make test-fast leaves it out

START = dt.date(2025, 11, 3)
DAYS = 2
END = START + dt.timedelta(days=DAYS - 1)
RANGE = ("--start", f"{START}", "--end", f"{END}")
TRIALS = 20
SEED = 6


@pytest.fixture(scope="module")
def nova(tmp_path_factory):
    """Large enough that a day's RENO partition is several times the run log of a failed backfill
    (the out-of-space trial limits every file to just under that partition's size)."""
    from cvas.simulator.simulate import simulate

    return simulate(tmp_path_factory.mktemp("nova"), START, DAYS, new_per_day=48, seed=SEED)


@dataclass(frozen=True)
class Reference:
    root: Path
    state: dict
    seconds: float
    first_output: float = 0.0   # seconds from start to the first published output


def _any_output(root: Path) -> bool:
    return bool(dataset_files(root))


@pytest.fixture(scope="module")
def reference(nova, tmp_path_factory) -> Reference:
    """One uninterrupted backfill of the range (shared by every test of the module), watched
    for the moment its first output is published."""
    base = tmp_path_factory.mktemp("reference")
    cfg = write_cfg(base / "luigi.cfg", base / "data", nova=nova)
    t0 = time.monotonic()
    first = None
    with open(base / "output.txt", "w+", encoding="utf-8") as out:
        proc = subprocess.Popen(cvas_cmd("backfill", *RANGE), cwd=REPO, env=env_for(cfg), stdout=out,
                                stderr=subprocess.STDOUT)
        while proc.poll() is None:
            if first is None and _any_output(base / "data"):
                first = time.monotonic() - t0
            time.sleep(0.02)
        seconds = time.monotonic() - t0
        out.seek(0)
        assert proc.returncode == 0, out.read()
    return Reference(base / "data", published(base / "data"), seconds, first or 0.0)


def file_hashes(root: Path) -> dict[str, str]:
    """sha256 of every file a reader of the dataset roots can see."""
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in dataset_files(root)}


# -- SIGKILL -------------------------------------------------------------------------------


@dataclass
class Trial:
    delay: float
    killed: bool
    outputs_at_kill: int
    problems: list[str]
    rerun_code: int
    rerun_output: str
    repaired: list[str]          # what `cvas verify` found after the rerun (then rebuilt)
    verified: bool               # `cvas verify` passes in the end
    diff: list[str]


def _trial(base: Path, nova, reference: Reference, delay: float) -> Trial:
    base.mkdir()
    root = base / "data"
    cfg = write_cfg(base / "luigi.cfg", root, nova=nova)
    proc = subprocess.Popen(cvas_cmd("backfill", *RANGE), cwd=REPO, env=env_for(cfg),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    while proc.poll() is None and not _any_output(root):   # `delay` counts from the first output
        time.sleep(0.02)
    try:
        proc.wait(timeout=delay)
        killed = False
    except subprocess.TimeoutExpired:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        killed = True
    outputs = len(file_hashes(root)) if root.exists() else 0
    problems = visible_files_are_whole(root) if root.exists() else []
    rerun = run_cvas(cfg, "backfill", *RANGE)
    repaired, verified = [], False
    if rerun.returncode == 0:
        verified = verify_range(Layout(root), START, END).ok      # in-process: no interpreter start per trial
        if not verified:   # `cvas verify` marks what it finds; the next backfill rebuilds it
            check = run_cvas(cfg, "verify", *RANGE)
            repaired = [line for line in check.stdout.splitlines() if ": " in line and not line.startswith("verify ")]
            assert run_cvas(cfg, "backfill", *RANGE).returncode == 0
            verified = run_cvas(cfg, "verify", *RANGE).returncode == 0
    diff = differences(published(root), reference.state) if rerun.returncode == 0 else []
    return Trial(delay, killed, outputs, problems, rerun.returncode, rerun.stdout + rerun.stderr, repaired, verified,
                 diff)


def test_sigkill_at_random_moments_then_a_rerun_gives_the_reference_outputs(nova, reference, tmp_path):
    rnd = random.Random(SEED)
    # after the trial's first output, within the time an uninterrupted run spends publishing: a
    # kill during start-up, before anything is published, tests nothing (and start-up time is
    # what varies most with the machine's load)
    delays = [round(rnd.uniform(0.0, reference.seconds - reference.first_output), 2) for _ in range(TRIALS)]
    with ThreadPoolExecutor(max_workers=2) as pool:
        trials = list(pool.map(lambda i: _trial(tmp_path / f"trial{i:02d}", nova, reference, delays[i]),
                               range(TRIALS)))
    total = len(file_hashes(reference.root))
    for i, t in enumerate(trials):
        assert not t.problems, f"trial {i} (kill at {t.delay}s): {t.problems}"
        assert t.rerun_code == 0, f"trial {i} (kill at {t.delay}s): rerun failed\n{t.rerun_output}"
        # A kill between publishing a partition and writing its sidecar leaves it without one, and
        # the rerun keeps it (LoadTransactions is complete when the file exists): `cvas verify`
        # finds exactly that, and the backfill after it rebuilds the partition.
        assert all(re.fullmatch(r"Parquet_Data/transactions/\S+\.parquet: no provenance sidecar: .*", line)
                   for line in t.repaired), f"trial {i} (kill at {t.delay}s): {t.repaired}"
        assert t.verified, f"trial {i} (kill at {t.delay}s): verify still fails"
        assert not t.diff, f"trial {i} (kill at {t.delay}s): outputs differ from the reference: {t.diff}"
    mid_build = [t for t in trials if t.killed and 0 < t.outputs_at_kill < total]
    print(f"{TRIALS} trials, kills {min(delays)}..{max(delays)}s after the first output: "
          f"{sum(t.killed for t in trials)} killed, "
          f"{len(mid_build)} with part of the {total} outputs published, "
          f"{sum(bool(t.repaired) for t in trials)} left a partition without its sidecar (found by verify)")
    # the kills really landed while outputs were being published
    assert sum(t.killed for t in trials) >= TRIALS * 0.8 and len(mid_build) >= TRIALS // 2, \
        [(t.delay, t.killed, t.outputs_at_kill) for t in trials]


# -- out of space --------------------------------------------------------------------------


def _limit_file_size(limit: int):
    def preexec() -> None:
        # without this, the kernel kills the writer with SIGXFSZ instead of failing write() with EFBIG
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    return preexec


def test_a_write_that_runs_out_of_space_fails_the_step_and_keeps_every_published_output(nova, reference, tmp_path):
    root = tmp_path / "data"
    cfg = write_cfg(tmp_path / "luigi.cfg", root, nova=nova)
    assert run_cvas(cfg, "backfill", *RANGE).returncode == 0
    lay = Layout(root)
    victim = lay.transactions("reno", END)
    # the rebuilt partition cannot be written; every smaller file (reports, sidecars, the log) can
    limit = victim.stat().st_size - 1
    assert limit > 50_000, "the failed run's log (about 25 kB) must fit well under the limit"
    assert invalidate(lay, END, END, "transactions", ["reno"])
    before = file_hashes(root)

    # -v: luigi's "failed <task>" record and the traceback are shown on the console only when asked for
    run = subprocess.run(cvas_cmd("-v", "backfill", *RANGE), cwd=REPO, env=env_for(cfg), capture_output=True,
                         text=True, timeout=120, preexec_fn=_limit_file_size(limit))
    assert run.returncode == 30, run.stdout + run.stderr
    assert f"failed    LoadTransactions(date={END}, kind=reno)" in run.stderr
    assert "File too large" in run.stderr
    assert "Logging error" not in run.stderr
    assert file_hashes(root) == before, "every published output is intact"
    assert not visible_files_are_whole(root)
    assert not [p for p in lay.staging.rglob("*") if p.is_file()], "the failed write left nothing in staging"

    # with space again, the step is retried and the outputs are the reference's
    assert run_cvas(cfg, "backfill", *RANGE).returncode == 0
    assert victim.read_bytes() == (reference.root / victim.relative_to(root)).read_bytes()
    check = run_cvas(cfg, "verify", *RANGE)
    assert check.returncode == 0, check.stdout + check.stderr


# -- corruption ----------------------------------------------------------------------------


def test_verify_detects_corrupted_outputs_and_the_next_backfill_rebuilds_them(nova, reference, tmp_path):
    root = tmp_path / "data"
    shutil.copytree(reference.root, root)
    cfg = write_cfg(tmp_path / "luigi.cfg", root, nova=nova)
    lay = Layout(root)
    clean = run_cvas(cfg, "verify", *RANGE)
    assert clean.returncode == 0 and " 0 problem(s)" in clean.stdout, clean.stdout + clean.stderr

    flipped = lay.transactions("act", START)             # bytes flipped in the middle
    data = bytearray(flipped.read_bytes())
    data[len(data) // 2] ^= 0xFF
    flipped.write_bytes(bytes(data))
    truncated = lay.daily_counters(END)                  # cut to half
    with open(truncated, "r+b") as fh:
        fh.truncate(truncated.stat().st_size // 2)
    edited = lay.raw("cnr", END)                         # the landing copy edited by hand
    edited.write_bytes(edited.read_bytes().replace(b",", b";", 1))
    unrecorded = lay.transactions("dct", END)             # its sidecar lost (a kill between the two writes)
    sidecar(lay, unrecorded).unlink()
    damaged = [flipped, truncated, edited, unrecorded]

    report = run_cvas(cfg, "verify", *RANGE, "--no-repair")
    assert report.returncode == 1
    for path in damaged:
        assert f"{path.relative_to(root)}: " in report.stdout, report.stdout
    assert "4 problem(s)" in report.stdout and not (root / "_invalid").exists()

    report = run_cvas(cfg, "verify", *RANGE)
    assert report.returncode == 1 and "marked 4 output(s) for rebuild" in report.stdout, report.stdout
    assert run_cvas(cfg, "backfill", *RANGE).returncode == 0
    again = run_cvas(cfg, "verify", *RANGE)
    assert again.returncode == 0 and " 0 problem(s)" in again.stdout, again.stdout
    for path in (flipped, edited, unrecorded):
        assert path.read_bytes() == (reference.root / path.relative_to(root)).read_bytes()
    assert sidecar(lay, unrecorded).exists()
    assert pq.read_table(truncated).drop_columns(["last_updated"]).equals(
        pq.read_table(reference.root / truncated.relative_to(root)).drop_columns(["last_updated"]))


# -- SIGKILL inside a batch run ------------------------------------------------------------

BATCH_START = dt.date(2025, 11, 10)
BATCH_DAYS = 6
BATCH_RANGE = ("--start", f"{BATCH_START}", "--end", f"{BATCH_START + dt.timedelta(days=BATCH_DAYS - 1)}")


def test_sigkill_inside_a_batch_run_then_a_rerun_gives_the_reference_outputs(tmp_path):
    """The backfill is killed once the act loads' batch has published some of its days but not
    all; the rerun loads the rest and everything equals an uninterrupted run's outputs."""
    from cvas.simulator.simulate import simulate

    nova = simulate(tmp_path / "nova", BATCH_START, BATCH_DAYS, new_per_day=60, seed=SEED)
    ref = tmp_path / "reference" / "data"
    assert run_cvas(write_cfg(tmp_path / "reference.cfg", ref, nova=nova), "backfill", *BATCH_RANGE).returncode == 0
    for attempt in range(5):   # the kill must land between two days of the batch: retried if it missed
        root = tmp_path / f"killed{attempt}" / "data"
        cfg = write_cfg(tmp_path / f"killed{attempt}.cfg", root, nova=nova)
        partitions = root / "Parquet_Data" / "transactions" / "act"
        proc = subprocess.Popen(cvas_cmd("backfill", *BATCH_RANGE), cwd=REPO, env=env_for(cfg),
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        while proc.poll() is None and not list(partitions.glob("*/*.parquet")):
            time.sleep(0.002)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        loaded = len(list(partitions.glob("*/*.parquet")))
        if 0 < loaded < BATCH_DAYS:
            break
    else:
        pytest.fail("no kill landed inside the act loads' batch")
    assert not visible_files_are_whole(root)
    rerun = run_cvas(cfg, "backfill", *BATCH_RANGE)
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    end = BATCH_START + dt.timedelta(days=BATCH_DAYS - 1)
    first = verify_range(Layout(root), BATCH_START, end)
    if not first.ok:   # a partition killed before its sidecar
        found = [(str(f.path.relative_to(root)), f.problem) for f in first.findings]
        assert run_cvas(cfg, "verify", *BATCH_RANGE).returncode == 1, f"in-process verify found {found}"
        assert run_cvas(cfg, "backfill", *BATCH_RANGE).returncode == 0
    assert verify_range(Layout(root), BATCH_START, end).ok
    assert differences(published(root), published(ref)) == []


# -- concurrent runs on one data root --------------------------------------------------------

# (first command, second command): the second starts after a random delay, so the two overlap
# at every phase of each other. The three pairs have one right answer each.
DAILY_START, DAILY_END, BACKFILL = ("daily", "--date", f"{START}"), ("daily", "--date", f"{END}"), ("backfill", *RANGE)
PAIRS = [(DAILY_START, DAILY_END), (DAILY_END, BACKFILL), (BACKFILL, BACKFILL)]
EXPORTS = ("Counters/Counters_CPC.parquet", "Counters/Counters_Service.csv", "User_Base/user_base_by_service.csv",
           "User_Base/user_base_by_category.csv", "User_Base/user_base_by_cpc.csv")


@pytest.fixture(scope="module")
def dailies(nova, tmp_path_factory) -> Reference:
    """`cvas daily START` then `cvas daily END`, one after the other."""
    base = tmp_path_factory.mktemp("dailies")
    cfg = write_cfg(base / "luigi.cfg", base / "data", nova=nova)
    for command in (DAILY_START, DAILY_END):
        run = run_cvas(cfg, *command)
        assert run.returncode == 0, run.stdout + run.stderr
    return Reference(base / "data", published(base / "data"), 0.0)


@dataclass
class Race:
    pair: tuple
    scheduler: str
    delay: float
    codes: list[int]
    output: str
    exports_diff: list[str]      # the whole-history exports right after the two runs
    diff: list[str]              # everything, after the operator's follow-up backfill for two dailies
    verified: bool


def _race(base: Path, nova, pair, delay: float, expected: Reference, central: bool) -> Race:
    from tests.tasks.test_luigid import start_luigid

    base.mkdir()
    root = base / "data"
    server = start_luigid(base / "luigid", extra_config="[scheduler]\nstable_done_cooldown_secs = 0\n") \
        if central else None
    try:
        core = {"scheduler_host": "127.0.0.1", "scheduler_port": server.port} if server else None
        cfg = write_cfg(base / "luigi.cfg", root, nova=nova, core=core, scheduler="central" if central else "local")
        first = subprocess.Popen(cvas_cmd(*pair[0]), cwd=REPO, env=env_for(cfg), stdout=subprocess.PIPE,
                                 stderr=subprocess.STDOUT, text=True)
        time.sleep(delay)
        second = subprocess.Popen(cvas_cmd(*pair[1]), cwd=REPO, env=env_for(cfg), stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT, text=True)
        outputs = [p.communicate(timeout=300)[0] for p in (first, second)]
        codes = [first.returncode, second.returncode]
        state = published(root)
        exports_diff = [k for k in differences(state, expected.state) if k in EXPORTS]
        if pair == (DAILY_START, DAILY_END) and codes == [0, 0]:
            # the view and report of END may predate START's partitions (as when END is run first):
            # they are then recorded stale, and the next backfill brings them up to date
            follow = run_cvas(cfg, *BACKFILL)
            codes.append(follow.returncode)
            outputs.append(follow.stdout + follow.stderr)
            state = published(root)
    finally:
        if server:
            server.script("stop")
    verified = verify_range(Layout(root), START, END).ok
    return Race(pair, "luigid" if central else "local", delay, codes, "\n".join(outputs), exports_diff,
                differences(state, expected.state), verified)


def test_concurrent_daily_and_backfill_runs_give_the_outputs_of_a_sequential_build(nova, reference, dailies,
                                                                                   tmp_path):
    """Two `cvas daily`/`cvas backfill` processes at once on one data root, with the local
    scheduler and through luigid: every output equals a sequential build's, byte for byte
    (audit timestamps aside), `cvas verify` passes, and no day is counted twice or lost."""
    rnd = random.Random(SEED)
    trials = [(pair, central, round(rnd.uniform(0.0, reference.seconds * 0.6), 2))
              for central in (False, True) for pair in PAIRS for _ in range(4 if not central else 3)]
    expected = {PAIRS[0]: dailies, PAIRS[1]: reference, PAIRS[2]: reference}
    with ThreadPoolExecutor(max_workers=2) as pool:
        races = list(pool.map(lambda it: _race(tmp_path / f"race{it[0]:02d}", nova, it[1][0], it[1][2],
                                               expected[it[1][0]], it[1][1]), enumerate(trials)))
    for i, r in enumerate(races):
        what = f"trial {i} ({r.scheduler}: {' '.join(r.pair[0])} | {' '.join(r.pair[1])} after {r.delay}s)"
        assert all(code == 0 for code in r.codes), f"{what}: exit codes {r.codes}\n{r.output}"
        assert not r.exports_diff, f"{what}: exports differ from a sequential build: {r.exports_diff}"
        assert not r.diff, f"{what}: outputs differ from a sequential build: {r.diff}"
        assert r.verified, f"{what}: verify finds problems"
    print(f"{len(races)} concurrent trials ({sum(r.scheduler == 'luigid' for r in races)} through luigid), "
          f"second run started {min(r.delay for r in races)}..{max(r.delay for r in races)}s after the first")


def _waits_for_lock(pid: int, path: Path) -> bool:
    """Whether process `pid` is blocked on a flock of `path` (a `->` line of /proc/locks)."""
    inode = path.stat().st_ino
    return any("->" in line and line.split()[5] == str(pid) and line.split()[6].endswith(f":{inode}")
               for line in Path("/proc/locks").read_text().splitlines())


def test_a_backfill_never_marks_for_rebuild_an_output_another_run_is_publishing(nova, reference, tmp_path):
    """A backfill plans from a scan taken without locks: a partition that another run has
    published but not yet recorded (its sidecar follows under the task's lock) looks stale.
    The backfill marks it for rebuild only once it holds that lock and finds it still stale,
    so the other run's readers, which found it complete, keep it (CI saw exit 30 'inputs ...
    not complete any more' when the mark landed in between)."""
    from tasks.base import task_lock_files
    from tasks.steps.transactions import LoadTransactions

    root = tmp_path / "data"
    shutil.copytree(reference.root, root)
    cfg = write_cfg(tmp_path / "luigi.cfg", root, nova=nova)
    lay = Layout(root)
    partition, counters = lay.transactions("reno", END), lay.daily_counters(END)
    before = {p: p.stat().st_mtime_ns for p in (partition, counters)}
    own = sidecar(lay, partition)
    lock = task_lock_files(lay, [LoadTransactions(date=END, kind="reno")])[0]
    with exclusive(lock):                          # the other run, between the partition and its sidecar
        aside = own.rename(own.with_name(own.name + ".writing"))
        backfill = subprocess.Popen(cvas_cmd("backfill", *RANGE), cwd=REPO, env=env_for(cfg),
                                    stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        deadline = time.monotonic() + 60
        while not _waits_for_lock(backfill.pid, lock):
            assert backfill.poll() is None, f"the backfill did not wait for the writer:\n{backfill.communicate()[0]}"
            assert time.monotonic() < deadline, "the backfill never reached the partition's lock"
            time.sleep(0.05)
        aside.rename(own)                          # ... which records the sidecar and is done
    output = backfill.communicate(timeout=120)[0]
    assert backfill.returncode == 0, output
    assert "all 2 days are built; nothing to do" in output, output
    assert not tombstone(lay, partition).exists()
    assert {p: p.stat().st_mtime_ns for p in (partition, counters)} == before
