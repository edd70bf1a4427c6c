"""The `cvas` command: simulate, run a day, backfill a range, demo."""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import os
import signal
import sys
import time
from pathlib import Path

from cvas.core.catalogue import invalidatable
from cvas.core.logs import FILE_ONLY
from cvas.core.schemas import KINDS
from tasks.analyst.commands import add_analyst_commands
from tasks.preflight import day_argument


def _yesterday() -> dt.date:
    return dt.date.today() - dt.timedelta(days=1)


# Commands whose output names the configuration file; the others say it on stderr.
_PRINTS_CONFIG = {"summary", "demo"}
# Commands that build or change data log to a run file; the others only to the console.
_RUN_LOGGED = {"daily", "backfill", "demo", "invalidate", "adopt", "simulate", "verify"}


def _setup_logging(command: str, verbose: bool) -> Path | None:
    """Console logging, and for commands that change data a run file; returns that file."""
    from cvas.core.logs import start_run

    start_run()  # one id for this command, inherited by its worker processes
    if command not in _RUN_LOGGED:
        logging.basicConfig(level=logging.INFO if verbose else logging.WARNING,
                            format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        return None
    import luigi.configuration

    from cvas.core.logs import setup_run_logging
    from tasks.config import config_file, log_dir

    path = setup_run_logging(log_dir(), command, verbose)
    logging.getLogger("cvas").info("configuration %s", config_file())
    # else luigi.build adds its own untimestamped stderr handler
    luigi.configuration.get_config().set("core", "no_configure_logging", "true")
    return path


def cmd_simulate(args) -> int:
    from cvas.simulator.simulate import simulate
    from tasks.config import config_path, simulated_source

    if args.out is None:   # where [simulated_source] database expects it
        args.out = config_path(simulated_source().database).parent
    info = simulate(Path(args.out), args.start, args.days, new_per_day=args.new_per_day, seed=args.seed)
    print(f"simulated Nova {info.start}..{info.end} (seed {info.seed}, {info.new_per_day} new/day) in {args.out}")
    if args.postgres:
        from cvas.simulator.nova_pg import load_into_postgres

        counts = load_into_postgres(info.database, args.postgres)
        print("loaded into PostgreSQL: " + ", ".join(f"{t} {n:,}" for t, n in counts.items()))
    return 0


def cmd_daily(args) -> int:
    from tasks.pipeline import run_daily

    t0 = time.monotonic()
    code = run_daily(args.date)
    return _finish(args, code, time.monotonic() - t0, f"cvas daily --date {args.date}")


def cmd_backfill(args) -> int:
    from tasks.pipeline import run_backfill

    t0 = time.monotonic()
    code = run_backfill(args.start, args.end, batch_days=args.batch_days, only_missing=args.only_missing)
    return _finish(args, code, time.monotonic() - t0, f"cvas backfill --start {args.start} --end {args.end}")


def _finish(args, code: int, seconds: float, retry: str) -> int:
    """End a build: the failure summary (stderr and the run log), or the daily one-line success."""
    from cvas.ops.run_summary import format_failures, mark_failed_landing_copies
    from tasks import outcome
    from tasks.config import layout

    done = outcome.current
    code = _feed_health(done.loaded, code)
    if code != 0 and (done.failures or done.scheduling):
        mark_failed_landing_copies(layout(), done.failures)
        text = format_failures(args.command, done.failures, done.scheduling, getattr(args, "log_path", None), retry)
        print(text, file=sys.stderr)
    elif code == 0 and args.command == "daily":
        print(f"{args.date}: {_built_text(done.built)} ({seconds:.1f}s)")
    return code


def _feed_health(loaded: list, code: int) -> int:
    """Print the loads this command flagged; with [cvas] feed_check = fail they fail the run."""
    from cvas.ops.preflight import FEED_FLAGGED
    from cvas.steps.feed_health import read_health
    from tasks.config import cvas, layout

    lay = layout()
    flagged = [h for day, kind in sorted(set(loaded)) if (h := read_health(lay, kind, day)) is not None]
    for health in flagged:
        logging.getLogger("cvas.feed_health").info("flagged %s %s: %s", health.date, health.kind, health.describe())
        print(f"feed health: {health.date} {health.kind} flagged: {health.describe()}", file=sys.stderr)
    if flagged and cvas().feed_check == "fail":
        print(f"{len(flagged)} flagged feed day(s) and [cvas] feed_check = fail: exit {FEED_FLAGGED} (the data is "
              "published; check the extracts, then `cvas invalidate --dataset raw` and rerun to refetch)",
              file=sys.stderr)
        return code or FEED_FLAGGED
    return code


def _built_text(task_ids: list[str]) -> str:
    families: dict[str, int] = {}
    for task_id in task_ids:
        family = task_id.split("_", 1)[0]
        if family != "DailyPipeline":
            families[family] = families.get(family, 0) + 1
    if not families:
        return "already built, nothing to do"
    return "built " + ", ".join(f"{f} x{n}" if n > 1 else f for f, n in families.items())


def cmd_status(args) -> int:
    from cvas.core.catalogue import grid_columns, strays
    from cvas.ops.status import format_grid, format_outputs, format_strays, grid, grid_json, outputs_as_of
    from tasks.config import layout
    from tasks.datasets import settings, switches

    if args.failed:
        from cvas.core.failures import format_last_failures, last_failures

        print(format_last_failures(last_failures(layout(), args.start, args.end)))
        return 0
    cells = grid(layout(), args.start, args.end, settings(), grid_columns(switches()))
    if args.json:
        print(grid_json(cells))
    else:
        print(format_grid(cells))
        print(format_outputs(args.end, outputs_as_of(layout(), args.end, settings(), switches())))
        print(format_strays(layout(), strays(layout())))
    return 0


def cmd_plan(args) -> int:
    from cvas.ops.status import format_plan, format_plan_summary
    from tasks.pipeline import planned_outputs, planned_steps

    steps = planned_steps(args.start, args.end, only_missing=args.only_missing)
    steps += planned_outputs(args.end, steps)
    print(format_plan_summary(steps) if args.summary else format_plan(steps))
    return 0


def _wait_for_luigid_cooldown(marked) -> None:
    """After marking outputs for rebuild: luigid ignores a rerun within its DONE cooldown."""
    from tasks.config import cvas

    if marked and cvas().scheduler == "central":
        from tasks.ops.luigid import wait_before_rerun

        wait_before_rerun(tell=_say)


def _say(text: str) -> None:
    """A line for the person running the command (stderr) and the run log."""
    logging.getLogger("cvas").info("%s", text)
    print(text, file=sys.stderr)


def cmd_invalidate(args) -> int:
    from cvas.ops.status import invalidate
    from tasks.config import layout

    marked = invalidate(layout(), args.start, args.end, dataset=args.dataset, kinds=args.kind)
    print(f"marked {len(marked)} output(s) for rebuild; they stay readable until `cvas backfill "
          f"--start {args.start} --end {args.end}` replaces them")
    _wait_for_luigid_cooldown(marked)
    return 0


def cmd_adopt(args) -> int:
    from cvas.ops.adopt import adopt, format_reconciliation
    from tasks.config import layout

    counts = adopt(Path(args.legacy_root), layout(), progress=print)
    print(format_reconciliation(counts))
    return 0


def cmd_summary(args) -> int:
    from cvas.ops.summary import format_summary, summarize
    from tasks.config import config_file, layout, log_dir

    print(format_summary(summarize(layout(), log_dir(), config_file())))
    return 0




def cmd_demo(args) -> int:
    from cvas.simulator.simulate import simulate
    from cvas.ops.summary import format_summary, summarize
    from tasks.config import config_file, config_path, cvas, layout, log_dir, simulated_source
    from tasks.pipeline import run_backfill

    end = _yesterday()
    start = end - dt.timedelta(days=args.days - 1)
    if cvas().source != "simulated":
        print("make demo runs on the simulated source; set [cvas] source = simulated", file=sys.stderr)
        return 2
    out = config_path(simulated_source().database).parent
    print(f"simulating Nova for {start}..{end} at {args.new_per_day} new subscriptions/day into {out}")
    simulate(out, start, args.days, new_per_day=args.new_per_day, seed=args.seed)
    t0 = time.monotonic()
    code = _finish(args, run_backfill(start, end), time.monotonic() - t0, "cvas demo")
    print()
    print(format_summary(summarize(layout(), log_dir(), config_file())))
    return code














def cmd_verify(args) -> int:
    from cvas.ops.verify import format_report, mark_findings, verify_range
    from tasks.config import layout

    lay = layout()
    report = verify_range(lay, args.start, args.end)
    marked = [] if args.no_repair else mark_findings(lay, report)
    _wait_for_luigid_cooldown(marked)
    print(format_report(lay, report, marked))
    return 0 if report.ok else 1


_RANGE_HELP = ("first day, inclusive (YYYY-MM-DD)", "last day, inclusive (YYYY-MM-DD)")
DEFAULT_DAYS = 30   # the range of `status` and `plan` when none is given: the last 30 days


def _range(p, *, required: bool = True) -> None:
    if required:
        p.add_argument("--start", type=day_argument, required=True, help=_RANGE_HELP[0])
        p.add_argument("--end", type=day_argument, required=True, help=_RANGE_HELP[1])
        return
    p.add_argument("--start", type=day_argument, default=None,
                   help=f"{_RANGE_HELP[0]}; default: {DEFAULT_DAYS - 1} days before --end")
    p.add_argument("--end", type=day_argument, default=None, help=f"{_RANGE_HELP[1]}; default: yesterday")


def _default_range(args) -> None:
    """Fill an omitted --start/--end of `status` and `plan`: the 30 days up to yesterday."""
    if getattr(args, "end", "") is None:
        args.end = _yesterday()
    if getattr(args, "start", "") is None:
        args.start = args.end - dt.timedelta(days=DEFAULT_DAYS - 1)




def _add_build_commands(sub, common) -> None:
    p = sub.add_parser("simulate", parents=[common],
                       help="write a simulated Nova (DuckDB), Excel master and exclusion list")
    p.add_argument("--out", default=None, help="output folder (default: the folder of [simulated_source] "
                                               "database, data/nova beside luigi.cfg)")
    p.add_argument("--start", type=day_argument, required=True, help="first simulated day")
    p.add_argument("--days", type=int, default=30, help="number of days (default: 30)")
    p.add_argument("--new-per-day", type=int, default=300, help="new subscriptions per day, the scale knob "
                                                                "(default: 300)")
    p.add_argument("--seed", type=int, default=7, help="random seed: the same seed gives the same Nova (default: 7)")
    p.add_argument("--postgres", metavar="DSN", default=None,
                   help="also load the simulated Nova into this PostgreSQL (conninfo or URI given to psql -d)")
    p.set_defaults(func=cmd_simulate)

    p = sub.add_parser("daily", parents=[common], help="build one day (default: yesterday)")
    p.add_argument("--date", type=day_argument, default=None, help="the day to build (default: yesterday)")
    p.set_defaults(func=cmd_daily)

    p = sub.add_parser("backfill", parents=[common], help="build every missing or stale day of a range, inclusive")
    _range(p)
    p.add_argument("--batch-days", type=int, default=None,
                   help="days per luigi invocation (default: [cvas] batch_days, 122)")
    p.add_argument("--only-missing", action="store_true", help="build missing outputs only, not stale ones")
    p.set_defaults(func=cmd_backfill)

    p = sub.add_parser("demo", parents=[common], help="simulate ~30 days up to yesterday, build them and print "
                                                      "a summary")
    p.add_argument("--days", type=int, default=30, help="days to simulate and build (default: 30)")
    p.add_argument("--new-per-day", type=int, default=500, help="new subscriptions per day (default: 500)")
    p.add_argument("--seed", type=int, default=7, help="random seed of the simulation (default: 7)")
    p.set_defaults(func=cmd_demo)


def _add_ops_commands(sub, common) -> None:
    p = sub.add_parser("status", parents=[common], help="per-day x dataset coverage grid from storage")
    _range(p, required=False)
    p.add_argument("--json", action="store_true", help="print the grid as JSON (state and reason per cell)")
    p.add_argument("--failed", action="store_true", help="list each day's last failed build and why, "
                                                         "instead of the grid")
    p.set_defaults(func=cmd_status)

    p = sub.add_parser("plan", parents=[common], help="explain what a backfill of the range would build and why")
    _range(p, required=False)
    p.add_argument("--only-missing", action="store_true", help="plan missing outputs only, not stale ones")
    p.add_argument("--summary", action="store_true", help="count the outputs to build per dataset and reason "
                                                          "instead of listing them (for long ranges)")
    p.set_defaults(func=cmd_plan)

    p = sub.add_parser("invalidate", parents=[common],
                       help="mark outputs and their downstream for rebuild by the next backfill")
    _range(p)
    p.add_argument("--dataset", default="transactions", choices=invalidatable(),
                   help="the dataset to mark (default: transactions)")
    p.add_argument("--kind", action="append", choices=list(KINDS), help="repeat for several kinds (default: all)")
    p.set_defaults(func=cmd_invalidate)

    p = sub.add_parser("verify", parents=[common],
                       help="check every output of a range against its provenance sidecar and contract; "
                            "mark damaged ones for rebuild by the next backfill (exit 1 on a problem)")
    _range(p)
    p.add_argument("--no-repair", action="store_true", help="report only: mark nothing for rebuild")
    p.set_defaults(func=cmd_verify)

    p = sub.add_parser("adopt", parents=[common],
                       help="take a legacy Parquet_Data/ + Historical_Data/ tree into the per-day layout")
    p.add_argument("legacy_root", help="the legacy project root")
    p.set_defaults(func=cmd_adopt)

    p = sub.add_parser("summary", parents=[common], help="print what is built and where")
    p.set_defaults(func=cmd_summary)




def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("cvas")
    except PackageNotFoundError:
        return "unknown (not installed)"


def build_parser() -> argparse.ArgumentParser:
    """The `cvas` argument parser; `-v` is accepted before or after the command."""
    verbose_help = "show progress (INFO) and tracebacks on the console, not only in the run log"
    parser = argparse.ArgumentParser(prog="cvas", description="CVAS Beyond Data pipeline")
    parser.add_argument("-v", "--verbose", action="store_true", help=verbose_help)
    parser.add_argument("--version", action="version", version=f"cvas {_version()}", help="print the version")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS, help=verbose_help)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_build_commands(sub, common)
    _add_ops_commands(sub, common)
    add_analyst_commands(sub, common)
    return parser


def main(argv: list[str] | None = None) -> int:
    from cvas.ops.preflight import PreflightError
    from tasks import outcome
    from tasks.preflight import preflight

    args = build_parser().parse_args(argv)
    if args.command == "daily" and args.date is None:
        args.date = _yesterday()
    _default_range(args)
    try:
        preflight(args.command, args)
    except PreflightError as exc:
        print(f"cvas {args.command}: error: {exc}", file=sys.stderr)
        return exc.code
    if args.command not in _PRINTS_CONFIG:
        from tasks.config import config_file

        print(f"configuration: {config_file()}", file=sys.stderr)
    args.log_path = _setup_logging(args.command, args.verbose)
    outcome.reset()
    try:
        code = args.func(args)
        sys.stdout.flush()   # within the try: a reader gone (`| head`) raises here, not at exit
        return code
    except BrokenPipeError:   # `cvas query … | head`: the reader has what it wanted
        return _stdout_closed()
    except (ValueError, OSError, RuntimeError) as exc:  # our named errors derive from these
        if args.log_path:   # the console gets the line below, once
            logging.getLogger("cvas").error("cvas %s failed: %s", args.command, exc, extra={FILE_ONLY: True})
        print(f"cvas {args.command}: error: {exc}", file=sys.stderr)
        return 1


def _stdout_closed() -> int:
    """End quietly when stdout's reader has gone: what is left to print goes nowhere (also at
    exit, when Python flushes stdout), and the exit code is a shell's for SIGPIPE."""
    os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return 128 + signal.SIGPIPE


if __name__ == "__main__":
    sys.exit(main())
