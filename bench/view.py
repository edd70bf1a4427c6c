"""The subscription view timed against the same query run bare in DuckDB (a `make bench` figure)."""

from __future__ import annotations

import datetime as dt
import os
import shutil
import time

from cvas.core.layout import Layout
from cvas.core.schemas import VIEW_KINDS
from cvas.steps.subscription_duckdb import connect, copy_view_from_state, make_state, register_transactions
from cvas.steps.subscriptions import build_subscription_view, read_view_meta


def bench_view(layout: Layout, as_of: dt.date, *, repeat: int = 3, threads: int | None = None) -> dict:
    """Time the whole view build against the same query run bare in DuckDB.

    `bare_s`: a fresh connection, the same views and SQL, `COPY ... TO` a scratch file (no
    check, no publish). `view_s`: build_subscription_view (views, COPY into staging, contract
    check, rename, latest link, sidecar, pruning). Both are the best of `repeat` runs after
    one warm-up of each, so the file cache is equally warm. The limit in `make bench` is
    `ratio <= 1.3`. Note: it publishes the as-of view (and the latest when newest).
    """
    scratch = layout.staging / f"bench-{os.getpid()}"
    scratch.mkdir(parents=True, exist_ok=True)

    def bare() -> float:
        t = time.monotonic()
        con = connect(threads)
        try:
            register_transactions(con, layout)
            make_state(con, as_of)
            copy_view_from_state(con, as_of, scratch / "bare.parquet")
        finally:
            con.close()
        return time.monotonic() - t

    def full() -> float:
        t = time.monotonic()
        build_subscription_view(layout, as_of, keep_days=10_000, threads=threads, full=True)
        return time.monotonic() - t

    try:
        bare()
        full()
        bare_times, view_times = [], []
        for _ in range(max(1, repeat)):
            bare_times.append(bare())
            view_times.append(full())
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    rows = read_view_meta(layout, layout.subscriptions(as_of))["rows"]
    tx_rows = {}
    con = connect(threads)
    try:
        register_transactions(con, layout)
        for kind in VIEW_KINDS:
            tx_rows[kind] = con.execute(f"select count(*) from {kind}").fetchone()[0]
    finally:
        con.close()
    bare_s, view_s = min(bare_times), min(view_times)
    return {"as_of": str(as_of), "subscriptions": rows, "transactions": tx_rows, "bare_s": round(bare_s, 3),
            "view_s": round(view_s, 3), "ratio": round(view_s / bare_s, 3) if bare_s else None,
            "runs": {"bare": [round(t, 3) for t in bare_times], "view": [round(t, 3) for t in view_times]}}
