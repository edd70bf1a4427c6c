"""The folded subscription view: a state plus the days after it gives the bytes of the full build."""

from __future__ import annotations

import datetime as dt
import os
import random
import shutil
import signal
import subprocess
import sys
import time

import pyarrow as pa
import pytest
import pyarrow.parquet as pq

from cvas.core import provenance
from cvas.core.layout import Layout, sidecar
from cvas.core.schemas import KINDS, spec
from cvas.ops.status import mark_for_rebuild
from cvas.core.layout import parts
from cvas.steps.subscriptions import OPEN_PARTS, build_subscription_view, newest_usable_state, write_full_view
from tests.steps.test_subscriptions import at, cnr_row, digest, read_view, sub_row, write_events

pytestmark = pytest.mark.slow   # see pyproject: make test-fast leaves it out

D0 = dt.date(2026, 5, 4)
DAYS = 12
LAST = D0 + dt.timedelta(days=DAYS - 1)


def day(i: int) -> dt.date:
    return D0 + dt.timedelta(days=i)


def rfnd_row(sub_id: int, when: dt.datetime, cpc: int, amount: float, count: int = 1, instant: str = "f") -> dict:
    return {"tmuserid": "834100000000000000", "cpc": cpc, "refnd_date": when, "rfnd_amount": amount,
            "rfnd_cnt": count, "sbnid": sub_id, "instant_rfnd": instant}


def ppd_row(when: dt.datetime, cpc: int, rev: float) -> dict:
    return {"tmuserid": "834100000000000009", "msisdn": "34611111119", "cpc": cpc,
            "trans_type_id": spec("ppd").trans_type_id, "trans_date": when, "act_date": when, "reno_date": None,
            "camp_name": "normal", "subscription_id": None, "channel_id": 1, "rev": rev}


def history() -> dict[str, list[dict]]:
    """Twelve days holding every case the fold has to merge exactly."""
    return {
        "act": [sub_row("act", 1, at(D0, 9), 100, channel="WEB", rev=1.5),
                sub_row("act", 1, at(D0, 9, offset=5), 200, channel="UPGRADE", rev=3.25),
                sub_row("act", 1, at(D0, 9, offset=DAYS - 1), 300, channel="UPGRADE", rev=4.1),  # on the as-of day
                sub_row("act", 2, at(D0, 10), 100, channel="SMS", rev=2.0),
                sub_row("act", 4, at(D0, 11), 10, channel="WEB", rev=0.0),
                sub_row("act", 4, at(D0, 11), 11, channel="UPGRADE", rev=0.7),        # same second
                sub_row("act", 5, at(D0, 12, offset=2), 20, channel=None, rev=1.1),   # null channel: regular
                sub_row("act", 6, at(D0, 13, offset=7), 30, channel="WEB", rev=0.33)],
        "reno": [sub_row("reno", 1, at(D0, 9, offset=2), 100, channel="WEB", rev=1.5),
                 sub_row("reno", 1, at(D0, 9, offset=6), 200, channel="WEB", rev=3.25),
                 sub_row("reno", 3, at(D0, 8, offset=4), 40, channel="SMS", rev=0.99,   # first seen by a RENO
                         act_date=dt.datetime(2025, 12, 1, 8)),
                 sub_row("reno", 3, at(D0, 8, offset=9), 40, channel="SMS", rev=0.99,
                         act_date=dt.datetime(2025, 12, 1, 8)),
                 sub_row("reno", 4, at(D0, 11, offset=3), 12, channel="WEB", rev=0.7),
                 sub_row("reno", 4, at(D0, 11, offset=5), 10, channel="WEB", rev=0.7),
                 sub_row("reno", 4, at(D0, 11, offset=8), 13, channel="WEB", rev=0.7),
                 sub_row("reno", 5, at(D0, 7, offset=1), None, channel="WEB", rev=0.1)],  # null CPC first
        "dct": [sub_row("dct", 2, at(D0, 10, offset=6), 100, channel="SYSTEM"),
                sub_row("dct", 1, at(D0, 9, offset=5), 100, channel="UPGRADE"),
                sub_row("dct", 3, at(D0, 10, offset=10), 40, channel=None)],
        "cnr": [cnr_row(2, at(D0, 15, offset=3), 100),                                  # cancelled, then deactivated
                cnr_row(6, at(D0, 15, offset=9), 30, mode="WEB")],
        "rfnd": [rfnd_row(3, at(D0, 6, offset=1), 40, 0.99),                             # before its first RENO
                 rfnd_row(2, at(D0, 6, offset=7), 100, 2.0),                             # refunds of old charges
                 rfnd_row(2, at(D0, 6, offset=9), 100, 2.0, instant="t"),
                 rfnd_row(1, at(D0, 6, offset=10), 100, 1.5, count=2)],
        "ppd": [ppd_row(at(D0, 14, offset=i), 500 + i, 0.5) for i in range(DAYS)],
    }


def assert_equals_full_build(layout: Layout, as_of: dt.date, tmp_path) -> None:
    reference = tmp_path / f"full-{as_of}.parquet"
    shutil.rmtree(reference, ignore_errors=True)
    write_full_view(layout, as_of, reference)
    assert digest(layout.subscriptions(as_of)) == digest(reference), f"the fold as of {as_of} differs"


def reload_day(layout: Layout, i: int, rows: dict[str, list[dict]]) -> None:
    """Replace day i's files with new content, as a reload publishes them."""
    for kind in KINDS:
        path = layout.transactions(kind, day(i))
        pq.write_table(pa.Table.from_pylist(rows.get(kind, []), schema=spec(kind).schema), path)
        provenance.record(layout, path, inputs={"raw": layout.raw(kind, day(i))}, params={}, rows=None)


def test_the_fold_gives_the_bytes_of_the_full_build_day_after_day(layout, tmp_path):
    write_events(layout, history())
    first = build_subscription_view(layout, day(0), keep_days=30)
    assert first["folded_from"] is None                   # no state yet: the full build
    for i in range(1, DAYS):
        stats = build_subscription_view(layout, day(i), keep_days=30)
        assert stats["folded_from"] == str(day(i - 1))
        assert_equals_full_build(layout, day(i), tmp_path)
    view = read_view(layout.subscriptions(LAST))
    assert view[1]["upgraded_to_cpc"] == 300 and view[1]["cpc_list"] == [100, 200, 300]
    assert view[2]["subscription_status"] == "Deactivated" and view[2]["refund_count"] == 2
    assert view[3]["missing_act_record"] is True and view[3]["refund_count"] == 1
    assert view[4]["cpc_list"] == [10, 11, 12, 13] and view[5]["cpc_list"] == [20]
    assert set(view) == {1, 2, 3, 4, 5, 6}                # PPD rows have no lifecycle


def test_views_built_one_by_one_end_as_the_full_build(layout, tmp_path):
    write_events(layout, history())
    build_subscription_view(layout, LAST - dt.timedelta(days=4), keep_days=30)
    for back in (3, 2, 1, 0):
        stats = build_subscription_view(layout, LAST - dt.timedelta(days=back), keep_days=30)
        assert stats["folded_from"] == str(LAST - dt.timedelta(days=back + 1))
    assert_equals_full_build(layout, LAST, tmp_path)
    assert digest(layout.subscriptions_latest) == digest(layout.subscriptions(LAST))


def test_a_reloaded_day_folds_forward_from_the_last_good_state_before_it(layout, tmp_path):
    write_events(layout, history())
    for i in range(8):
        build_subscription_view(layout, day(i), keep_days=30)
    # day 4 is reloaded with different content: sub 3's first RENO moves there, a new
    # subscription starts, sub 2's refund grows
    reload_day(layout, 4, {"reno": [sub_row("reno", 3, at(day(4), 18), 41, channel="WEB", rev=1.99,
                                            act_date=dt.datetime(2025, 12, 1, 8))],
                           "act": [sub_row("act", 7, at(day(4), 7), 70, channel="WEB", rev=5.0)]})
    assert newest_usable_state(layout, day(7)) == day(3)   # every state from day 4 on is stale
    stats = build_subscription_view(layout, day(8), keep_days=30)
    assert stats["folded_from"] == str(day(3))
    assert_equals_full_build(layout, day(8), tmp_path)
    assert build_subscription_view(layout, day(9), keep_days=30)["folded_from"] == str(day(8))
    assert_equals_full_build(layout, day(9), tmp_path)
    assert read_view(layout.subscriptions(day(9)))[3]["cpc_list"] == [41, 40]
    # an invalidated past day makes the states from it on unusable too
    mark_for_rebuild(layout, layout.transactions("rfnd", day(6)))
    assert newest_usable_state(layout, day(9)) == day(3)  # 4..5: reloaded


def test_a_state_without_its_sidecar_or_with_other_rows_is_not_used(layout, tmp_path):
    write_events(layout, history())
    for i in range(3):
        build_subscription_view(layout, day(i), keep_days=30)
    sidecar(layout, layout.subscription_state(day(2))).unlink()     # killed before its sidecar
    assert build_subscription_view(layout, day(3), keep_days=30)["folded_from"] == str(day(1))
    meta = provenance.read(layout, layout.subscription_state(day(3)))
    provenance.record(layout, layout.subscription_state(day(3)), inputs={}, params={}, rows=meta["rows"] + 1,
                      extra={"transactions": meta["transactions"]})
    assert build_subscription_view(layout, day(4), keep_days=30)["folded_from"] == str(day(1))
    assert_equals_full_build(layout, day(4), tmp_path)


_CHILD = """
import datetime as dt, sys
from cvas.core.layout import Layout
from cvas.steps.subscriptions import build_subscription_view
layout = Layout(sys.argv[1])
build_subscription_view(layout, dt.date.fromisoformat(sys.argv[2]), keep_days=30)
"""


def _kill_when(proc: subprocess.Popen, ready, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not ready() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.0002)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()


def test_a_state_killed_mid_publish_is_redone_never_used(layout, tmp_path):
    write_events(layout, history())
    for i in range(5):
        build_subscription_view(layout, day(i), keep_days=30)
    state = layout.subscription_state(day(5))
    moments = {  # SIGKILL as soon as the state is being written, then as soon as it is renamed into place
        "writing": lambda: any(p.name.startswith(f"{day(5)}.") for p in layout.staging.iterdir()),
        "renamed": state.exists,
    }
    for moment, ready in moments.items():
        proc = subprocess.Popen([sys.executable, "-c", _CHILD, str(layout.root), str(day(5))])
        _kill_when(proc, ready)
        complete = provenance.read(layout, state) is not None
        # a state is used only once the sidecar written after its rename is there
        assert newest_usable_state(layout, day(5)) == (day(5) if complete else day(4)), moment
        stats = build_subscription_view(layout, day(6), keep_days=30)
        assert stats["folded_from"] == str(day(5) if complete else day(4)), moment
        assert_equals_full_build(layout, day(6), tmp_path)
        for done in (state, layout.subscription_state(day(6))):
            shutil.rmtree(done, ignore_errors=True)
            sidecar(layout, done).unlink(missing_ok=True)


def test_a_latest_copy_left_without_its_sidecar_is_stale_until_copied_again(layout):
    """A run killed between publishing the legacy latest copy and recording its sidecar: the
    newest-view copy is stale (so the rerun copies it again), not complete with an unrecorded
    copy that `cvas verify` would find; the as-of view itself is fine."""
    from cvas.core.freshness import STALE, state
    from cvas.steps.subscriptions import publish_latest

    write_events(layout, history())
    for i in range(3):
        build_subscription_view(layout, day(i), keep_days=30)
    assert state(layout, "subscriptions_latest").fresh
    sidecar(layout, layout.subscriptions_latest).unlink()
    cell = state(layout, "subscriptions_latest")
    assert (cell.state, cell.reason) == (STALE, "no provenance sidecar")
    assert state(layout, "subscriptions", day(2)).fresh
    publish_latest(layout)
    assert state(layout, "subscriptions_latest").fresh
    assert state(layout, "subscriptions", day(1)).fresh          # not the newest: no latest copy of its own
    build_subscription_view(layout, day(2), keep_days=30)
    assert state(layout, "subscriptions", day(2)).fresh
    assert digest(layout.subscriptions_latest) == digest(layout.subscriptions(day(2)))


def test_verify_rebuilds_the_latest_view_in_full_and_names_the_first_difference(layout):
    from cvas.ops.verify import mark_findings, verify_range

    write_events(layout, history())
    for i in range(4):
        build_subscription_view(layout, day(i), keep_days=30)

    def view_findings():
        report = verify_range(layout, day(4), day(4))
        return [f for f in report.findings if f.path == layout.subscriptions_latest]

    assert view_findings() == []
    # a state whose content went wrong while its sidecar still agrees (a defect of the fold, not
    # an edit: an edit is found by its stat and never folded from): the next fold carries the error
    path = layout.subscription_state(day(3))
    state = next(p for p in parts(path).values() if 4 in pq.read_table(p).column("subscription_id").to_pylist())
    table = pq.read_table(state)
    counts = table.column("renewal_count").to_pylist()
    row = table.column("subscription_id").to_pylist().index(4)
    counts[row] += 5
    table = table.set_column(table.schema.get_field_index("renewal_count"), "renewal_count",
                             pa.array(counts, pa.int64()))
    state.unlink()                                   # a new inode: the earlier states keep theirs
    pq.write_table(table, state)
    meta = provenance.read(layout, path)
    meta["parts"][state.stem] |= {"size": state.stat().st_size, "mtime_ns": state.stat().st_mtime_ns}
    provenance.record(layout, path, inputs={}, params=meta["params"], rows=meta["rows"], output_hash=meta["output_hash"],
                      extra={k: meta[k] for k in ("as_of", "transactions", "parts")})
    assert build_subscription_view(layout, day(4), keep_days=30)["folded_from"] == str(day(3))
    (finding,) = view_findings()
    assert finding.problem == f"differs from the view as of {day(4)} built in full: subscription 4: renewal_count differs"
    assert finding.rebuild == layout.subscriptions(day(4))
    mark_findings(layout, verify_range(layout, day(4), day(4)))
    stats = build_subscription_view(layout, day(4), keep_days=30)   # a marked view is built in full
    assert stats["folded_from"] is None
    assert view_findings() == []


def test_a_memory_limited_build_gives_the_same_bytes_and_leaves_no_spill_folder(layout, tmp_path):
    write_events(layout, history())
    build_subscription_view(layout, LAST, keep_days=30, memory_limit="64MB")
    assert_equals_full_build(layout, LAST, tmp_path)               # the reference is built without a limit
    limited = tmp_path / "limited.parquet"
    write_full_view(layout, LAST, limited, memory_limit="64MB")
    assert digest(limited) == digest(layout.subscriptions(LAST))
    assert not list(layout.staging.glob("duckdb-spill.*")), "the spill folder is removed after the build"
    with pytest.raises(ValueError, match="'1 gigabyte' is not a size"):
        build_subscription_view(layout, LAST, keep_days=30, memory_limit="1 gigabyte")


def test_deactivated_months_are_carried_over_and_rewritten_only_when_touched(layout, tmp_path):
    """The view is a folder of parts: the four open ones and one per deactivation month. A day's
    fold writes the open parts and the months its events touch; the other months are hard links to the previous
    view's files. A late refund of a long-deactivated subscription, and a second deactivation
    that moves a subscription to a later month, rewrite exactly those months, byte-identical to
    a full build."""
    start = dt.date(2026, 3, 30)
    rows = {
        "act": [sub_row("act", i, at(start, 8, offset=0), 100 + i, channel="WEB", rev=1.0) for i in (1, 2, 3)],
        "reno": [sub_row("reno", 3, at(start, 9, offset=d), 103, channel="WEB", rev=1.0) for d in (1, 3, 36)],
        "dct": [sub_row("dct", 1, at(start, 10, offset=1), 101, channel="SYSTEM"),    # March
                sub_row("dct", 2, at(start, 10, offset=4), 102, channel="SYSTEM"),    # April
                sub_row("dct", 2, at(start, 10, offset=33), 102, channel="SYSTEM")],  # again in May: it moves
        "rfnd": [rfnd_row(1, at(start, 6, offset=35), 101, 1.0)],                     # refund of an old charge
    }
    write_events(layout, rows)
    march, april, may = "deactivated-2026-03", "deactivated-2026-04", "deactivated-2026-05"
    build_subscription_view(layout, start + dt.timedelta(days=30), keep_days=60)        # built in full
    base = start + dt.timedelta(days=30)
    assert set(parts(layout.subscriptions(base))) == {*OPEN_PARTS, march, april}
    quiet = build_subscription_view(layout, base + dt.timedelta(days=1), keep_days=60)   # no event at all
    assert quiet["folded_from"] == str(base) and quiet["parts_written"] == len(OPEN_PARTS)   # open only
    for name in (march, april):
        assert os.path.samefile(parts(layout.subscriptions(base))[name],
                                parts(layout.subscriptions(base + dt.timedelta(days=1)))[name]), name
    for offset in range(32, 37):
        as_of = start + dt.timedelta(days=offset)
        build_subscription_view(layout, as_of, keep_days=60)
        assert_equals_full_build(layout, as_of, tmp_path)
    final = start + dt.timedelta(days=36)
    assert set(parts(layout.subscriptions(final))) == {*OPEN_PARTS, march, may}          # April emptied
    view = read_view(layout.subscriptions(final))
    assert view[1]["refund_count"] == 1 and view[2]["deactivation_date"].month == 5


@pytest.mark.parametrize("chunk_days", [1, 3, 5])
def test_a_build_without_a_state_in_chunks_equals_the_full_build(layout, tmp_path, chunk_days):
    """With no usable state over a long history the state is built a few days at a time (bounded
    memory): the same bytes as the one-pass full build, state included."""
    write_events(layout, history())
    stats = build_subscription_view(layout, LAST, keep_days=30, chunk_days=chunk_days)
    assert stats["folded_from"] is None and not list(layout.staging.glob("subscription_state.build.*"))
    assert stats["passes"] == -(-DAYS // chunk_days)
    assert_equals_full_build(layout, LAST, tmp_path)
    state = digest(layout.subscription_state(LAST))
    shutil.rmtree(layout.subscription_state(LAST))
    build_subscription_view(layout, LAST, keep_days=30, full=True)
    assert digest(layout.subscription_state(LAST)) == state


@pytest.mark.parametrize("chunk_days", [1, 4])
def test_a_fold_over_more_days_than_a_chunk_goes_a_chunk_at_a_time(layout, tmp_path, chunk_days):
    """A backfill after a gap finds its usable state far back: the days after it are folded in
    `chunk_days` at a time (bounded memory, as a build without a state), every part is written,
    and the bytes are those of the full build. The state it started from is left as it was."""
    write_events(layout, history())
    build_subscription_view(layout, day(1), keep_days=30)
    base = digest(layout.subscription_state(day(1)))
    stats = build_subscription_view(layout, LAST, keep_days=30, chunk_days=chunk_days)
    assert stats["folded_from"] == str(day(1)) and stats["passes"] == -(-(LAST - day(1)).days // chunk_days)
    assert stats["parts_written"] == len(parts(layout.subscriptions(LAST)))
    assert provenance.read(layout, layout.subscriptions(LAST))["folded_from"] == str(day(1))
    assert digest(layout.subscription_state(day(1))) == base
    assert not list(layout.staging.glob("subscription_state.build.*"))
    assert_equals_full_build(layout, LAST, tmp_path)
    state = digest(layout.subscription_state(LAST))
    shutil.rmtree(layout.subscription_state(LAST))
    build_subscription_view(layout, LAST, keep_days=30, full=True)
    assert digest(layout.subscription_state(LAST)) == state


def test_views_over_many_subscriptions_keep_every_part_sorted_by_id(layout, tmp_path):
    """The view is written in its state's order, not sorted again: over many DuckDB vectors
    and row groups, with two threads, every part of the full build and of the fold is still
    sorted by subscription id, and the two agree byte for byte."""
    rnd = random.Random(11)
    ids = rnd.sample(range(1, 10**9), 200_000)
    rows: dict[str, list[dict]] = {
        "act": [sub_row("act", i, at(D0, 9, mm=n % 60), 100 + n % 7, channel="WEB", rev=1.0)
                for n, i in enumerate(ids)],
        "reno": [sub_row("reno", i, at(D0, 9, offset=1), 100, channel="WEB", rev=1.0) for i in ids[::4]],
        # a deactivation month of more rows than a row group (122,880), written by the fold
        "dct": [sub_row("dct", i, at(D0, 10, offset=1), 100, channel="SYSTEM") for i in ids[:150_000]],
    }
    write_events(layout, rows)
    assert build_subscription_view(layout, day(0), threads=2)["folded_from"] is None
    assert build_subscription_view(layout, day(1), threads=2)["folded_from"] == str(day(0))
    for as_of in (day(0), day(1)):
        for path in (*parts(layout.subscriptions(as_of)).values(), *parts(layout.subscription_state(as_of)).values()):
            got = pq.ParquetFile(path).read(columns=["subscription_id"]).column(0).to_numpy()
            assert len(got) and bool((got[1:] > got[:-1]).all()), f"{path.name} as of {as_of}: not sorted by id"
    month = f"deactivated-{day(1):%Y-%m}"
    assert pq.ParquetFile(parts(layout.subscriptions(day(1)))[month]).metadata.num_row_groups > 1
    assert_equals_full_build(layout, day(1), tmp_path)
