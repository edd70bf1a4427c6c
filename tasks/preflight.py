"""The preflight of each cvas command: settings, folders, reference files, luigid, days (cvas.ops.preflight)."""

from __future__ import annotations

import argparse
import datetime as dt
import difflib
import re
import sys
from pathlib import Path

import luigi
import luigi.configuration
from luigi.task_register import Register

from tasks.config import LUIGI_SECTIONS, ConfigError
from cvas.ops.preflight import (BAD_CONFIG, MISSING_REFERENCE, PreflightError, check_file, check_not_future,
                                check_range, check_scheduler, check_source_range, check_writable)

# commands that build: every check; commands that only read a range: the settings and the range
BUILDS = {"daily", "backfill", "demo"}
RANGED = {"backfill", "status", "plan", "invalidate", "verify"}


def declared_names() -> dict[str, frozenset[str] | None]:
    """{section: its keys} of every section cvas reads: its luigi.Config classes and the sections of
    its tasks' parameters, each declared once, in its class; Luigi's own sections map to None."""
    # every task class registered (the task modules sit above this one's callers, not below it)
    import tasks.analyst.report, tasks.pipeline, tasks.steps.counters  # noqa: F401, E401
    import tasks.steps.subscriptions, tasks.steps.transactions, tasks.steps.user_base  # noqa: F401, E401

    names: dict[str, frozenset[str] | None] = {}
    for family, cls in Register._get_reg().items():
        if isinstance(cls, type) and cls.__module__.startswith("tasks."):
            names[family] = frozenset(name for name, _ in cls.get_params())
        elif isinstance(cls, type) and cls.__module__.startswith("luigi.") and issubclass(cls, luigi.Config):
            names[family] = None
    names.update({section: None for section in LUIGI_SECTIONS})
    return names


_SECTION = re.compile(r"\[(?P<name>[^\]]+)\]")
_KEY = re.compile(r"(?P<key>[^=:\s][^=:]*?)\s*[=:]")


def check_names(path: Path) -> None:
    """Raise ConfigError naming the first section or key of `path` that nothing reads, its line
    and the closest declared name."""
    names = declared_names()
    section = None
    for number, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
        if not line.strip() or line.lstrip().startswith(("#", ";")) or line[:1].isspace():
            continue   # blank, comment, or the continuation of a value
        where = f"{path}, line {number}"
        if found := _SECTION.match(line):
            section = found["name"].strip()
            if section != "DEFAULT" and section not in names:
                raise ConfigError(f"{where}: unknown section [{section}]"
                                  + _closest(section, names, "cvas reads [cvas], [simulated_source], "
                                                             "[directory_source], [ssh_source] and Luigi's own"))
        elif (found := _KEY.match(line)) and section is not None:
            keys, key = names.get(section), found["key"].strip()
            if keys is not None and key.replace("-", "_") not in keys:
                raise ConfigError(f"{where}: unknown key {key!r} in [{section}]"
                                  + _closest(key, keys, f"[{section}] has {', '.join(sorted(keys))}"))


def _closest(name: str, valid, otherwise: str) -> str:
    match = difflib.get_close_matches(name, sorted(valid), n=1, cutoff=0.6)
    return f"; did you mean {match[0]!r}?" if match else f" ({otherwise})"



def day_argument(text: str) -> dt.date:
    """A day given on the command line (`YYYY-MM-DD`), as argparse's `type`."""
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date (YYYY-MM-DD)") from None


def check_config() -> Path:
    """Find the configuration (tasks.config.find_config) and check its section and key names;
    returns its path. Every cvas command, and `luigi --module tasks…`, starts with it."""
    from tasks.config import ConfigError, use_config

    try:
        path = use_config()
        check_names(path)
    except ConfigError as exc:
        raise PreflightError(str(exc), BAD_CONFIG) from None
    return path


def luigi_cli_preflight() -> None:
    """For `luigi --module tasks…`: the checks every cvas command makes first (configuration,
    settings, luigid when [cvas] scheduler = central), each failure one line on stderr and the
    cvas exit code; then the scheduler of [cvas] scheduler, as `cvas` uses: with `local`, the
    luigi command needs no `--local-scheduler` (unless [core] local_scheduler says otherwise)."""
    try:
        path = check_config()
        check_settings()
        _check_central()
    except PreflightError as exc:
        print(f"luigi: error: {exc}", file=sys.stderr)
        sys.exit(exc.code)
    print(f"configuration: {path}", file=sys.stderr)
    from tasks.config import cvas

    parser = luigi.configuration.get_config()
    if cvas().scheduler == "local" and not parser.has_option("core", "local_scheduler"):
        if not parser.has_section("core"):
            parser.add_section("core")
        parser.set("core", "local_scheduler", "true")


def _check_central() -> None:
    from tasks.config import cvas

    if cvas().scheduler == "central":
        core = luigi.configuration.get_config()
        check_scheduler(core.get("core", "scheduler_host", "localhost"), core.getint("core", "scheduler_port", 8082))


def check_settings() -> None:
    """Every [cvas] and source setting parses (a bad value is one line, not Luigi's chained traceback)."""
    from tasks.config import cvas, directory_source, simulated_source

    for section in (cvas, simulated_source, directory_source):
        try:
            section()
        except Exception as exc:  # luigi raises ValueError chained to the parameter's own error
            cause = exc.__cause__ or exc
            name = section.__name__ if section is not cvas else "cvas"
            key = re.search(r"'(\w+)'", str(exc))
            raise PreflightError(f"invalid setting in {_config_file()}: [{name}] {key[1] if key else ''}: {cause}",
                                 BAD_CONFIG) from None
    from cvas.steps.subscription_duckdb import checked_memory_limit

    try:
        checked_memory_limit(cvas().duckdb_memory_limit or "1GB")
    except ValueError as exc:
        raise PreflightError(f"invalid setting in {_config_file()}: [cvas] duckdb_memory_limit: {exc}",
                             BAD_CONFIG) from None


def _config_file() -> str:
    from tasks.config import config_file

    return str(config_file())


def _days(command: str, args) -> tuple[dt.date, dt.date] | None:
    if command == "daily":
        return (args.date, args.date)
    start, end = getattr(args, "start", None), getattr(args, "end", None)
    return (start, end) if start and end else None


def preflight(command: str, args, today: dt.date | None = None) -> None:
    """Raise PreflightError (one line, an exit code) when `command` cannot work as configured."""
    check_config()
    if command in RANGED:
        check_range(args.start, args.end)
    if command not in BUILDS and command not in RANGED:
        return
    check_settings()
    if command not in BUILDS:
        return
    from tasks.config import cvas, layout, log_dir

    check_writable(layout().root, "[cvas] data_root")
    check_writable(log_dir(), "[cvas] log_dir")
    _check_central()
    days = _days(command, args)
    if days is None:  # the demo makes its own Nova, master and exclusions
        return
    check_not_future(*days, today or dt.date.today())
    from tasks.config import config_file, exclusions_path, master_xlsx_path

    simulated = cvas().source == "simulated"
    check_file(master_xlsx_path(), "the CPC master", "[cvas] master_xlsx", config_file(), simulated)
    check_file(exclusions_path(), "the exclusion list", "[cvas] exclusions", config_file(), simulated)
    check_source_range(*days, _source_range(), cvas().source)


def _source_range() -> tuple[dt.date, dt.date] | None:
    """(first, last) day the configured source holds, when it can tell without a server."""
    from cvas.sources import SourceError
    from tasks.config import cvas, make_source

    name = cvas().source
    if name == "ssh":
        return None  # Nova answers for any past day; asking would open a connection
    source = make_source()
    try:
        if name == "simulated":
            return source.simulated_range()
        from cvas.core.schemas import KINDS

        days = set().union(*(source.available_days(k) for k in KINDS))
    except SourceError as exc:
        raise PreflightError(str(exc), MISSING_REFERENCE) from None
    if not days:
        raise PreflightError(f"the directory source {source.root} holds no day (no Daily_Data/ folder, "
                             "no Historical_Data/ file)", MISSING_REFERENCE)
    return min(days), max(days)
