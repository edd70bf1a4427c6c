"""The ssh source against a real OpenSSH sshd and PostgreSQL started for the session (no mocks)."""

from __future__ import annotations

import datetime as dt
import os
import shlex
import time
from dataclasses import replace
from pathlib import Path

import duckdb
import pyarrow.parquet as pq
import pytest

from cvas.steps.fetch import fetch_transactions, fetch_user_base
from cvas.core.layout import Layout
from cvas.simulator.nova_pg import load_into_postgres
from cvas.core.schemas import KINDS
from cvas.sources.simulated import SimulatedSource
from cvas.core.logs import SERVER_DIGITS, redact
from cvas.sources.ssh import SshSource
from cvas.sources.ssh_settings import (
    AuthenticationError,
    CommandTimeout,
    HostKeyError,
    RemoteCommandError,
    RemoteSqlError,
    SshSettings,
    StaleSnapshotError,
    TransientError,
)
from tests.servers import ServerError, keygen, start_postgres, start_sshd

pytestmark = pytest.mark.slow   # see pyproject: make test-fast leaves it out

START = dt.date(2025, 3, 3)
DAYS = 3
END = START + dt.timedelta(days=DAYS - 1)
DAYS_LIST = [START + dt.timedelta(days=i) for i in range(DAYS)]
BACKFILL_END = START + dt.timedelta(days=1)      # two days through luigi keep the module quick
NOVA_TABLES = ("telefonicaes_sub_mgr_fact", "channel_dim", "delaydcttlog_v1_0_0_fact", "refund_v1_0_0_fact")


# -- servers and data ---------------------------------------------------------------------------

@pytest.fixture(scope="session")
def pg():
    try:
        server = start_postgres()
    except ServerError as exc:
        pytest.fail(str(exc))
    yield server
    server.stop()


@pytest.fixture(scope="session")
def sshd():
    try:
        server = start_sshd()
    except ServerError as exc:
        pytest.fail(str(exc))
    yield server
    server.stop()


@pytest.fixture(scope="session")
def nova(tmp_path_factory, pg):
    """A small simulated Nova, in DuckDB and loaded into the cluster's `nova` database."""
    from cvas.simulator.simulate import simulate

    info = simulate(tmp_path_factory.mktemp("nova_ssh"), START, DAYS, new_per_day=40, seed=5)
    pg.sql("CREATE DATABASE nova;")
    load_into_postgres(info.database, psql=pg.psql, psql_args=pg.args("nova"))
    return info


@pytest.fixture(scope="session")
def remote(sshd):
    """The remote side's directories: Nova's report dir (NBS snapshot) and wrapper scripts."""
    reports = sshd.root / "lvas_reports"
    bin_dir = sshd.root / "bin"
    for d in (reports, bin_dir):
        d.mkdir(exist_ok=True)
        os.chmod(d, 0o755)
    return {"reports": reports, "bin": bin_dir, "home": sshd.root / "home"}


@pytest.fixture(scope="session")
def known_hosts(sshd, tmp_path_factory):
    return sshd.write_known_hosts(tmp_path_factory.mktemp("ssh_client") / "known_hosts")


@pytest.fixture
def settings(sshd, pg, nova, remote, known_hosts):
    """Settings reaching the test Nova; tests override what they exercise."""
    return SshSettings(host="127.0.0.1", port=sshd.port, user=sshd.user, key_file=sshd.client_key,
                       known_hosts=known_hosts, psql_path=pg.psql, database="nova", db_user="postgres",
                       db_host=str(pg.socket_dir), db_port=pg.port, connect_timeout=10, command_timeout=60,
                       remote_dir=str(remote["reports"]), attempts=1, backoff_seconds=0.01)


class Sleeps(list):
    """A recording sleep: the backoff delays a source asked for."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)


def wrapper(remote, name: str, body: str) -> str:
    """An executable shell script on the 'remote' host, for psql_path."""
    path = remote["bin"] / name
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(0o755)
    return str(path)


# -- the same rows as the embedded source -------------------------------------------------------

def test_postgres_holds_the_same_nova_as_duckdb(pg, nova):
    con = duckdb.connect(str(nova.database), read_only=True)
    try:
        for table in NOVA_TABLES:
            path = nova.database.parent / f"{table}.duck.csv"
            con.execute(f"copy {table} to '{path}' (format csv, header false)")
            duck_lines = sorted(path.read_text().splitlines())
            pg_lines = sorted(pg.sql(f"COPY {table} TO STDOUT WITH (FORMAT csv)", "nova").splitlines())
            assert pg_lines == duck_lines and len(pg_lines) > 0, table
            path.unlink()
    finally:
        con.close()


def test_ssh_extracts_are_byte_identical_to_the_simulated_source(settings, nova, tmp_path):
    ssh, sim = SshSource(settings), SimulatedSource(nova.database)
    total = 0
    for day in DAYS_LIST:
        for kind in KINDS:
            a, b = tmp_path / f"{kind}.ssh.csv", tmp_path / f"{kind}.sim.csv"
            rows = ssh.extract_transactions(kind, day, a)
            assert rows == sim.extract_transactions(kind, day, b), (kind, day)
            assert a.read_bytes() == b.read_bytes(), (kind, day)
            total += rows
    assert total > 1000


def _run_backfill(luigi_config, nova, root_data: Path, source: str, settings: SshSettings | None = None) -> int:
    from tasks.pipeline import run_backfill

    luigi_config("cvas", "data_root", root_data)
    luigi_config("cvas", "source", source)
    luigi_config("simulated_source", "database", nova.database)
    luigi_config("cvas", "master_xlsx", nova.master_xlsx)
    luigi_config("cvas", "exclusions", nova.exclusions)
    luigi_config("cvas", "workers", 1)
    # Nova serves only today's NBS snapshot, so a backfill of past days over ssh leaves the user
    # base out (it comes from a directory drop instead; README "Past NBS snapshots")
    luigi_config("cvas", "user_base", "false")
    if settings is not None:
        for key in ("host", "port", "user", "key_file", "known_hosts", "psql_path", "database", "db_user",
                    "db_host", "db_port", "connect_timeout", "command_timeout", "remote_dir", "attempts"):
            luigi_config("ssh_source", key, getattr(settings, key))
    return run_backfill(START, BACKFILL_END, progress=lambda _: None)


def test_backfill_through_ssh_of_past_days_fails_loudly_on_the_user_base(luigi_config, settings, nova, tmp_path):
    assert _run_backfill(luigi_config, nova, tmp_path / "ssh", "ssh", settings) == 0
    luigi_config("cvas", "user_base", "true")
    from tasks.pipeline import run_backfill

    assert run_backfill(START, BACKFILL_END, progress=lambda _: None) == 30   # [retcode] task_failed
    assert Layout(tmp_path / "ssh").daily_counters(START).exists()


def test_backfill_through_ssh_gives_the_same_rows_and_counters(luigi_config, settings, nova, tmp_path):
    assert _run_backfill(luigi_config, nova, tmp_path / "sim", "simulated") == 0
    assert _run_backfill(luigi_config, nova, tmp_path / "ssh", "ssh", settings) == 0
    sim, ssh = Layout(tmp_path / "sim"), Layout(tmp_path / "ssh")
    for day in DAYS_LIST[:2]:
        for kind in KINDS:
            assert ssh.raw(kind, day).read_bytes() == sim.raw(kind, day).read_bytes()
            assert pq.read_table(ssh.transactions(kind, day)).equals(pq.read_table(sim.transactions(kind, day)))
        a = pq.read_table(ssh.daily_counters(day)).drop_columns(["last_updated"])
        b = pq.read_table(sim.daily_counters(day)).drop_columns(["last_updated"])
        assert a.num_rows > 0 and a.equals(b)
    assert (pq.read_table(ssh.counters_cpc).drop_columns(["last_updated"])
            .equals(pq.read_table(sim.counters_cpc).drop_columns(["last_updated"])))
    assert ssh.counters_service.read_bytes() == sim.counters_service.read_bytes()


# -- host keys and authentication ----------------------------------------------------------------

def test_unknown_host_key_is_refused(settings, tmp_path):
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    sleeps = Sleeps()
    with pytest.raises(HostKeyError, match=r"is not in .*refused"):
        SshSource(replace(settings, known_hosts=empty, attempts=3), sleep=sleeps).extract_transactions(
            "act", START, tmp_path / "x.csv")
    assert sleeps == [] and empty.read_text() == ""
    with pytest.raises(HostKeyError, match="does not exist"):
        SshSource(replace(settings, known_hosts=tmp_path / "absent")).extract_transactions("act", START,
                                                                                           tmp_path / "x.csv")


def test_changed_host_key_is_refused_even_when_accepting_new_hosts(settings, sshd, tmp_path):
    other = keygen(tmp_path / "impostor")
    kind, b64 = other.with_suffix(".pub").read_text().split()[:2]
    known = tmp_path / "known_hosts"
    known.write_text(f"[127.0.0.1]:{sshd.port} {kind} {b64}\n")
    with pytest.raises(HostKeyError, match="CHANGED"):
        SshSource(replace(settings, known_hosts=known, accept_new_host_key=True)).extract_transactions(
            "cnr", START, tmp_path / "x.csv")


def test_accepting_a_new_host_records_its_key(settings, sshd, tmp_path):
    known = tmp_path / "new" / "known_hosts"
    SshSource(replace(settings, known_hosts=known, accept_new_host_key=True)).extract_transactions(
        "ppd", START, tmp_path / "a.csv")
    assert known.read_text().split() == sshd.host_key_line.split()
    SshSource(replace(settings, known_hosts=known)).extract_transactions("ppd", START, tmp_path / "b.csv")


def test_wrong_client_key_is_refused_at_once(settings, tmp_path):
    sleeps = Sleeps()
    with pytest.raises(AuthenticationError, match="refused key authentication"):
        SshSource(replace(settings, key_file=keygen(tmp_path / "stranger"), attempts=3),
                  sleep=sleeps).extract_transactions("act", START, tmp_path / "x.csv")
    assert sleeps == []


def test_encrypted_key_takes_its_passphrase_from_the_named_variable(settings, sshd, tmp_path, monkeypatch):
    secret = "correct horse 42"
    key = keygen(tmp_path / "locked", passphrase=secret)
    authorized = sshd.root / "authorized_keys"
    before = authorized.read_text()
    authorized.write_text(before + key.with_suffix(".pub").read_text())
    try:
        locked = replace(settings, key_file=key, key_passphrase_env="CVAS_TEST_KEY_PASSPHRASE")
        monkeypatch.delenv("CVAS_TEST_KEY_PASSPHRASE", raising=False)
        with pytest.raises(AuthenticationError, match="CVAS_TEST_KEY_PASSPHRASE"):
            SshSource(locked).extract_transactions("ppd", START, tmp_path / "x.csv")
        with pytest.raises(AuthenticationError, match="encrypted"):
            SshSource(replace(locked, key_passphrase_env="")).extract_transactions("ppd", START, tmp_path / "x.csv")
        monkeypatch.setenv("CVAS_TEST_KEY_PASSPHRASE", "wrong " + secret)
        with pytest.raises(AuthenticationError, match="wrong passphrase") as err:
            SshSource(locked).extract_transactions("ppd", START, tmp_path / "x.csv")
        assert secret not in str(err.value)
        monkeypatch.setenv("CVAS_TEST_KEY_PASSPHRASE", secret)
        assert SshSource(locked).extract_transactions("ppd", START, tmp_path / "x.csv") >= 0
    finally:
        authorized.write_text(before)


# -- remote failures -----------------------------------------------------------------------------

def test_sql_error_fails_at_once_with_the_cause(settings, tmp_path):
    sleeps = Sleeps()
    # the cluster's `postgres` database has no Nova tables
    with pytest.raises(RemoteSqlError, match=r'relation "telefonicaes_sub_mgr_fact" does not exist'):
        SshSource(replace(settings, database="postgres", attempts=3), sleep=sleeps).extract_transactions(
            "reno", START, tmp_path / "x.csv")
    assert sleeps == []


def test_missing_psql_and_unknown_database_are_named(settings, tmp_path):
    with pytest.raises(RemoteCommandError, match="cannot run /nonexistent/psql"):
        SshSource(replace(settings, psql_path="/nonexistent/psql")).extract_transactions("act", START,
                                                                                         tmp_path / "x.csv")
    with pytest.raises(RemoteCommandError, match="could not reach database no_such_db"):
        SshSource(replace(settings, database="no_such_db")).extract_transactions("act", START, tmp_path / "x.csv")


def test_error_messages_never_carry_ids(settings, remote, tmp_path):
    fake = wrapper(remote, "psql_pii", 'echo \'psql:<stdin>:9: ERROR:  invalid input syntax for type bigint: '
                                       '"8340001234567890123"\' >&2\necho "DETAIL:  Key (msisdn)=(34612345678)" >&2\n'
                                       'exit 3\n')
    with pytest.raises(RemoteSqlError) as err:
        SshSource(replace(settings, psql_path=fake)).extract_transactions("act", START, tmp_path / "x.csv")
    assert "invalid input syntax" in str(err.value)
    assert "8340001234567890123" not in str(err.value) and "34612345678" not in str(err.value)
    assert redact("tmuserid 8340001234567890123 msisdn 34612345678", SERVER_DIGITS) == "tmuserid <redacted> msisdn <redacted>"


def _dies_mid_transfer(psql: str, marker: Path | None = None) -> str:
    """A psql that passes 20 kB of the real output, then kills its sshd session (connection lost)."""
    once = f'[ -e {marker} ] && exec {psql} "$@"\ntouch {marker}\n' if marker else ""
    return (once + f'{psql} "$@" | head -c 20000\n'
            'pid=$$\n'
            'while [ "$pid" -gt 1 ]; do\n'
            '  pid=$(awk \'/^PPid:/ {print $2}\' /proc/$pid/status)\n'
            '  case "$(cat /proc/$pid/comm)" in sshd*) kill -9 "$pid"; exit 0;; esac\n'
            'done\n'
            'exit 1\n')


def test_connection_killed_mid_transfer_leaves_no_raw_file_and_a_rerun_succeeds(settings, pg, nova, remote,
                                                                                 tmp_path):
    layout = Layout(tmp_path / "data")
    out = layout.raw("reno", START)
    dying = wrapper(remote, "psql_dies", _dies_mid_transfer(pg.psql))
    with pytest.raises(TransientError, match="lost during the transfer"):
        fetch_transactions(SshSource(replace(settings, psql_path=dying)), "reno", START, out, layout.staging)
    assert not out.exists()
    assert not any(layout.staging.iterdir())            # nothing half-written left in staging either
    assert fetch_transactions(SshSource(settings), "reno", START, out, layout.staging) > 0
    expected = tmp_path / "expected.csv"
    SimulatedSource(nova.database).extract_transactions("reno", START, expected)
    assert out.read_bytes() == expected.read_bytes()


def test_a_lost_connection_is_retried_with_backoff(settings, pg, remote, tmp_path):
    marker = tmp_path / "died_once"
    flaky = wrapper(remote, "psql_flaky", _dies_mid_transfer(pg.psql, marker))
    sleeps = Sleeps()
    source = SshSource(replace(settings, psql_path=flaky, attempts=3, backoff_seconds=0.5), sleep=sleeps)
    assert source.extract_transactions("reno", START, tmp_path / "reno.csv") > 0
    assert marker.exists() and sleeps == [0.5]


def test_refused_connections_are_retried_then_fail(settings, tmp_path):
    from tests.servers import free_port

    sleeps = Sleeps()
    source = SshSource(replace(settings, port=free_port(), attempts=4, backoff_seconds=1, backoff_max_seconds=3),
                       sleep=sleeps)
    with pytest.raises(TransientError, match="refused.*after 4 attempts"):
        source.extract_transactions("act", START, tmp_path / "x.csv")
    assert sleeps == [1, 2, 3]


def test_a_command_over_its_timeout_fails(settings, remote, tmp_path):
    layout = Layout(tmp_path / "data")
    sleeper = wrapper(remote, "psql_sleeps", "exec sleep 8\n")
    t0 = time.monotonic()
    with pytest.raises(CommandTimeout, match="command_timeout = 1s"):
        fetch_transactions(SshSource(replace(settings, psql_path=sleeper, command_timeout=1, attempts=3)),
                           "act", START, layout.raw("act", START), layout.staging)
    assert time.monotonic() - t0 < 6
    assert not layout.raw("act", START).exists()


def test_row_count_mismatch_fails(settings, pg, remote, tmp_path):
    # a psql whose output loses its last line but still exits 0 with psql's count
    lossy = wrapper(remote, "psql_lossy", f'{pg.psql} "$@" | sed \'$d\'\n')
    with pytest.raises(Exception, match=r"reported \d+ rows but \d+ complete rows arrived"):
        SshSource(replace(settings, psql_path=lossy)).extract_transactions("reno", START, tmp_path / "x.csv")


# -- inputs are validated and quoted ---------------------------------------------------------------

def test_nothing_user_controlled_reaches_the_shell_unquoted(settings, tmp_path):
    odd = replace(settings, psql_path="/opt/my psql/bin/psql", database="nova; rm -rf /", db_user="$(id)")
    command = SshSource(odd).psql_command(START)
    argv = shlex.split(command)
    assert argv[0] == "/opt/my psql/bin/psql" and "nova; rm -rf /" in argv and "$(id)" in argv
    assert "start_ts=2025-03-03" in argv and "end_ts=2025-03-04" in argv
    with pytest.raises(ValueError):
        SshSource(settings).extract_transactions("act; rm -rf /", START, tmp_path / "x.csv")
    with pytest.raises(ValueError):
        SshSource(settings).extract_transactions("act", "2025-03-03'; drop table x; --", tmp_path / "x.csv")
    with pytest.raises(ValueError):
        replace(settings, nbs_file="../etc/passwd")


# -- the NBS snapshot ------------------------------------------------------------------------------

def _place_snapshot(nova, remote, day: dt.date, modified_on: dt.date) -> Path:
    path = remote["reports"] / "NBS_Base.csv"
    SimulatedSource(nova.database).extract_user_base(day, path)
    noon = dt.datetime.combine(modified_on, dt.time(12), tzinfo=dt.timezone.utc).timestamp()
    os.utime(path, (noon, noon))
    return path


def test_the_current_snapshot_is_fetched_by_sftp(settings, nova, remote, tmp_path):
    snapshot = _place_snapshot(nova, remote, END, END)
    layout = Layout(tmp_path / "data")
    rows = fetch_user_base(SshSource(settings), END, layout.user_base_snapshot(END), layout.staging)
    assert rows == len(snapshot.read_text().splitlines()) - 1 > 0
    assert layout.user_base_snapshot(END).read_bytes() == snapshot.read_bytes()


def test_a_stale_snapshot_is_refused(settings, nova, remote, tmp_path):
    _place_snapshot(nova, remote, END, END - dt.timedelta(days=1))
    layout = Layout(tmp_path / "data")
    with pytest.raises(StaleSnapshotError, match=r"not of 2025-03-05.*User_Base/NBS_BASE/20250305_NBS_Base.csv"):
        fetch_user_base(SshSource(settings), END, layout.user_base_snapshot(END), layout.staging)
    assert not layout.user_base_snapshot(END).exists()
    # a snapshot written after midnight for the day before is accepted with the day offset
    _place_snapshot(nova, remote, END, END + dt.timedelta(days=1))
    assert SshSource(replace(settings, snapshot_day_offset=1)).extract_user_base(END, tmp_path / "nbs.csv") > 0


# -- nothing left behind ---------------------------------------------------------------------------

def test_nothing_is_left_on_the_host(settings, pg, nova, remote, tmp_path):
    def state():
        relations = pg.sql("SELECT relname FROM pg_class WHERE relnamespace = 'public'::regnamespace "
                           "ORDER BY relname;", "nova")
        files = sorted(str(p.relative_to(remote["reports"].parent)) for d in (remote["reports"], remote["home"])
                       for p in d.rglob("*"))
        return relations, files

    _place_snapshot(nova, remote, START, START)
    before = state()
    source = SshSource(settings)
    for kind in KINDS:
        source.extract_transactions(kind, START, tmp_path / f"{kind}.csv")
    source.extract_user_base(START, tmp_path / "nbs.csv")
    assert state() == before
    # the session is read-only: the extraction could not have created a table even if it tried
    status, _, err = source.run_command(source.psql_command(START),
                                        b"SET default_transaction_read_only = on;\nCREATE TABLE cvas_probe (a int);\n")
    assert status == 3 and b"read-only transaction" in err
    assert state() == before
