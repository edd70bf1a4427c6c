"""The `ssh` source: production Nova, reached by SSH (paramiko) to its host where `psql` runs."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import logging
import os
import select
import shlex
import socket
import time
from pathlib import Path
from zoneinfo import ZoneInfo

import paramiko

from cvas.core.schemas import KINDS, SPECS
from cvas.sources.psql_copy import (ROWS_RE, STDERR_LIMIT, CsvRecordCounter, copy_script, first_error,
                                    safe_message)
from cvas.sources.ssh_settings import (AuthenticationError, CommandTimeout, HostKeyError, IncompleteExtractError,
                                       RemoteCommandError, RemoteSqlError, SshSettings, SshSourceError,
                                       StaleSnapshotError, TransientError)
from cvas.sql import extract_query

log = logging.getLogger(__name__)

_CHUNK = 1 << 20
# Long digit runs in a server message may be msisdn/tmuserid values (PII): never repeated.


def fingerprint(key: paramiko.PKey) -> str:
    """The OpenSSH-style SHA256 fingerprint of a public key."""
    return "SHA256:" + base64.b64encode(hashlib.sha256(key.asbytes()).digest()).decode().rstrip("=")


def _day(value) -> dt.date:
    """A validated day: a date, or text in YYYY-MM-DD form."""
    if isinstance(value, dt.datetime):
        raise ValueError("a day is a date, not a datetime")
    if isinstance(value, dt.date):
        return value
    return dt.date.fromisoformat(str(value))


def _kind(kind: str) -> str:
    if kind not in KINDS:
        raise ValueError(f"unknown transaction kind {kind!r}; expected one of {', '.join(KINDS)}")
    return kind


class _HostKeyPolicy(paramiko.MissingHostKeyPolicy):
    """Refuse hosts absent from known_hosts, unless accepting new hosts is configured:
    then the key is appended to the known_hosts file (trust on first use, explicitly)."""

    def __init__(self, settings: SshSettings) -> None:
        self.settings = settings

    def missing_host_key(self, client, hostname, key):
        known = self.settings.known_hosts
        if not self.settings.accept_new_host_key:
            raise HostKeyError(
                f"host key of {hostname} ({key.get_name()} {fingerprint(key)}) is not in {known}: refused. "
                f"Verify the fingerprint with Nova's administrators, then add it (ssh-keyscan -p "
                f"{self.settings.port} {self.settings.host} >> {known}) or set [ssh_source] "
                f"accept_new_host_key = true for one run")
        known.parent.mkdir(parents=True, exist_ok=True)
        line = paramiko.hostkeys.HostKeyEntry([hostname], key).to_line()
        fd = os.open(known, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        with os.fdopen(fd, "a", encoding="utf-8") as fh:
            fh.write(line)
        client.get_host_keys().add(hostname, key.get_name(), key)
        log.warning("accepted new host key of %s (%s %s) and recorded it in %s",
                    hostname, key.get_name(), fingerprint(key), known)


# -- the source ---------------------------------------------------------------------------

class SshSource:
    """Nova in production: psql over SSH for the transactions, SFTP for the NBS snapshot.

    Each extract opens its own connection (no state survives a fork of a luigi worker),
    retries transient failures with bounded exponential backoff and fails at once on
    host-key, authentication, SQL and timeout errors.
    """

    name = "ssh"

    def __init__(self, settings: SshSettings, *, sleep=time.sleep) -> None:
        self.settings = settings
        self._sleep = sleep

    # -- public API -----------------------------------------------------------------------
    def extract_transactions(self, kind: str, day: dt.date, dest: Path) -> int:
        """Stream `kind`'s extract for `day` from Nova into `dest`; returns the data rows.

        The extraction SQL is the one the simulated source runs (cvas/sql/extract_<kind>.sql),
        sent on stdin inside `COPY (…) TO STDOUT WITH CSV HEADER`; the day is bound as the
        psql variables start_ts/end_ts (half-open window). Fails unless psql exits 0 and
        its reported row count equals the rows received.
        """
        kind, day = _kind(kind), _day(day)
        sql, variables = extract_query(kind)
        script = copy_script(sql, int(self.settings.command_timeout * 1000))
        command = self.psql_command(day, variables)
        header = ",".join(SPECS[kind].names)
        what = f"{kind} {day}"
        return self._with_retries(what, lambda client: self._stream_copy(client, command, script, Path(dest),
                                                                         header, what))

    def extract_user_base(self, day: dt.date, dest: Path) -> int:
        """Copy Nova's current NBS snapshot to `dest` by SFTP if it is `day`'s; returns data rows.

        The snapshot's day is the date of its modification time in `snapshot_timezone`,
        minus `snapshot_day_offset` days; any other day is refused (StaleSnapshotError).
        """
        day = _day(day)
        return self._with_retries(f"NBS snapshot {day}", lambda client: self._fetch_snapshot(client, day, Path(dest)))

    def psql_command(self, day: dt.date, variables: dict[str, str] | None = None) -> str:
        """The remote command line for one day's extract, with the extract's own psql `variables`
        (cvas.sql.extract_query): every word shell-quoted."""
        s = self.settings
        day = _day(day)
        argv = [s.psql_path, "-X", "-q", "--no-password", "-v", "ON_ERROR_STOP=1",
                "-d", s.database, "-U", s.db_user]
        if s.db_host:
            argv += ["-h", s.db_host]
        if s.db_port:
            argv += ["-p", str(s.db_port)]
        argv += ["-v", f"start_ts={day.isoformat()}", "-v", f"end_ts={(day + dt.timedelta(days=1)).isoformat()}"]
        for name, value in sorted((variables or {}).items()):
            argv += ["-v", f"{name}={value}"]
        argv += ["-f", "-"]
        return shlex.join(argv)

    def run_command(self, command: str, stdin: bytes = b"", timeout: float | None = None) -> tuple[int, bytes, bytes]:
        """Run one command on the Nova host (for checks and benchmarks); returns (status, stdout, stderr)."""
        def attempt(client):
            chan = self._open_channel(client)
            try:
                chan.exec_command(command)
                if stdin:
                    chan.sendall(stdin)
                chan.shutdown_write()
                out, err = bytearray(), bytearray()
                self._pump(chan, client, lambda b: out.extend(b), err, timeout or self.settings.command_timeout,
                           "command")
                return chan.exit_status, bytes(out), bytes(err)
            finally:
                chan.close()
        return self._with_retries("command", attempt)

    # -- connection ---------------------------------------------------------------------
    def _load_key(self) -> paramiko.PKey:
        s = self.settings
        passphrase = None
        if s.key_passphrase_env:
            value = os.environ.get(s.key_passphrase_env)
            if value is None:
                raise AuthenticationError(
                    f"environment variable {s.key_passphrase_env} (named by key_passphrase_env) is not set")
            passphrase = value.encode()
        if not s.key_file.is_file():
            raise AuthenticationError(f"private key file {s.key_file} does not exist")
        try:
            return paramiko.PKey.from_path(s.key_file, passphrase=passphrase)
        except (TypeError, ValueError, paramiko.SSHException) as exc:
            encrypted = isinstance(exc, paramiko.PasswordRequiredException) or "encrypted" in str(exc).lower()
            if passphrase is None and encrypted:
                raise AuthenticationError(
                    f"private key {s.key_file} is encrypted: name the environment variable holding its "
                    f"passphrase in [ssh_source] key_passphrase_env") from None
            reason = "wrong passphrase or unsupported key format" if passphrase else "unsupported key format"
            raise AuthenticationError(f"cannot read private key {s.key_file}: {reason}") from None
        except OSError as exc:
            raise AuthenticationError(f"cannot read private key {s.key_file}: {exc.strerror}") from None

    def _connect(self) -> paramiko.SSHClient:
        s = self.settings
        pkey = self._load_key()
        client = paramiko.SSHClient()
        try:
            if s.known_hosts.exists():
                client.load_host_keys(str(s.known_hosts))
            elif not s.accept_new_host_key:
                raise HostKeyError(f"known_hosts file {s.known_hosts} does not exist; cannot verify {s.host}")
            client.set_missing_host_key_policy(_HostKeyPolicy(s))
            client.connect(s.host, port=s.port, username=s.user, pkey=pkey, look_for_keys=False,
                           allow_agent=False, timeout=s.connect_timeout, banner_timeout=s.connect_timeout,
                           auth_timeout=s.connect_timeout, channel_timeout=s.connect_timeout,
                           compress=s.compress)
        except SshSourceError:
            client.close()
            raise
        except paramiko.BadHostKeyException as exc:
            client.close()
            raise HostKeyError(
                f"host key of {s.host}:{s.port} CHANGED: it offers {exc.key.get_name()} {fingerprint(exc.key)}, "
                f"{s.known_hosts} records {exc.expected_key.get_name()} {fingerprint(exc.expected_key)}. "
                f"Refused (possible man-in-the-middle); if the host was reinstalled, replace its line "
                f"after verifying the new fingerprint") from None
        except paramiko.AuthenticationException:
            client.close()
            raise AuthenticationError(
                f"{s.host}:{s.port} refused key authentication of user {s.user} with {s.key_file}") from None
        except (socket.timeout, TimeoutError):
            client.close()
            raise TransientError(f"connecting to {s.host}:{s.port} timed out after {s.connect_timeout:g}s") from None
        except paramiko.ssh_exception.NoValidConnectionsError:
            client.close()
            raise TransientError(f"connection to {s.host}:{s.port} refused") from None
        except (OSError, EOFError, paramiko.SSHException) as exc:
            client.close()
            raise TransientError(f"connecting to {s.host}:{s.port} failed: {safe_message(str(exc) or type(exc).__name__)}"
                                 ) from None
        return client

    def _open_channel(self, client: paramiko.SSHClient) -> paramiko.Channel:
        try:
            # a large window and packets keep paramiko's per-packet overhead off the transfer
            return client.get_transport().open_session(window_size=16 * 2**20, max_packet_size=2**18,
                                                       timeout=self.settings.connect_timeout)
        except (OSError, EOFError, paramiko.SSHException) as exc:
            raise TransientError(f"opening a session on {self.settings.host} failed: "
                                 f"{safe_message(str(exc) or type(exc).__name__)}") from None

    def _with_retries(self, what: str, action):
        s = self.settings
        for attempt in range(1, s.attempts + 1):
            client = None
            try:
                client = self._connect()
                return action(client)
            except TransientError as exc:
                if attempt == s.attempts:
                    raise TransientError(f"{what}: {exc} (gave up after {s.attempts} attempts)") from None
                delay = min(s.backoff_max_seconds, s.backoff_seconds * 2 ** (attempt - 1))
                log.warning("%s: %s; attempt %d of %d, retrying in %.1fs", what, exc, attempt, s.attempts, delay)
                self._sleep(delay)
            finally:
                if client is not None:
                    client.close()
        raise AssertionError("unreachable")

    # -- transfers ----------------------------------------------------------------------
    def _pump(self, chan: paramiko.Channel, client: paramiko.SSHClient, sink, err: bytearray,
              timeout: float, what: str) -> None:
        """Move the channel's stdout into `sink` and stderr into `err` until the command ends."""
        deadline = time.monotonic() + timeout
        transport = client.get_transport()
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                chan.close()
                raise CommandTimeout(f"{what}: the remote command did not finish within "
                                     f"command_timeout = {timeout:g}s")
            select.select([chan], [], [], min(remaining, 1.0))
            while chan.recv_stderr_ready():
                chunk = chan.recv_stderr(_CHUNK)
                if len(err) < STDERR_LIMIT:
                    err.extend(chunk[: STDERR_LIMIT - len(err)])
            while chan.recv_ready():
                chunk = chan.recv(_CHUNK)
                if not chunk:
                    break
                sink(chunk)
            if chan.exit_status_ready() and not chan.recv_ready() and not chan.recv_stderr_ready():
                if chan.eof_received or chan.closed or not transport.is_active():
                    return
            if not transport.is_active() and not chan.recv_ready() and not chan.recv_stderr_ready():
                return

    def _stream_copy(self, client, command: str, script: str, dest: Path, header: str, what: str) -> int:
        s = self.settings
        t0 = time.monotonic()
        chan = self._open_channel(client)
        counter = CsvRecordCounter()
        err = bytearray()
        received = 0
        try:
            chan.exec_command(command)
            try:
                chan.sendall(script.encode("utf-8"))
                chan.shutdown_write()
            except OSError:
                # the command ended before reading its script (no psql there, a login script
                # that exits): its exit status and stderr, read below, say why; a lost
                # connection leaves no exit status and is retried as one
                pass
            with open(dest, "wb") as out:
                def sink(chunk: bytes) -> None:
                    nonlocal received
                    out.write(chunk)
                    counter.feed(chunk)
                    received += len(chunk)
                self._pump(chan, client, sink, err, s.command_timeout, what)
            status = chan.exit_status if chan.exit_status_ready() else -1
        except (OSError, EOFError, paramiko.SSHException) as exc:
            raise TransientError(f"{what}: transfer from {s.host} failed: {safe_message(str(exc) or type(exc).__name__)}"
                                 ) from None
        finally:
            chan.close()
        stderr = err.decode("utf-8", "replace")
        if status == -1:
            raise TransientError(f"{what}: the connection to {s.host} was lost during the transfer "
                                 f"({received} bytes received, no exit status)")
        if status != 0:
            raise self._command_error(status, stderr, what)
        found = ROWS_RE.findall(stderr)
        if not found:
            raise IncompleteExtractError(
                f"{what}: psql exited 0 but reported no row count; psql on the Nova host must be "
                f"version 14 or later (COPY … \\g)")
        reported = int(found[-1])
        if bytes(counter.first_line).rstrip(b"\r").decode("utf-8", "replace") != header:
            raise IncompleteExtractError(
                f"{what}: the first line received is not the expected CSV header ({header}); "
                f"does a login script on {s.host} print to stdout?")
        rows = counter.records - 1
        if not counter.complete or rows != reported:
            raise IncompleteExtractError(f"{what}: psql reported {reported} rows but {rows} complete rows arrived "
                                         f"({received} bytes)")
        elapsed = time.monotonic() - t0
        log.info("ssh extract %s: %d rows, %d bytes in %.2fs (%.1f MB/s)", what, rows, received, elapsed,
                 received / 1e6 / max(elapsed, 1e-9))
        return rows

    def _command_error(self, status: int, stderr: str, what: str) -> SshSourceError:
        s = self.settings
        message = first_error(stderr)
        if status == 3:
            return RemoteSqlError(f"{what}: SQL error on Nova: {message}")
        if status in (126, 127):
            return RemoteCommandError(f"{what}: cannot run {s.psql_path} on {s.host} (exit {status}): {message}")
        if status == 2:
            return RemoteCommandError(f"{what}: psql could not reach database {s.database} as {s.db_user} "
                                      f"(exit 2): {message}")
        if "invalid command" in message:
            return RemoteCommandError(f"{what}: psql on {s.host} is too old (version 14 or later needed): {message}")
        return RemoteCommandError(f"{what}: psql on {s.host} failed (exit {status}): {message}")

    def _fetch_snapshot(self, client: paramiko.SSHClient, day: dt.date, dest: Path) -> int:
        s = self.settings
        path = s.nbs_path
        try:
            sftp = client.open_sftp()
        except (OSError, EOFError, paramiko.SSHException) as exc:
            raise TransientError(f"opening SFTP on {s.host} failed: {safe_message(str(exc) or type(exc).__name__)}") from None
        try:
            try:
                st = sftp.stat(path)
            except FileNotFoundError:
                raise SshSourceError(f"Nova has no NBS snapshot at {path}") from None
            except PermissionError:
                raise SshSourceError(f"no permission to read {path} on {s.host}") from None
            tz = ZoneInfo(s.snapshot_timezone)
            modified = dt.datetime.fromtimestamp(st.st_mtime, tz)
            snapshot_day = modified.date() - dt.timedelta(days=s.snapshot_day_offset)
            if snapshot_day != day:
                raise StaleSnapshotError(
                    f"Nova's NBS snapshot {path} was modified {modified:%Y-%m-%d %H:%M} {s.snapshot_timezone}, "
                    f"so it is the snapshot of {snapshot_day}, not of {day}. Nova only serves its current "
                    f"snapshot: a past day cannot be fetched from it. Supply {day} from a directory "
                    f"instead: put the file at <root>/User_Base/NBS_BASE/{day:%Y%m%d}_NBS_Base.csv and "
                    f"run that day with [cvas] source = directory ([directory_source] root = <root>)")
            counter = CsvRecordCounter()
            size = 0
            with sftp.open(path, "rb") as remote, open(dest, "wb") as out:
                remote.prefetch(st.st_size)
                while True:
                    chunk = remote.read(_CHUNK)
                    if not chunk:
                        break
                    out.write(chunk)
                    counter.feed(chunk)
                    size += len(chunk)
            after = sftp.stat(path)
        except (OSError, EOFError, paramiko.SSHException) as exc:
            raise TransientError(f"SFTP transfer of {path} failed: {safe_message(str(exc) or type(exc).__name__)}") from None
        finally:
            sftp.close()
        if (after.st_mtime, after.st_size) != (st.st_mtime, st.st_size) or size != st.st_size:
            raise TransientError(f"{path} changed during the transfer (being rewritten on Nova?)")
        records = counter.records + (0 if counter.complete else 1)   # a last line without newline
        if records < 1 or counter.in_quotes:
            raise IncompleteExtractError(f"{path} is empty or ends inside a quoted field")
        rows = records - 1
        log.info("ssh NBS snapshot %s: %d rows, %d bytes", day, rows, size)
        return rows
