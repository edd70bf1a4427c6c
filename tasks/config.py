"""Settings from luigi.cfg, and the few objects built from them (layout, source)."""

from __future__ import annotations

import os
from pathlib import Path

import luigi
import luigi.configuration
from luigi.task_register import Register

from cvas.core.layout import Layout, migrate
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
    batch_days = luigi.IntParameter(default=31, description="Days per luigi.build call during a backfill")
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


def config_dir() -> Path:
    """The folder of the configuration in use: relative paths in it are relative to this.

    `LUIGI_CONFIG_PATH` when set, else the last luigi.cfg Luigi found on its search path
    (the one whose values win), else the working directory.
    """
    named = os.environ.get("LUIGI_CONFIG_PATH")
    if named:
        return Path(named).expanduser().resolve().parent
    found = [Path(p) for p in getattr(luigi.configuration.get_config(), "_config_paths", []) if Path(p).is_file()]
    return found[-1].resolve().parent if found else Path.cwd()


def config_path(value: str | os.PathLike) -> Path:
    """A path from the configuration: `~` expanded, a relative one taken from the config file's folder."""
    path = Path(value).expanduser()
    return path if path.is_absolute() else config_dir() / path


def log_dir() -> Path:
    return config_path(cvas().log_dir)


def master_xlsx_path() -> Path:
    return config_path(cvas().master_xlsx)


_migrated: set[Path] = set()


def layout() -> Layout:
    """The layout of the configured data root (renamed dataset folders are moved once per
    process, see `cvas.core.layout.migrate`)."""
    lay = Layout(config_path(cvas().data_root))
    if lay.root not in _migrated:
        migrate(lay)
        _migrated.add(lay.root)
    return lay


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
        return DirectorySource(config_path(directory_source().root), cache_dir=layout().root / ".cache" / "directory_source")
    from tasks.ssh import make_ssh_source  # the ssh source has its own section

    return make_ssh_source()
