"""The [ssh_source] section of luigi.cfg and the ssh source built from it."""

from __future__ import annotations

import luigi

from cvas.sources.ssh import SshSettings, SshSource
from tasks.config import config_path


class ssh_source(luigi.Config):  # noqa: N801 - the section name in luigi.cfg is [ssh_source]
    """The [ssh_source] section: production Nova, PostgreSQL reached by SSH to its host.

    Key authentication only; the host key must be in `known_hosts` unless
    `accept_new_host_key` is set. Secrets never go here: `key_passphrase_env` names the
    environment variable that holds the key's passphrase.
    """

    host = luigi.Parameter(default="", description="Nova host name or address")
    port = luigi.IntParameter(default=22, description="SSH port of the Nova host")
    user = luigi.Parameter(default="", description="SSH user on the Nova host")
    key_file = luigi.Parameter(default="~/.ssh/id_ed25519", description="Private key file (key auth only)")
    key_passphrase_env = luigi.Parameter(default="", description="Name of the environment variable holding "
                                                                 "the key's passphrase; empty if unencrypted")
    known_hosts = luigi.Parameter(default="~/.ssh/known_hosts", description="known_hosts file the host key "
                                                                              "is verified against")
    accept_new_host_key = luigi.BoolParameter(default=False,
                                              description="Accept and record the key of a host absent from "
                                                          "known_hosts (never a changed key)")
    psql_path = luigi.Parameter(default="/usr/local/pgsql/bin/psql", description="psql on the Nova host (≥ 14)")
    database = luigi.Parameter(default="postgres", description="Nova database name")
    db_user = luigi.Parameter(default="postgres", description="Database user psql connects as")
    db_host = luigi.Parameter(default="", description="psql -h on the Nova host; empty: local socket")
    db_port = luigi.IntParameter(default=0, description="psql -p on the Nova host; 0: psql's default")
    connect_timeout = luigi.FloatParameter(default=15.0, description="Seconds for TCP connect, SSH handshake "
                                                                     "and authentication")
    command_timeout = luigi.FloatParameter(default=1800.0, description="Seconds one extract may run (also the "
                                                                       "server-side statement_timeout)")
    remote_dir = luigi.Parameter(default="/opt/postgres/lvas_reports", description="Nova's report directory "
                                                                                   "holding the NBS snapshot")
    nbs_file = luigi.Parameter(default="NBS_Base.csv", description="The NBS snapshot's file name in remote_dir")
    snapshot_timezone = luigi.Parameter(default="UTC", description="Time zone the snapshot's mtime is read in")
    snapshot_day_offset = luigi.IntParameter(default=0, description="Days between the snapshot's mtime date "
                                                                    "and the day it describes")
    attempts = luigi.IntParameter(default=3, description="Attempts per extract on transient failures")
    backoff_seconds = luigi.FloatParameter(default=2.0, description="First retry delay; doubles each retry")
    backoff_max_seconds = luigi.FloatParameter(default=30.0, description="Longest retry delay")
    compress = luigi.BoolParameter(default=False, description="SSH zlib compression (for slow links)")


def ssh_settings() -> SshSettings:
    c = ssh_source()
    return SshSettings(
        host=c.host, port=c.port, user=c.user, key_file=config_path(c.key_file), key_passphrase_env=c.key_passphrase_env,
        known_hosts=config_path(c.known_hosts), accept_new_host_key=c.accept_new_host_key, psql_path=c.psql_path,
        database=c.database, db_user=c.db_user, db_host=c.db_host, db_port=c.db_port,
        connect_timeout=c.connect_timeout, command_timeout=c.command_timeout, remote_dir=c.remote_dir,
        nbs_file=c.nbs_file, snapshot_timezone=c.snapshot_timezone, snapshot_day_offset=c.snapshot_day_offset,
        attempts=c.attempts, backoff_seconds=c.backoff_seconds, backoff_max_seconds=c.backoff_max_seconds,
        compress=c.compress,
    )


def make_ssh_source() -> SshSource:
    """The ssh source as configured in [ssh_source]."""
    return SshSource(ssh_settings())
