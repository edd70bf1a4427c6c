"""The `cvas` command: simulate, run a day, backfill a range, demo."""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import sys
from pathlib import Path

from cvas.schemas import KINDS


def _date(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date (YYYY-MM-DD)") from None


def _yesterday() -> dt.date:
    return dt.date.today() - dt.timedelta(days=1)


# Commands that build or change data log to a run file; the others only to the console.
_RUN_LOGGED = {"daily", "backfill", "demo", "invalidate", "adopt", "simulate", "verify"}


def _setup_logging(command: str, verbose: bool) -> None:
    if command not in _RUN_LOGGED:
        logging.basicConfig(level=logging.INFO if verbose else logging.WARNING,
                            format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        return
    import luigi.configuration

    from cvas.logs import setup_run_logging
    from tasks.config import cvas

    setup_run_logging(Path(cvas().log_dir), command, verbose)
    # else luigi.build adds its own untimestamped stderr handler
    luigi.configuration.get_config().set("core", "no_configure_logging", "true")


def cmd_simulate(args) -> int:
    from cvas.simulate import simulate

    info = simulate(Path(args.out), args.start, args.days, new_per_day=args.new_per_day, seed=args.seed)
    print(f"simulated Nova {info.start}..{info.end} (seed {info.seed}, {info.new_per_day} new/day) in {args.out}")
    if args.postgres:
        from cvas.nova_pg import load_into_postgres

        counts = load_into_postgres(info.database, args.postgres)
        print("loaded into PostgreSQL: " + ", ".join(f"{t} {n:,}" for t, n in counts.items()))
    return 0


def cmd_daily(args) -> int:
    from tasks.pipeline import run_daily

    return run_daily(args.date or _yesterday())


def cmd_backfill(args) -> int:
    from tasks.pipeline import run_backfill

    return run_backfill(args.start, args.end, batch_days=args.batch_days, only_missing=args.only_missing)


def cmd_status(args) -> int:
    from cvas.status import format_grid, grid, grid_json
    from tasks.config import exclusions_path, layout

    cells = grid(layout(), args.start, args.end, exclusions_path())
    print(grid_json(cells) if args.json else format_grid(cells))
    return 0


def cmd_plan(args) -> int:
    from cvas.status import format_plan
    from tasks.pipeline import planned_steps

    print(format_plan(planned_steps(args.start, args.end, only_missing=args.only_missing)))
    return 0


def cmd_invalidate(args) -> int:
    from cvas.status import invalidate
    from tasks.config import layout

    marked = invalidate(layout(), args.start, args.end, dataset=args.dataset, kinds=args.kind)
    from tasks.config import cvas

    if marked and cvas().scheduler == "central":
        # luigid ignores a rerun within stable_done_cooldown_secs of DONE: wait that out
        from tasks.luigid import wait_out_done_cooldown
        from tasks.pipeline import task_ids_for_range

        wait_out_done_cooldown(task_ids_for_range(args.start, args.end))
    print(f"marked {len(marked)} output(s) for rebuild; they stay readable until `cvas backfill "
          f"--start {args.start} --end {args.end}` replaces them")
    return 0


def cmd_summary(args) -> int:
    from cvas.summary import format_summary, summarize
    from tasks.config import layout

    print(format_summary(summarize(layout())))
    return 0


def cmd_query(args) -> int:
    from cvas.query import format_investigation, investigate
    from tasks.config import layout

    # a manual tool: the report (with msisdn/tmuserid) goes to the terminal, never to a log
    inv = investigate(layout(), subscription_id=args.subscription_id, tmuserid=args.tmuserid, msisdn=args.msisdn,
                      as_of=args.as_of)
    print(format_investigation(inv))
    return 0


def cmd_demo(args) -> int:
    from cvas.simulate import simulate
    from cvas.summary import format_summary, summarize
    from tasks.config import cvas, layout, simulated_source
    from tasks.pipeline import run_backfill

    end = _yesterday()
    start = end - dt.timedelta(days=args.days - 1)
    if cvas().source != "simulated":
        print("make demo runs on the simulated source; set [cvas] source = simulated", file=sys.stderr)
        return 2
    out = Path(simulated_source().database).parent
    print(f"simulating Nova for {start}..{end} at {args.new_per_day} new subscriptions/day into {out}")
    simulate(out, start, args.days, new_per_day=args.new_per_day, seed=args.seed)
    code = run_backfill(start, end)
    print()
    print(format_summary(summarize(layout())))
    return code


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="cvas", description="CVAS Beyond Data pipeline")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress at INFO level")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("simulate", help="write a simulated Nova (DuckDB), Excel master and exclusion list")
    p.add_argument("--out", default="data/nova", help="output folder")
    p.add_argument("--start", type=_date, required=True, help="first simulated day")
    p.add_argument("--days", type=int, default=30, help="number of days")
    p.add_argument("--new-per-day", type=int, default=300, help="new subscriptions per day (the scale knob)")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--postgres", metavar="DSN", default=None,
                   help="also load the simulated Nova into this PostgreSQL (conninfo or URI given to psql -d)")
    p.set_defaults(func=cmd_simulate)

    p = sub.add_parser("daily", help="build one day (default: yesterday)")
    p.add_argument("--date", type=_date, default=None)
    p.set_defaults(func=cmd_daily)

    p = sub.add_parser("backfill", help="build every missing or stale day of a range, inclusive")
    p.add_argument("--start", type=_date, required=True)
    p.add_argument("--end", type=_date, required=True)
    p.add_argument("--batch-days", type=int, default=None, help="days per luigi invocation")
    p.add_argument("--only-missing", action="store_true", help="build missing outputs only, not stale ones")
    p.set_defaults(func=cmd_backfill)

    p = sub.add_parser("status", help="per-day x dataset coverage grid from storage")
    p.add_argument("--start", type=_date, required=True)
    p.add_argument("--end", type=_date, required=True)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_status)

    p = sub.add_parser("plan", help="explain what a backfill of the range would build and why")
    p.add_argument("--start", type=_date, required=True)
    p.add_argument("--end", type=_date, required=True)
    p.add_argument("--only-missing", action="store_true")
    p.set_defaults(func=cmd_plan)

    p = sub.add_parser("invalidate", help="mark outputs and their downstream for rebuild by the next backfill")
    p.add_argument("--start", type=_date, required=True)
    p.add_argument("--end", type=_date, required=True)
    p.add_argument("--dataset", default="transactions",
                   choices=["raw", "transactions", "counters", "user_base_snapshot", "user_base"])
    p.add_argument("--kind", action="append", choices=list(KINDS), help="repeat for several kinds (default: all)")
    p.set_defaults(func=cmd_invalidate)

    p = sub.add_parser("summary", help="print what is built and where")
    p.set_defaults(func=cmd_summary)

    p = sub.add_parser("query", help="one subscription's or user's view rows, transaction timeline and totals "
                                     "(prints personal data: terminal use only)")
    key = p.add_mutually_exclusive_group(required=True)
    key.add_argument("--subscription-id", help="a subscription id")
    key.add_argument("--tmuserid", help="a platform user id")
    key.add_argument("--msisdn", help="a phone number (34 is prefixed when absent)")
    p.add_argument("--as-of", type=_date, default=None,
                   help="use the view as of this day and ignore later events (default: the latest view)")
    p.set_defaults(func=cmd_query)

    p = sub.add_parser("demo", help="simulate ~30 days, build them and print a summary")
    p.add_argument("--days", type=int, default=30)
    p.add_argument("--new-per-day", type=int, default=500)
    p.add_argument("--seed", type=int, default=7)
    p.set_defaults(func=cmd_demo)

    args = parser.parse_args(argv)
    _setup_logging(args.command, args.verbose)
    try:
        return args.func(args)
    except (ValueError, OSError, RuntimeError) as exc:  # our named errors derive from these
        logging.getLogger("cvas").error("cvas %s failed: %s", args.command, exc)
        print(f"cvas {args.command}: error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
