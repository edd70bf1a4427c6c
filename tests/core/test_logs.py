"""Run logs: one file per run, a timestamp on every line (luigi's and tracebacks too), whole-file rotation, redaction."""

from __future__ import annotations

import datetime as dt
import logging
import os
import re
import sys
import warnings

import luigi
import pytest

from cvas.core.logs import RedactLongDigits, redact, rotate_logs, run_log_name, setup_run_logging
from tests.luigid_tasks import Fails, Leaf

STAMPED = re.compile(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2} (DEBUG|INFO|WARNING|ERROR|CRITICAL) +\S+(: |\| )")
RUN_FILE = re.compile(r"^\d{8}-\d{6}-daily-(\d+)\.log$")


@pytest.fixture(autouse=True)
def clean_logging():
    """Each test starts from a bare root logger, as a fresh `cvas` process does, and leaves it so."""
    root = logging.getLogger()
    interface = logging.getLogger("luigi-interface")
    saved = (root.handlers[:], root.level, interface.handlers[:], interface.level, sys.excepthook)
    root.handlers[:] = []
    interface.handlers[:], interface.level = [], logging.NOTSET  # undo an earlier luigi.build's setup
    yield
    for handler in root.handlers:
        handler.close()
    root.handlers[:], root.level, interface.handlers[:], interface.level, sys.excepthook = saved
    logging.captureWarnings(False)


def stamped_lines(path):
    lines = path.read_text().splitlines()
    assert lines, f"{path} is empty"
    bad = [line for line in lines if not STAMPED.match(line)]
    assert not bad, f"lines without a timestamp: {bad[:5]}"
    return lines


def test_one_file_per_run_named_by_start_run_and_pid(tmp_path):
    path = setup_run_logging(tmp_path / "logs", "daily", verbose=False)

    assert path.parent == (tmp_path / "logs").resolve()
    match = RUN_FILE.match(path.name)
    assert match and int(match[1]) == os.getpid()
    started = dt.datetime.strptime(path.name[:15], "%Y%m%d-%H%M%S")
    assert abs((dt.datetime.now() - started).total_seconds()) < 60
    logging.getLogger("cvas.test").info("read %d rows", 42)
    assert "cvas.test: read 42 rows" in path.read_text()
    assert run_log_name("back fill/2026", dt.datetime(2026, 1, 2, 3, 4, 5), 7) == "20260102-030405-back_fill_2026-7.log"


def test_every_line_of_a_traceback_and_a_multiline_message_is_stamped(tmp_path):
    path = setup_run_logging(tmp_path, "daily", verbose=False)
    log = logging.getLogger("cvas.steps.load")
    try:
        raise ValueError("bad header in act.csv\nexpected 15 columns")
    except ValueError:
        log.exception("loading %s failed", "act")
    log.warning("summary:\n  act 10 rows\n  reno 5 rows")

    lines = stamped_lines(path)
    text = "\n".join(lines)
    assert "ERROR    cvas.steps.load: loading act failed" in text
    assert "ERROR    cvas.steps.load| Traceback (most recent call last):" in text
    assert "ERROR    cvas.steps.load| ValueError: bad header in act.csv" in text
    assert "ERROR    cvas.steps.load| expected 15 columns" in text
    assert "WARNING  cvas.steps.load|   reno 5 rows" in text


def test_console_gets_warnings_or_info_when_verbose(tmp_path, capsys):
    setup_run_logging(tmp_path, "daily", verbose=False)
    logging.getLogger("cvas").info("quiet detail")
    logging.getLogger("cvas").warning("loud problem")
    err = capsys.readouterr().err
    assert "loud problem" in err and "quiet detail" not in err
    assert all(STAMPED.match(line) for line in err.splitlines())

    setup_run_logging(tmp_path, "daily", verbose=True)
    logging.getLogger("cvas").info("now shown")
    assert "now shown" in capsys.readouterr().err


def test_setting_up_again_replaces_the_handlers(tmp_path):
    first = setup_run_logging(tmp_path / "a", "daily", verbose=False)
    second = setup_run_logging(tmp_path / "b", "daily", verbose=False)
    logging.getLogger("cvas").info("once")

    assert second.read_text().count("once") == 1
    assert "once" not in first.read_text()
    assert len([h for h in logging.getLogger().handlers if isinstance(h, logging.FileHandler)]) == 1


def test_luigi_records_and_task_tracebacks_land_stamped_in_the_run_file(tmp_path, luigi_config):
    path = setup_run_logging(tmp_path / "logs", "daily", verbose=False)
    luigi_config("core", "no_configure_logging", "true")  # what tasks/cli.py sets after setup_run_logging
    day = dt.date(2026, 1, 14)

    ok = luigi.build([Leaf(root=str(tmp_path), day=day, pause=0), Fails(root=str(tmp_path), day=day)],
                     local_scheduler=True, workers=1)

    assert ok is False
    lines = stamped_lines(path)
    text = "\n".join(lines)
    assert re.search(r"INFO +luigi-interface: \[pid \d+\] Worker .* done +Leaf\(", text)
    assert re.search(r"ERROR +luigi-interface: \[pid \d+\] Worker .* failed +Fails\(", text)
    assert "ERROR    luigi-interface| RuntimeError: 3 of 120 rows rejected on 2026-01-14 (limit 1%)" in text
    assert "INFO     luigi-interface| ===== Luigi Execution Summary =====" in text


def test_python_warnings_and_uncaught_exceptions_are_logged(tmp_path):
    path = setup_run_logging(tmp_path, "daily", verbose=False)
    warnings.warn("deprecated knob", UserWarning)
    try:
        raise KeyError("no such kind")
    except KeyError:
        sys.excepthook(*sys.exc_info())

    text = "\n".join(stamped_lines(path))
    assert "WARNING  py.warnings: " in text and "deprecated knob" in text
    assert "CRITICAL cvas: uncaught exception" in text
    assert "CRITICAL cvas| KeyError: 'no such kind'" in text


def test_long_digit_runs_are_redacted_in_messages_args_and_tracebacks(tmp_path):
    path = setup_run_logging(tmp_path, "daily", verbose=False)
    log = logging.getLogger("cvas")
    log.info("user %s excluded", "34612345678")
    log.info("tmuserid=123456789012345678 cpc=1234 subscription 9876543210")
    try:
        raise ValueError("bad msisdn 34699999999")
    except ValueError:
        log.exception("row rejected")

    text = path.read_text()
    assert not re.search(r"\d{11,}", text)
    assert "user <redacted> excluded" in text
    assert "tmuserid=<redacted> cpc=1234 subscription 9876543210" in text  # 10 digits stay
    assert "ValueError: bad msisdn <redacted>" in text


def test_redact_boundaries():
    assert redact("34612345678") == "<redacted>"
    assert redact("3461234567") == "3461234567"
    assert redact("a34612345678b 2026-01-14 20260114123045") == "a<redacted>b 2026-01-14 <redacted>"
    assert redact("+34 612 345 678") == "+34 612 345 678"  # spaced numbers are the callers' duty


def test_redaction_filter_survives_a_bad_format(tmp_path):
    record = logging.LogRecord("cvas", logging.INFO, __file__, 1, "%d rows", ("x",), None)
    assert RedactLongDigits().filter(record) is True
    assert record.msg == "%d rows"  # left for the handler to report, not raised into the caller


def make_run_file(log_dir, started: dt.datetime, name="daily", pid=4242, mtime: dt.datetime | None = None):
    path = log_dir / run_log_name(name, started, pid)
    path.write_text(f"{started:%Y-%m-%d %H:%M:%S} INFO     cvas: start\nTraceback (most recent call last):\n  untouched\n")
    stamp = (mtime or started).timestamp()
    os.utime(path, (stamp, stamp))
    return path


def test_rotation_deletes_whole_files_older_than_15_days_and_edits_none(tmp_path):
    now = dt.datetime(2026, 2, 1, 7, 15)
    old = make_run_file(tmp_path, now - dt.timedelta(days=15, minutes=1))
    edge = make_run_file(tmp_path, now - dt.timedelta(days=14, hours=23))
    recent = make_run_file(tmp_path, now - dt.timedelta(days=1), name="backfill")
    still_written = make_run_file(tmp_path, now - dt.timedelta(days=20), mtime=now - dt.timedelta(hours=1))
    foreign = tmp_path / "notes.log"
    foreign.write_text("not a run log\n")
    os.utime(foreign, (0, 0))
    kept_bytes = {p: p.read_bytes() for p in (edge, recent, still_written, foreign)}

    deleted = rotate_logs(tmp_path, now=now)

    assert deleted == [old] and not old.exists()
    assert {p: p.read_bytes() for p in kept_bytes} == kept_bytes  # whole files, never rewritten (legacy rule L-D16)


def test_setup_rotates_before_opening_the_new_file(tmp_path):
    old = make_run_file(tmp_path, dt.datetime.now() - dt.timedelta(days=16))
    path = setup_run_logging(tmp_path, "daily", verbose=False)

    assert not old.exists() and path.exists()
    assert "deleted 1 run log(s) older than 15 days" in path.read_text()
    assert rotate_logs(tmp_path / "absent") == []
