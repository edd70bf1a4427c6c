"""Settings from luigi.cfg, and the few objects built from them (layout, source)."""

from __future__ import annotations

import configparser
import os
from pathlib import Path

import luigi
import luigi.configuration
from luigi.task_register import Register

from cvas.core.layout import Layout
from cvas.core.schemas import DEFAULT_EXCLUDED_SERVICES
from cvas.sources import Source


class CvasSettings(luigi.Config):
    """The [cvas] section: where data lives and where it comes from. Read it through `cvas()`."""

    @classmethod
    def get_task_family(cls):
        return "cvas"  # the section name in luigi.cfg

    data_root = luigi.Parameter(default="data", description="Root of every dataset cvas writes")
    source = luigi.ChoiceParameter(choices=["simulated", "directory", "ssh"], default="simulated",
                                   description="Where extracts come from")
    max_reject_ratio = luigi.FloatParameter(default=0.01,
                                            description="A day whose rejected/read ratio exceeds this fails")
    master_xlsx = luigi.Parameter(default="data/nova/Master_CPCs.xlsx", description="The Excel CPC master")
    exclusions = luigi.Parameter(default="data/nova/Users_No_Limits.csv",
                                 description="Users excluded from the counters (msisdn,tmuserid)")
    excluded_services = luigi.Parameter(default=",".join(DEFAULT_EXCLUDED_SERVICES),
                                        description="Comma-separated service-name keywords dropped from exports")
    scheduler = luigi.ChoiceParameter(choices=["local", "central"], default="local",
                                      description="Use luigid (central) or the local scheduler for make targets")
    batch_days = luigi.IntParameter(default=122, description="Days per luigi.build call during a backfill")
    workers = luigi.IntParameter(default=2, description="Luigi workers per build")
    user_base = luigi.BoolParameter(default=True, parsing=luigi.BoolParameter.EXPLICIT_PARSING,
                                    description="Build the NBS user base in daily runs and backfills (the ssh "
                                                "source only serves the current day's snapshot)")
    log_dir = luigi.Parameter(default="var/log",
                              description="One log file per cvas run; files older than 15 days are deleted")
    feed_check = luigi.ChoiceParameter(choices=["warn", "fail"], default="warn",
                                       description="A day flagged by the feed-health check: reported (warn), or "
                                                   "also fails the cvas run that loaded it (fail)")
    duckdb_memory_limit = luigi.Parameter(
        default="1GB", description="Memory DuckDB may use for the subscription view before it spills to the "
                                   "staging area (empty: DuckDB's default, 80% of RAM). Too low a limit fails "
                                   "the view with DuckDB's OutOfMemoryException")
    subscriptions_keep_days = luigi.IntParameter(
        default=7, description="As-of subscription views kept, in days back from the newest (at least 1)")


class simulated_source(luigi.Config):  # noqa: N801
    """The [simulated_source] section: the embedded Nova made by `cvas simulate`."""

    database = luigi.Parameter(default="data/nova/nova.duckdb", description="DuckDB file of the simulated Nova")


class directory_source(luigi.Config):  # noqa: N801
    """The [directory_source] section: legacy CSV drops."""

    root = luigi.Parameter(default="data/drops", description="Folder holding Daily_Data/, Historical_Data/, User_Base/")


class ssh_source(luigi.Config):  # noqa: N801
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


_cached: list = [None, None]


def cvas() -> CvasSettings:  # noqa: N802 - reads as the [cvas] section
    """The [cvas] settings, resolved once per configuration.

    Instantiating a luigi.Config re-reads every parameter from the parser (about 1 ms); tasks
    ask for settings many times each, which made it most of Luigi's per-task overhead. The
    cache follows Luigi's instance cache, which tests and tools clear when they change the
    configuration.
    """
    current = Register._Register__instance_cache
    if _cached[0] is not current or current is None:
        _cached[:] = [current, CvasSettings()]
    return _cached[1]


CHECKOUT_CONFIG = Path(__file__).resolve().parents[1] / "luigi.cfg"   # beside the installed package

# Sections Luigi itself reads (its own Config classes and the ones it reads by hand): their keys
# are Luigi's business and not checked here.
LUIGI_SECTIONS = ("core", "worker", "scheduler", "retcode", "task_history", "email", "smtp", "sendgrid",
                  "batch_email", "execution_summary", "logging", "resources")


class ConfigError(ValueError):
    """Raised when no configuration file is found, or the one found names a section or key that
    nothing reads (a misspelling would otherwise fall back to the default without a word)."""


def find_config(cwd: Path | None = None, checkout: Path = CHECKOUT_CONFIG) -> Path:
    """The one configuration file cvas reads: `LUIGI_CONFIG_PATH` when set, else ./luigi.cfg,
    else the luigi.cfg of the checkout cvas is installed from."""
    named = os.environ.get("LUIGI_CONFIG_PATH")
    if named:
        path = Path(named).expanduser()
        if not path.is_file():
            raise ConfigError(f"LUIGI_CONFIG_PATH names {path}, which is not a file")
        return path.resolve()
    here = (cwd or Path.cwd()) / "luigi.cfg"
    for path in dict.fromkeys((here, checkout)):
        if path.is_file():
            return path.resolve()
    raise ConfigError(f"no configuration found: LUIGI_CONFIG_PATH is not set and neither {here} nor "
                      f"{checkout} exists")


_in_use: list[Path] = []


def use_config() -> Path:
    """Find the configuration (`find_config`) and make it the only file Luigi reads, here and in
    the processes this one starts; returns it. Luigi's parser is reloaded in place (other
    modules hold it) only when Luigi read other files than this one at import; values set in
    this process since (tests' overrides) then stay."""
    path = find_config()
    if _in_use and _in_use[0] == path:
        return path
    parser = luigi.configuration.get_config()
    paths = type(parser)._config_paths
    if {Path(p).resolve() for p in paths if os.path.isfile(p)} != {path}:   # else Luigi read this file alone
        for section in parser.sections():
            parser.remove_section(section)
        for key in list(parser.defaults()):
            parser.remove_option("DEFAULT", key)
        paths[:] = [str(path)]
        try:
            parser.reload()
        except configparser.Error as exc:   # its message spans lines; the file and line are in it
            raise ConfigError(" ".join(str(exc).split())) from None
        Register.clear_instance_cache()
    paths[:] = [str(path)]
    os.environ["LUIGI_CONFIG_PATH"] = str(path)
    _in_use[:] = [path]
    return path


def config_file() -> Path:
    """The configuration file in use (found on first use)."""
    return _in_use[0] if _in_use else use_config()


def config_dir() -> Path:
    """The folder of the configuration in use: relative paths in it are relative to this."""
    return config_file().parent


def config_path(value: str | os.PathLike) -> Path:
    """A path from the configuration: `~` expanded, a relative one taken from the config file's folder."""
    path = Path(value).expanduser()
    return path if path.is_absolute() else config_dir() / path


def log_dir() -> Path:
    return config_path(cvas().log_dir)


def master_xlsx_path() -> Path:
    return config_path(cvas().master_xlsx)


def layout() -> Layout:
    """The layout of the configured data root."""
    return Layout(config_path(cvas().data_root))


def excluded_services() -> tuple[str, ...]:
    return tuple(k.strip().lower() for k in cvas().excluded_services.split(",") if k.strip())


def exclusions_path() -> Path:
    return config_path(cvas().exclusions)


def make_source() -> Source:
    """The configured source."""
    name = cvas().source
    if name == "simulated":
        from cvas.sources.simulated import SimulatedSource

        return SimulatedSource(config_path(simulated_source().database))
    if name == "directory":
        from cvas.sources.directory import DirectorySource

        # the historical-file index is kept between runs, outside every dataset root
        return DirectorySource(config_path(directory_source().root), cache_dir=layout().cache("directory_source"))
    return make_ssh_source()


def ssh_settings():
    """The [ssh_source] section as the ssh source's settings (paths from the config file's folder)."""
    from cvas.sources.ssh_settings import SshSettings

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


def make_ssh_source():
    """The ssh source as configured in [ssh_source]."""
    from cvas.sources.ssh import SshSource

    return SshSource(ssh_settings())
