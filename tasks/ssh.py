"""The ssh source built from the [ssh_source] section (declared in tasks/config.py)."""

from __future__ import annotations

from cvas.sources.ssh import SshSettings, SshSource
from tasks.config import config_path, ssh_source


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
