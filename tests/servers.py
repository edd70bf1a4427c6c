"""Real servers for tests: an OpenSSH sshd and a PostgreSQL cluster on loopback, in temp dirs."""

from __future__ import annotations

import contextlib
import getpass
import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

SSHD = "/usr/sbin/sshd"
INSTALL_HINT = "run scripts/ensure_test_deps.sh (as root) to install openssh-server and PostgreSQL"


class ServerError(RuntimeError):
    """A test server could not be started; the message says why and how to fix it."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_port(port: int, proc: subprocess.Popen | None, log: Path, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise ServerError(f"server exited with {proc.returncode}: {log.read_text(errors='replace')[-2000:]}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return
        time.sleep(0.05)
    raise ServerError(f"nothing listens on 127.0.0.1:{port} after {timeout}s: "
                      f"{log.read_text(errors='replace')[-2000:]}")


def _pg_bin(name: str) -> str:
    found = shutil.which(name) or next(iter(sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), reverse=True)),
                                       None)
    if not found:
        raise ServerError(f"PostgreSQL's {name} is not installed; {INSTALL_HINT}")
    return found


# -- PostgreSQL ------------------------------------------------------------------------------

@dataclass
class PostgresServer:
    """A throwaway cluster: trust auth, superuser `postgres`, unix socket in its own dir + 127.0.0.1."""

    root: Path
    port: int
    psql: str
    run_as: list[str]                 # prefix running a command as the cluster's owner
    pg_ctl: str
    socket_dir: Path = field(init=False)

    def __post_init__(self) -> None:
        self.socket_dir = self.root / "sock"

    @property
    def data(self) -> Path:
        return self.root / "data"

    def args(self, database: str = "postgres") -> list[str]:
        """psql connection options for this cluster."""
        return ["-h", str(self.socket_dir), "-p", str(self.port), "-U", "postgres", "-d", database]

    def sql(self, text: str, database: str = "postgres") -> str:
        """Run SQL through psql; returns unaligned, tuples-only output."""
        proc = subprocess.run([self.psql, "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", *self.args(database)],
                              input=text.encode(), capture_output=True)
        if proc.returncode:
            raise ServerError(f"psql failed: {proc.stderr.decode(errors='replace')}")
        return proc.stdout.decode()

    def stop(self) -> None:
        subprocess.run([*self.run_as, self.pg_ctl, "-D", str(self.data), "-m", "immediate", "-w", "stop"],
                       capture_output=True)
        shutil.rmtree(self.root, ignore_errors=True)


def _postgres_owner() -> tuple[list[str], int, int]:
    """(command prefix, uid, gid) to run the cluster as: postgres refuses to run as root."""
    if os.geteuid() != 0:
        return [], os.getuid(), os.getgid()
    try:
        pw = pwd.getpwnam("postgres")
    except KeyError:
        subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", "postgres"],
                       check=True, capture_output=True)
        pw = pwd.getpwnam("postgres")
    return ["runuser", "-u", "postgres", "--"], pw.pw_uid, pw.pw_gid


def start_postgres() -> PostgresServer:
    """initdb a cluster in a fresh temp dir (outside pytest's 0700 dirs, so `postgres` can enter it) and start it."""
    initdb, pg_ctl, psql = _pg_bin("initdb"), _pg_bin("pg_ctl"), _pg_bin("psql")
    run_as, uid, gid = _postgres_owner()
    root = Path(tempfile.mkdtemp(prefix="cvas-pg-"))
    os.chmod(root, 0o755)
    (root / "sock").mkdir()
    for p in (root, root / "sock"):
        os.chown(p, uid, gid)
    server = PostgresServer(root, free_port(), psql, run_as, pg_ctl)
    log = root / "postgres.log"
    try:
        out = subprocess.run([*run_as, initdb, "-D", str(server.data), "-U", "postgres", "-A", "trust", "-E", "UTF8",
                              "--locale=C", "--no-sync"], capture_output=True)
        if out.returncode:
            raise ServerError(f"initdb failed: {out.stderr.decode(errors='replace')}")
        options = (f"-k {server.socket_dir} -p {server.port} -c listen_addresses=127.0.0.1 -c fsync=off "
                   f"-c synchronous_commit=off -c full_page_writes=off")
        out = subprocess.run([*run_as, pg_ctl, "-D", str(server.data), "-l", str(log), "-w", "-t", "30",
                              "-o", options, "start"], capture_output=True)
        if out.returncode:
            raise ServerError(f"pg_ctl start failed: {out.stderr.decode(errors='replace')} "
                              f"{log.read_text(errors='replace') if log.exists() else ''}")
    except BaseException:
        server.stop()
        raise
    return server


# -- OpenSSH -----------------------------------------------------------------------------------

def keygen(path: Path, passphrase: str = "") -> Path:
    """An ed25519 key pair at `path` / `path.pub`."""
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", passphrase, "-C", "cvas-test", "-f", str(path)],
                   check=True, capture_output=True)
    return path


@dataclass
class SshServer:
    """An sshd on 127.0.0.1 accepting one client key for the current user; SFTP enabled."""

    root: Path
    port: int
    user: str
    client_key: Path
    host_key: Path
    proc: subprocess.Popen

    @property
    def host_key_line(self) -> str:
        """The known_hosts line for this server."""
        kind, b64 = self.host_key.with_suffix(".pub").read_text().split()[:2]
        return f"[127.0.0.1]:{self.port} {kind} {b64}\n"

    def write_known_hosts(self, path: Path) -> Path:
        path.write_text(self.host_key_line)
        return path

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        shutil.rmtree(self.root, ignore_errors=True)


def start_sshd() -> SshServer:
    """Start `sshd -D -e -f <tmp config>` on a free loopback port; the config works as root
    (StrictModes off, root by key only, no PAM, own pid file and authorized_keys)."""
    if not os.access(SSHD, os.X_OK):
        raise ServerError(f"{SSHD} is missing; {INSTALL_HINT}")
    if shutil.which("ssh-keygen") is None:
        raise ServerError(f"ssh-keygen is missing; {INSTALL_HINT}")
    if os.geteuid() == 0:
        os.makedirs("/run/sshd", mode=0o755, exist_ok=True)   # sshd's privilege separation dir
    root = Path(tempfile.mkdtemp(prefix="cvas-sshd-"))
    os.chmod(root, 0o755)
    host_key = keygen(root / "host_ed25519")
    client_key = keygen(root / "client_ed25519")
    (root / "authorized_keys").write_text(client_key.with_suffix(".pub").read_text())
    # The sessions' HOME: the test user's own shell start-up files (a slow ~/.bashrc) stay out.
    (root / "home").mkdir()
    port = free_port()
    config = root / "sshd_config"
    config.write_text("\n".join([
        f"Port {port}",
        "ListenAddress 127.0.0.1",
        f"HostKey {host_key}",
        f"PidFile {root / 'sshd.pid'}",
        f"AuthorizedKeysFile {root / 'authorized_keys'}",
        "StrictModes no",
        "PermitRootLogin prohibit-password",
        "UsePAM no",
        "PubkeyAuthentication yes",
        "PasswordAuthentication no",
        "KbdInteractiveAuthentication no",
        "AllowAgentForwarding no",
        "AllowTcpForwarding no",
        "X11Forwarding no",
        "PrintMotd no",
        "MaxStartups 100:30:200",
        "MaxSessions 50",
        "LogLevel ERROR",
        "Subsystem sftp internal-sftp",
        f"SetEnv HOME={root / 'home'}",
        "",
    ]))
    log = root / "sshd.log"
    with open(log, "wb") as fh:
        proc = subprocess.Popen([SSHD, "-D", "-e", "-f", str(config)], stdout=fh, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL)
    server = SshServer(root, port, getpass.getuser(), client_key, host_key, proc)
    try:
        _wait_port(port, proc, log)
    except BaseException:
        server.stop()
        raise
    return server
