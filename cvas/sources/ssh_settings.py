"""The ssh source's settings (from [ssh_source]) and the errors it raises."""

from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cvas.sources import SourceError


class SshSourceError(SourceError):
    """Base of the ssh source's errors. Messages name the cause; never PII nor secrets."""


class TransientError(SshSourceError):
    """The connection failed in a way a later attempt may not (refused, reset, timed out, lost
    mid-transfer). Retried with bounded backoff; raised once the attempts are spent."""


class HostKeyError(SshSourceError):
    """The host key is unknown to the configured known_hosts, or differs from the recorded
    one (possible man-in-the-middle). Never retried."""


class AuthenticationError(SshSourceError):
    """The private key cannot be read (missing, encrypted without passphrase, wrong
    passphrase) or the server refused it. Never retried."""


class CommandTimeout(SshSourceError):
    """The remote command ran longer than `command_timeout`. Not retried: the same query
    would take as long again on the production database."""


class RemoteCommandError(SshSourceError):
    """The remote command failed outside SQL: psql missing, cannot connect to the database,
    killed. Never retried."""


class RemoteSqlError(RemoteCommandError):
    """psql stopped on an SQL error (ON_ERROR_STOP, exit status 3): missing table, bad
    query, read-only violation. Never retried."""


class IncompleteExtractError(SshSourceError):
    """The bytes received are not the complete extract psql reported: row count mismatch,
    missing count, or a first line that is not the expected CSV header."""


class StaleSnapshotError(SshSourceError):
    """Nova's NBS snapshot was not written on the requested day: Nova only serves the
    current snapshot, so a past day must come from a directory drop."""


# -- settings ----------------------------------------------------------------------------

@dataclass(frozen=True)
class SshSettings:
    """Everything the ssh source needs; built from [ssh_source] by tasks.config.ssh_settings."""

    host: str
    user: str
    key_file: Path
    known_hosts: Path
    port: int = 22
    key_passphrase_env: str = ""          # name of the environment variable holding it, if any
    accept_new_host_key: bool = False
    psql_path: str = "/usr/local/pgsql/bin/psql"
    database: str = "postgres"
    db_user: str = "postgres"
    db_host: str = ""                     # empty: psql's default (local socket)
    db_port: int = 0                      # 0: psql's default
    connect_timeout: float = 15.0
    command_timeout: float = 1800.0
    remote_dir: str = "/opt/postgres/lvas_reports"
    nbs_file: str = "NBS_Base.csv"
    snapshot_timezone: str = "UTC"
    snapshot_day_offset: int = 0
    attempts: int = 3
    backoff_seconds: float = 2.0
    backoff_max_seconds: float = 30.0
    compress: bool = False

    def __post_init__(self) -> None:
        for name in ("host", "user", "psql_path", "database", "db_user", "remote_dir", "nbs_file"):
            if not str(getattr(self, name)).strip():
                raise ValueError(f"[ssh_source] {name} is not set")
        if "/" in self.nbs_file:
            raise ValueError("[ssh_source] nbs_file is a file name inside remote_dir, not a path")
        if not 0 < self.port < 65536 or not 0 <= self.db_port < 65536:
            raise ValueError("[ssh_source] port and db_port must be valid TCP ports")
        if self.attempts < 1:
            raise ValueError("[ssh_source] attempts must be at least 1")
        if self.connect_timeout <= 0 or self.command_timeout <= 0:
            raise ValueError("[ssh_source] connect_timeout and command_timeout must be positive")
        if self.key_passphrase_env and not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", self.key_passphrase_env):
            raise ValueError("[ssh_source] key_passphrase_env must be the name of an environment variable")
        try:
            ZoneInfo(self.snapshot_timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"[ssh_source] snapshot_timezone {self.snapshot_timezone!r} is not a time zone") from None
        object.__setattr__(self, "key_file", Path(self.key_file).expanduser())
        object.__setattr__(self, "known_hosts", Path(self.known_hosts).expanduser())

    @property
    def nbs_path(self) -> str:
        return posixpath.join(self.remote_dir, self.nbs_file)


# -- helpers -----------------------------------------------------------------------------
