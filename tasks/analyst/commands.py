"""The analyst commands of `cvas`: query, report, revenue, refunds, ltv, check-userbase (their
parsers and what each runs)."""

from __future__ import annotations

import datetime as dt
import sys
from pathlib import Path

from tasks.preflight import day_argument


def cmd_query(args) -> int:
    from cvas.analyst.query import format_investigation, investigate
    from tasks.config import cvas, layout

    # a manual tool: the report (with msisdn/tmuserid) goes to the terminal, never to a log
    inv = investigate(layout(), subscription_id=args.subscription_id, tmuserid=args.tmuserid, msisdn=args.msisdn,
                      as_of=args.as_of, keep_days=cvas().subscriptions_keep_days)
    print(format_investigation(inv))
    return 0


def _print_table(table, csv_path: str | None) -> None:
    from cvas.analyst.analysis import format_table, write_csv

    print(format_table(table))
    for note in table.notes:
        print(f"note: {note}", file=sys.stderr)
    if csv_path:
        write_csv(table, Path(csv_path))
        print(f"written: {csv_path}", file=sys.stderr)


def cmd_report(args) -> int:
    from cvas.analyst.report import build_report
    from tasks.config import excluded_services, exclusions_path, layout

    # renders from what is built (it builds nothing): `cvas daily` first for a new day
    info = build_report(layout(), args.date, excluded_services=excluded_services(), exclusions=exclusions_path(),
                        out=Path(args.out) if args.out else None,
                        generated_at=dt.datetime.now().replace(microsecond=0))
    print(f"report {args.date}: {info['path']} ({info['charts']} charts, {info['counter_days']} counter days and "
          f"{info['user_base_days']} user-base days in the window)")
    return 0


def cmd_revenue(args) -> int:
    from cvas.analyst.analysis import revenue_by_service_month
    from tasks.config import layout

    _print_table(revenue_by_service_month(Path(args.file) if args.file else layout().counters_service,
                                          args.service, args.month), args.csv)
    return 0


def cmd_refunds(args) -> int:
    from cvas.analyst.analysis import refunds_by_cpc
    from cvas.steps.master import read_master_csv
    from tasks.config import layout

    lay = layout()
    _print_table(refunds_by_cpc(lay, args.month, read_master_csv(lay.master_cpc)), args.csv)
    return 0


def cmd_ltv(args) -> int:
    from cvas.analyst.analysis import AnalysisInputError, lifetime_value
    from cvas.analyst.query import missing_view
    from cvas.steps.master import read_master_csv
    from tasks.config import cvas, layout

    lay = layout()
    view = lay.subscriptions(args.as_of) if args.as_of else lay.subscriptions_latest
    if args.as_of and not view.exists():
        raise AnalysisInputError(missing_view(lay, args.as_of, cvas().subscriptions_keep_days))
    print(f"subscription view: {view}", file=sys.stderr)
    _print_table(lifetime_value(view, read_master_csv(lay.master_cpc), args.service, args.month), args.csv)
    return 0


def cmd_check_userbase(args) -> int:
    from cvas.analyst.analysis import check_user_base, format_table, mismatches, write_csv
    from cvas.steps.master import read_master_csv
    from tasks.config import layout

    lay = layout()
    table = check_user_base(lay.user_base_export("service"), lay.user_base_export("cpc"),
                            read_master_csv(lay.master_cpc), args.date, args.service)
    bad = mismatches(table)
    print(f"user base {args.date}: {len(table.rows)} service(s) checked, {len(bad.rows)} mismatch(es)")
    if bad.rows:
        print(format_table(bad))
    for note in table.notes:
        print(f"note: {note}", file=sys.stderr)
    if args.csv:
        write_csv(table, Path(args.csv))
        print(f"written: {args.csv}", file=sys.stderr)
    return 1 if bad.rows else 0


def _csv_option(p, help_text: str = "also write the table as CSV") -> None:
    p.add_argument("--csv", default=None, metavar="FILE", help=help_text)


def add_analyst_commands(sub, common) -> None:
    p = sub.add_parser("query", parents=[common], help="one subscription's or user's view rows, transaction "
                                                       "timeline and totals (prints personal data: terminal use only)")
    key = p.add_mutually_exclusive_group(required=True)
    key.add_argument("--subscription-id", help="a subscription id")
    key.add_argument("--tmuserid", help="a platform user id")
    key.add_argument("--msisdn", help="a phone number (34 is prefixed when absent)")
    p.add_argument("--as-of", type=day_argument, default=None,
                   help="use the view as of this day and ignore later events (default: the latest view)")
    p.set_defaults(func=cmd_query)

    p = sub.add_parser("report", parents=[common], help="render the day's HTML report (KPIs, 90-day trends, "
                                                        "data health) from what is built")
    p.add_argument("--date", type=day_argument, required=True, help="the report day")
    p.add_argument("--out", default=None, help="write here instead of <data_root>/reports/<date>.html")
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("revenue", parents=[common],
                       help="revenue per service and month from Counters_Service.csv, with a TOTAL column")
    p.add_argument("--service", nargs="+", default=None, help="service names (exact, after strip), in display "
                                                               "order (default: every service, by name)")
    p.add_argument("--month", nargs="+", required=True, help="months YYYY-MM")
    p.add_argument("--file", default=None, help="a Counters_Service.csv (default: the one under the data root)")
    _csv_option(p)
    p.set_defaults(func=cmd_revenue)

    p = sub.add_parser("refunds", parents=[common],
                       help="refunds per month and CPC from the RFND partitions (legacy rfnd_analysis)")
    p.add_argument("--month", nargs="+", required=True, help="months YYYY-MM")
    _csv_option(p)
    p.set_defaults(func=cmd_refunds)

    p = sub.add_parser("ltv", parents=[common],
                       help="mean lifetime and LTV of a service's subscriptions activated in a month")
    p.add_argument("--service", required=True, help="service name as in MASTERCPC.csv (case-insensitive)")
    p.add_argument("--month", nargs="+", required=True, help="activation months YYYY-MM")
    p.add_argument("--as-of", type=day_argument, default=None, help="use the view as of this day (default: the latest)")
    _csv_option(p)
    p.set_defaults(func=cmd_ltv)

    p = sub.add_parser("check-userbase", parents=[common], help="per service, user_base_by_service sums equal the "
                                                                "sums of its CPCs in user_base_by_cpc (exit 1 on a "
                                                                "mismatch)")
    p.add_argument("--date", type=day_argument, required=True, help="the user-base day to check")
    p.add_argument("--service", nargs="+", default=None, help="check only these services")
    _csv_option(p, "write every checked service as CSV")
    p.set_defaults(func=cmd_check_userbase)
