"""Failure e-mail through luigi's own [email]/[smtp] settings, received by a real SMTP sink on loopback."""

from __future__ import annotations

import datetime as dt
import io
import re

import luigi
import pytest

from cvas.core.logs import redact
from tests.luigid_tasks import Fails
from tests.smtp_sink import SmtpSink, text_body

DAY = dt.date(2026, 1, 14)
PII = "34612345678"  # an msisdn shape: 34 + 9 digits
LONG_DIGITS = re.compile(r"\d{11,}")

# luigi's own [smtp] defaults (None for username/password) warn on every read; not ours to fix.
pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings("ignore:Parameter .* is not of type string")]


class LeaksPii(Fails):
    """A careless task whose error text carries an msisdn, but whose failure report is redacted."""

    def run(self):
        raise ValueError(f"unexpected user {PII} on {self.day}")

    def on_failure(self, exception):
        return redact(super().on_failure(exception))


@pytest.fixture
def sink():
    server = SmtpSink()
    yield server
    server.close()


@pytest.fixture
def mail_config(luigi_config, sink):
    """The documented luigi.cfg block, pointed at the sink."""
    for section, key, value in [
        ("email", "receiver", "cvas-oncall@example.com"),
        ("email", "sender", "cvas@example.com"),
        ("email", "method", "smtp"),
        ("email", "prefix", "[cvas]"),
        ("email", "force_send", "true"),
        ("smtp", "host", "127.0.0.1"),
        ("smtp", "port", sink.port),
        ("smtp", "timeout", "5"),
    ]:
        luigi_config(section, key, value)
    return luigi_config


def build(task) -> bool:
    return luigi.build([task], local_scheduler=True, workers=1, log_level="ERROR")


def test_failed_task_sends_one_mail_naming_the_task_without_pii(mail_config, sink, tmp_path):
    assert build(Fails(root=str(tmp_path), day=DAY)) is False

    assert len(sink.messages) == 1
    message = sink.messages[0]
    assert sink.envelopes == [("cvas@example.com", ["cvas-oncall@example.com"])]
    subject = message["Subject"]
    assert subject.startswith("[cvas] Luigi: Fails(")
    assert "day=2026-01-14" in subject and "FAILED" in subject
    body = text_body(message)
    assert "A task failed when running" in body
    assert "RuntimeError: 3 of 120 rows rejected on 2026-01-14 (limit 1%)" in body
    assert not LONG_DIGITS.search(subject + body)


def test_on_failure_redaction_keeps_a_leaked_id_out_of_the_mail(mail_config, sink, tmp_path):
    assert build(LeaksPii(root=str(tmp_path), day=DAY)) is False

    assert len(sink.messages) == 1
    body = text_body(sink.messages[0])
    assert "ValueError: unexpected user <redacted> on 2026-01-14" in body
    assert PII not in body and not LONG_DIGITS.search(body)


def test_cron_run_without_a_terminal_mails_even_without_force_send(mail_config, sink, tmp_path, monkeypatch):
    mail_config("email", "force_send", "false")
    monkeypatch.setattr("sys.stdout", io.StringIO())  # what cron gives: not a tty

    assert build(Fails(root=str(tmp_path), day=DAY)) is False
    assert len(sink.messages) == 1


def test_terminal_run_mails_only_with_force_send(mail_config, sink, tmp_path, monkeypatch):
    class Terminal(io.StringIO):
        def isatty(self):
            return True

    mail_config("email", "force_send", "false")
    monkeypatch.setattr("sys.stdout", Terminal())
    assert build(Fails(root=str(tmp_path), day=DAY)) is False
    assert sink.messages == []

    mail_config("email", "force_send", "true")
    assert build(Fails(root=str(tmp_path), day=DAY + dt.timedelta(days=1))) is False
    assert len(sink.messages) == 1


def test_no_receiver_no_mail(luigi_config, sink, tmp_path):
    luigi_config("smtp", "host", "127.0.0.1")
    luigi_config("smtp", "port", sink.port)
    luigi_config("email", "force_send", "true")

    assert build(Fails(root=str(tmp_path), day=DAY)) is False
    assert sink.messages == []
