"""The whole-history exports extended by the new days only (issue 12): the five files equal a
full rebuild of the same days byte for byte; anything else than later days added rebuilds.

In-process over a small simulated Nova built once by a backfill and copied per test; the
path each export took is read from its sidecar (`mode`), so a test fails if the append path
is never taken.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from cvas.core import provenance
from cvas.core.freshness import Freshness, Settings
from cvas.core.layout import Layout, sidecar
from cvas.core.publish import PublishError, publish_parquet, staged, write_text_atomic
from cvas.steps.exports import publish_counter_exports
from cvas.steps.master import master_csv_text, read_master_csv
from cvas.steps.user_base import export_user_base
from tests.conftest import backfilled_root

pytestmark = pytest.mark.slow   # see pyproject: make test-fast leaves it out

START = dt.date(2025, 11, 3)
DAYS = 5
DAYS_LIST = [START + dt.timedelta(days=i) for i in range(DAYS)]
EXCLUDED = ("nubico", "challenge arena", "movistar apple music", "juegos onmo")
BY = ("service", "category", "cpc")
# service names the RFC 4180 CSV must quote: a comma, a quote, a line break
AWKWARD = ('Juegos, "Pro"', "Noticias\nPlus", 'Say "hi"')


@pytest.fixture(scope="module")
def nova(tmp_path_factory):
    from cvas.simulator.simulate import simulate

    return simulate(tmp_path_factory.mktemp("nova"), START, DAYS, new_per_day=15, seed=11)


@pytest.fixture(scope="module")
def built(nova, tmp_path_factory) -> Path:
    """A data root with every day built, its master holding service names that need quoting."""
    root = backfilled_root(tmp_path_factory, nova, START, DAYS_LIST[-1])
    lay = Layout(root)
    _rename_services(lay, AWKWARD)
    assert _export(lay) == ("rebuild", "append")   # the master changed; the user base does not read it
    return root


@pytest.fixture
def lay(built, tmp_path) -> Layout:
    copy = tmp_path / "data"
    shutil.copytree(built, copy)
    return Layout(copy)


def _rename_services(lay: Layout, names: tuple[str, ...]) -> None:
    """Give the CPCs counted on most days new service names (a new MASTERCPC.csv, as MasterCpc
    writes it)."""
    from cvas.steps.master import MasterRow

    counted = pq.read_table(lay.counters_cpc, columns=["cpc"]).column("cpc").value_counts().to_pylist()
    busiest = [c["values"] for c in sorted(counted, key=lambda c: (-c["counts"], c["values"]))]
    table = read_master_csv(lay.master_cpc).to_pylist()
    renamed = dict(zip(busiest, names))
    for row in table:
        row["service_name"] = renamed.get(row["cpc"], row["service_name"])
    write_text_atomic(lay.staging, lay.master_cpc, master_csv_text([MasterRow(**row) for row in table]))


def _outputs(lay: Layout) -> list[Path]:
    return [lay.counters_cpc, lay.counters_service] + [lay.user_base_export(by) for by in BY]


def _bytes(lay: Layout) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in _outputs(lay)}


def _export(lay: Layout) -> tuple[str, str]:
    """Both exports, as the daily run makes them; the path each took, as its sidecar records it."""
    counters = publish_counter_exports(lay, EXCLUDED)
    user_base = export_user_base(lay, EXCLUDED)
    recorded = (provenance.read(lay, lay.counters_cpc)["mode"],
                provenance.read(lay, lay.user_base_export("service"))["mode"])
    assert recorded == (counters["mode"], user_base["mode"])
    return recorded


def _full_rebuild(lay: Layout, where: Path) -> dict[str, bytes]:
    """The five files a rebuild from every per-day file gives (on a copy without the sidecars)."""
    shutil.copytree(lay.root, where)
    full = Layout(where)
    sidecar(full, full.counters_cpc).unlink()
    sidecar(full, full.user_base_export("service")).unlink()
    assert _export(full) == ("rebuild", "rebuild")
    return _bytes(full)


def _day_files(lay: Layout, day: dt.date) -> list[Path]:
    return [lay.daily_counters(day), lay.user_base_daily(day)]


def _remove(lay: Layout, days: list[dt.date]) -> dict[Path, bytes]:
    """Take the per-day files of `days` away; returns them for `_restore`."""
    saved = {path: path.read_bytes() for day in days for path in _day_files(lay, day)}
    for path in saved:
        path.unlink()
    return saved


def _restore(lay: Layout, saved: dict[Path, bytes]) -> None:
    """Publish per-day files again, as their steps do."""
    for path, data in saved.items():
        with staged(lay.staging, path) as tmp:
            tmp.write_bytes(data)


def test_days_exported_one_by_one_equal_a_full_rebuild_of_the_same_days(lay, tmp_path):
    saved = _remove(lay, DAYS_LIST)
    for path in _outputs(lay):
        path.unlink()
    modes = []
    for i, day in enumerate(DAYS_LIST):
        _restore(lay, {path: saved[path] for path in _day_files(lay, day)})
        modes.append(_export(lay))
        assert _bytes(lay) == _full_rebuild(lay, tmp_path / f"full-{i}"), day
    assert modes == [("rebuild", "rebuild")] + [("append", "append")] * (DAYS - 1)
    service = lay.counters_service.read_bytes()
    assert b'"Juegos, ""Pro"""' in service and b'"Noticias\nPlus"' in service   # RFC 4180, appended too
    assert pq.read_table(lay.counters_cpc).column("date").to_pylist()[-1] == DAYS_LIST[-1]


def test_two_later_days_at_once_are_appended(lay, tmp_path):
    """A backfill that extends the history forward appends its days in one go."""
    last = DAYS_LIST[-2:]
    saved = _remove(lay, last)
    assert _export(lay) == ("rebuild", "rebuild")       # days removed: rebuilt without them
    _restore(lay, saved)
    plan = Freshness(lay, Settings(excluded_services=EXCLUDED)).extension("counters_export")
    assert plan.days == [f"{d:%Y-%m-%d}" for d in last]
    assert _export(lay) == ("append", "append")
    assert _bytes(lay) == _full_rebuild(lay, tmp_path / "full")


def _reload(lay: Layout, day: dt.date, change: int) -> None:
    """Publish the day's per-day files again (a reload), their counts raised by `change`."""
    for path, column in ((lay.daily_counters(day), "act_count"), (lay.user_base_daily(day), "user_base")):
        table = pq.ParquetFile(path).read()
        i = table.column_names.index(column)
        table = table.set_column(i, column, pc.add(table.column(i), pa.scalar(change, table.schema.field(i).type)))
        publish_parquet(lay.staging, path, table)


def test_an_older_day_reloaded_with_other_content_rebuilds_both_exports(lay, tmp_path):
    before = _bytes(lay)
    _reload(lay, DAYS_LIST[1], change=7)
    plan = Freshness(lay, Settings(excluded_services=EXCLUDED)).extension("counters_export")
    assert plan.days is None and "daily_counters changed" in plan.reason
    assert _export(lay) == ("rebuild", "rebuild")
    after = _bytes(lay)
    assert after == _full_rebuild(lay, tmp_path / "full")
    assert all(after[name] != before[name] for name in before), "the reloaded day's new counts are exported"


def test_a_changed_master_rebuilds_the_counter_exports(lay, tmp_path):
    _rename_services(lay, ("Renamed, again",))
    assert _export(lay) == ("rebuild", "append")        # the user-base exports do not read the master
    assert b'"Renamed, again"' in lay.counters_service.read_bytes()
    assert _bytes(lay) == _full_rebuild(lay, tmp_path / "full")


def test_a_changed_exclusion_list_rebuilds_both_exports(lay):
    counters = publish_counter_exports(lay, EXCLUDED[:2])
    user_base = export_user_base(lay, EXCLUDED[:2])
    assert (counters["mode"], user_base["mode"]) == ("rebuild", "rebuild")


def test_an_export_edited_outside_cvas_is_rebuilt_not_appended_to(lay, tmp_path):
    good = _bytes(lay)
    with open(lay.counters_service, "ab") as fh:
        fh.write(b"2099-01-01,edited by hand\n")
    with open(lay.user_base_export("category"), "ab") as fh:
        fh.write(b"2099-01-01|edited|1\n")
    assert not Freshness(lay, Settings(excluded_services=EXCLUDED)).state("counters_export", DAYS_LIST[-1]).fresh
    assert _export(lay) == ("rebuild", "rebuild")
    assert _bytes(lay) == good


def test_exports_published_without_their_sidecar_are_rebuilt(lay, tmp_path):
    """A writer that stopped between publishing the files and recording the sidecar (killed):
    the files hold a day the sidecar does not list; the next run rebuilds, never appends twice."""
    saved = _remove(lay, DAYS_LIST[-1:])
    assert _export(lay) == ("rebuild", "rebuild")
    stale = {p: p.read_bytes() for p in (sidecar(lay, lay.counters_cpc), sidecar(lay, lay.user_base_export("service")))}
    _restore(lay, saved)
    assert _export(lay) == ("append", "append")
    for path, text in stale.items():                  # the sidecars as before that append
        write_text_atomic(lay.staging, path, text.decode())
    plan = Freshness(lay, Settings(excluded_services=EXCLUDED)).extension("user_base_export")
    assert plan.days is None and "outputs changed" in plan.reason
    assert _export(lay) == ("rebuild", "rebuild")
    assert _bytes(lay) == _full_rebuild(lay, tmp_path / "full")


def test_a_failure_mid_publish_leaves_the_previous_exports_and_sidecars(lay):
    """The last file of each export refused after the others were staged: nothing is renamed,
    the sidecars still describe the files, and the next run (the file repaired) appends."""
    saved = _remove(lay, DAYS_LIST[-1:])
    assert _export(lay) == ("rebuild", "rebuild")
    before = _bytes(lay)
    sidecars = {p: p.read_bytes() for p in (sidecar(lay, lay.counters_cpc),
                                            sidecar(lay, lay.user_base_export("service")))}
    _restore(lay, saved)
    # a same-size edit of each header with its time kept: fresh by freshness, refused when copied
    restore = {}
    for path in (lay.counters_service, lay.user_base_export("cpc")):
        st, data = path.stat(), path.read_bytes()
        restore[path] = (st, data)
        path.write_bytes(data.replace(b"date", b"DATE", 1))
        os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    with pytest.raises(PublishError, match="first line is not the header"):
        publish_counter_exports(lay, EXCLUDED)
    with pytest.raises(PublishError, match="first line is not the header"):
        export_user_base(lay, EXCLUDED)
    for path, (st, data) in restore.items():
        assert path.read_bytes() != data
        path.write_bytes(data)
        os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert _bytes(lay) == before, "no file of either export was replaced"
    assert {p: p.read_bytes() for p in sidecars} == sidecars
    assert not any(lay.staging.rglob("*.csv")) and not any(lay.staging.rglob("*.parquet")), "staging is left empty"
    assert _export(lay) == ("append", "append")
