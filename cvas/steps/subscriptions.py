"""The subscription lifecycle view as of a date, folded by DuckDB from the previous state and the new days.

How it is built: `subscription_state.sql` turns transaction rows into per-subscription
aggregates that merge exactly (`subscription_state_merge.sql`), and `subscription_view.sql`
turns a state into the 34 columns. View and state are folders of parts
(`subscription_part.sql`): `open-0.parquet` .. `open-3.parquet` hold the Active and Cancelled
subscriptions (by subscription id mod 4), one `deactivated-YYYY-MM.parquet` per deactivation
month holds the rest. A deactivated row no longer changes with the as-of date, so a daily
build merges the newest usable state (`subscription_state/<day>.parquet/`, with its sidecar)
with the state of the days after it and writes only the open parts and the months those
days touch; the other months are hard links to the previous view's and state's files. The
daily cost therefore follows the active base, not the history. The full build computes the
state of every transaction file. Both give the same bytes, part for part. Readers open the
folder as one table (DuckDB `read_parquet` of the folder, pandas, pyarrow, Spark); each part
is sorted by subscription id.

Which subscriptions it holds: every subscription id with at least one ACT or RENO row dated
on or before the as-of date. ACT and RENO are the only events that say a subscription
exists and is billed (its user, CPC and activation); a DCT, CNR or RFND row alone refers to
a subscription whose start lies outside the loaded history, so it has no activation,
revenue or lifetime to report (it appears through `cvas query`). PPD rows are one-off
pay-per-download purchases: they have no subscription id and no lifecycle (no renewal,
deactivation or cancellation), so they are not in the view; `cvas query` shows them per user.

Decisions (legacy rule L8, decisions D2, D3, D4, D6, D9; the SQL is `cvas/sql/subscription_view.sql`):

* as of the end of the date: ACT/RENO/DCT count by `trans_date`, CNR by `cancel_date`, RFND by
  `refnd_date`; events after the date, or without a date, are ignored;
* tie-breakers: the ACT/RENO rows of a subscription are ordered by trans_date, then ACT
  before RENO, then regular before UPGRADE (a free activation and its upgrade in the same
  second), then a hash of the remaining columns; "first" is the minimum of that order and
  "latest"/"current" the maximum. The loader keeps one row per (subscription_id,
  trans_date, kind) and a day's file holds only that day's rows, so the hash never decides
  in practice; it keeps the result deterministic regardless. Exact duplicate rows across
  files would break the unique-id check and fail the build loudly. DCT ties: (trans_date,
  channel_dct); CNR ties: (cancel_date, mode); the greatest wins, nulls last;
* the activation is the earliest regular (non-UPGRADE) ACT: `activation_trans_date` (else
  the first transaction's trans_date) and `activation_revenue` (else 0) are its own, and
  `missing_act_record` is true when there is none. `activation_date`, `_campaign` and
  `_channel` are the first transaction's act_date (request_ts), camp_name and channel, as
  the legacy; `activation_month` is always the month of `activation_date`;
* upgrades (decision D4): `has_upgraded`/`upgrade_date`/`upgraded_to_cpc` come from the latest ACT
  whose channel is UPGRADE and are false/null otherwise; `total_revenue` = activation +
  renewal revenue; `total_revenue_with_upgrade` adds the UPGRADE ACT charges (each ACT is
  counted once);
* status (decision D3): Deactivated if a qualifying DCT (channel null or not UPGRADE, decision D2) exists,
  else Cancelled if a CNR does, else Active; `end_date` follows the same order and
  `lifetime_days` runs from activation_date to end_date, else to the as-of date (decision D6);
* `cpc_list` holds the distinct non-null CPCs in order of first appearance (legacy: a null
  CPC was an element); `cpc_count` is its length; `refund_count` = Σ rfnd_cnt (decision D9) and the
  refund columns count RFND rows with a subscription id (sbnid) only;
* rows without a subscription id (ACT/RENO) have no lifecycle and are left out.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import shutil
import time


from cvas.core.catalogue import writer_lock
from cvas.core.freshness import is_invalidated
from cvas.core.catalogue import days_of
from cvas.core.layout import Layout, as_of_days, transaction_digest
from cvas.core.locking import exclusive
from cvas.core.schemas import VIEW_KINDS
from cvas.steps.subscription_contract import (CHUNK_DAYS, DEFAULT_KEEP_DAYS, OPEN_PARTS, STATUSES,
                                              SUBSCRIPTION_COLUMNS, SUBSCRIPTION_SCHEMA, SubscriptionViewError,
                                              ViewGapError, check_view_file, read_view_meta, read_view_table)
from cvas.steps.subscription_duckdb import connect, register_transactions, view_connection, view_sql
from cvas.steps.subscription_parts import (BUILD_WRITERS, FOLD_WRITERS, chunked_state, fold_state, full_state,
                                           history_span, write_full_view)
from cvas.steps.subscription_publish import (copy_latest, newest_usable_state, outside_retention, prune_views,
                                             publish_latest, publish_parts, record_parts, set_strays_aside,
                                             unusable_view_parts)

log = logging.getLogger(__name__)

def build_subscription_view(layout: Layout, as_of: dt.date, *, keep_days: int = DEFAULT_KEEP_DAYS,
                            threads: int | None = None, full: bool = False,
                            memory_limit: str | None = None, chunk_days: int = CHUNK_DAYS) -> dict:
    """Build and publish the view `subscriptions/as_of=<as_of>/subscriptions.parquet/` (a folder
    of parts, subscription_part.sql) and its state.

    The state as of `as_of` is folded from the newest usable state on or before it and the
    transaction files of the days after it (newest_usable_state, fold_state): only the parts
    those days change are written, the others are hard links to the previous view's and
    state's. Without a usable state, with `full`, or when the view is marked for rebuild, every
    part is built from every transaction file. Both ways give the same bytes. Each
    written view part is checked (check_view_file); the view folder is published, then the
    state's, whose sidecar comes last (publish_parts). Without a usable state over more than
    `chunk_days` days of history, the state is built `chunk_days` at a time (chunked_state: the
    same bytes in bounded memory); `full` builds it in one pass. When `as_of` is the newest published
    as-of, the legacy `Parquet_Data/aggregated/subscriptions.parquet` is replaced with it; views
    and states older than `keep_days` before the newest are then pruned. Publishing, the latest
    copy and pruning hold a lock, so concurrent builds of several as-of dates cannot leave an
    older view as the latest.
    """
    if keep_days < 1:
        raise ValueError(f"subscriptions_keep_days must be at least 1, got {keep_days}")
    t0 = time.monotonic()
    with view_connection(layout, threads, memory_limit) as con:
        with exclusive(writer_lock(layout, "subscriptions")):
            check_no_hole(layout, as_of)
            digest = transaction_digest(layout, as_of, VIEW_KINDS)   # under the lock, before reading: what the build reads
            # a view marked for rebuild (by `cvas verify` or by hand) is not trusted to fold from:
            # it is built from every transaction file, a year at a time as without a state
            rebuild = full or is_invalidated(layout, layout.subscriptions(as_of))
            base = None if rebuild else newest_usable_state(layout, as_of)
            work = layout.staging / f"subscription_state.build.{os.getpid()}"
            work.mkdir(parents=True)
            try:
                carry, writers, passes = None, FOLD_WRITERS, 1
                if base is not None and (as_of - base).days <= chunk_days:
                    # a view part that is not what its sidecar recorded is written again from the
                    # state, never linked forward
                    carry, sources = base, fold_state(con, layout, layout.subscription_state(base), base, as_of,
                                                      rewrite=unusable_view_parts(layout, base))
                elif base is None and (full or history_span(layout, as_of) <= chunk_days):
                    writers, sources = BUILD_WRITERS, full_state(con, layout, as_of, work / "full")
                else:   # a long history without a state, or a fold over a long gap (a backfill after it)
                    sources, passes = chunked_state(con, layout, as_of, work, chunk_days, base)
                rows, status, written = publish_parts(con, layout, as_of, sources, digest, carry=carry,
                                                      folded_from=base, writers=writers)
            finally:
                shutil.rmtree(work, ignore_errors=True)
            is_latest = as_of >= max(as_of_days(layout))
            if is_latest:
                copy_latest(layout)
            pruned = prune_views(layout, keep_days)
    elapsed = time.monotonic() - t0
    log.info("subscription view as of %s: %d subscriptions (%s) in %.2fs, %s%s (%d part(s) written)%s", as_of,
             rows, ", ".join(f"{k} {v}" for k, v in status.items()), elapsed,
             f"folded from the state as of {base}" if base else "built from every transaction file",
             f" in {passes} passes of at most {chunk_days} days" if passes > 1 else "", written,
             "; published as latest" if is_latest else "")
    return {"as_of": str(as_of), "rows": rows, "status": status, "latest": is_latest,
            "folded_from": str(base) if base else None, "passes": passes, "parts_written": written,
            "pruned": [str(d) for d in pruned], "seconds": round(elapsed, 3)}


def missing_days(layout: Layout, as_of: dt.date) -> dict[dt.date, list[str]]:
    """{day: kinds without a published partition} of the days from the first loaded day up to
    `as_of` that lack the partition of a kind the view reads (an empty extract is a partition; a
    kind with no partition at all, on a young data root, reads as empty)."""
    loaded = {kind: days for kind in VIEW_KINDS
              if (days := {d for d in days_of(layout, "transactions", kind) if d <= as_of})}
    every = set().union(*loaded.values())
    if not every:
        return {}
    days = [min(every) + dt.timedelta(days=i) for i in range((as_of - min(every)).days + 1)]
    holes = {day: [k for k in loaded if day not in loaded[k]] for day in days}
    return {day: kinds for day, kinds in holes.items() if kinds}


def check_no_hole(layout: Layout, as_of: dt.date) -> None:
    """Refuse to build the view as of `as_of` over a missing day (ViewGapError, naming it)."""
    holes = missing_days(layout, as_of)
    if holes:
        first, last = min(holes), max(holes)
        more = f" and {len(holes) - 1} more day(s) up to {last}" if len(holes) > 1 else ""
        raise ViewGapError(
            f"the subscription view as of {as_of} needs every day up to it: {first} has no "
            f"{', '.join(holes[first])} transactions loaded{more}. Nothing was published for the view; build "
            f"the missing days first (`cvas backfill --start {first} --end {last}`), then run again")


# the view's API, whichever module of the view holds each
__all__ = [
    "CHUNK_DAYS", "DEFAULT_KEEP_DAYS", "OPEN_PARTS", "STATUSES", "SUBSCRIPTION_COLUMNS", "SUBSCRIPTION_SCHEMA",
    "SubscriptionViewError", "ViewGapError", "build_subscription_view", "check_no_hole", "check_view_file", "connect",
    "missing_days", "newest_usable_state", "outside_retention", "prune_views", "publish_latest", "read_view_meta",
    "read_view_table", "record_parts", "register_transactions", "set_strays_aside", "view_sql", "write_full_view",
]
