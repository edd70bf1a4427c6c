"""One freshness rule: a deleted sidecar makes its output stale everywhere alike, and a backfill
rebuilds exactly that output and what is built from it (decision D13)."""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

import pytest

from cvas.core.catalogue import DATASETS, DAY_KIND, NONE, label
from cvas.core.layout import PART_FILE, Layout, sidecar
from tests.conftest import luigi_settings, simulated_settings

pytestmark = pytest.mark.slow   # see pyproject: make test-fast leaves it out

START = dt.date(2026, 3, 1)
END = START + dt.timedelta(days=2)
MIDDLE = START + dt.timedelta(days=1)
KIND = "reno"
WITH_SIDECAR = [name for name, ds in DATASETS.items() if ds.sidecar]


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """Three simulated days built by one backfill: the reference tree every case copies."""
    from cvas.simulator.simulate import simulate

    work = tmp_path_factory.mktemp("freshness")
    nova = simulate(work / "nova", START, 3, new_per_day=25, seed=5)
    with luigi_settings(simulated_settings(work / "data", nova)):
        from tasks.pipeline import run_backfill

        assert run_backfill(START, END, progress=lambda _: None) == 0
    return work / "data", nova


def _key(name: str) -> tuple[dt.date | None, str | None]:
    ds = DATASETS[name]
    if ds.key == NONE:
        return (END if ds.product else None), None
    return (END if ds.product else MIDDLE), (KIND if ds.key == DAY_KIND else None)


def _mtimes(root: Path) -> dict[Path, object]:
    """{output: its mtime}; an output that is a folder of parts (the view, its state) by its
    parts' names and mtimes."""
    found: dict[Path, object] = {}
    for p in sorted(root.rglob("*")):
        if p.is_file() and p.relative_to(root).parts[0] not in ("_meta", ".staging", "logs", "_invalid", ".locks"):
            if PART_FILE.match(p.name) and p.parent.suffix == ".parquet":
                found[p.parent] = found.get(p.parent, ()) + ((p.name, p.stat().st_mtime_ns),)
            else:
                found[p] = p.stat().st_mtime_ns
    return found


def _built_from(name: str) -> set[str]:
    """`name` and every dataset built from it, through the catalogue's upstream edges."""
    found = {name}
    grew = True
    while grew:
        grew = False
        for ds in DATASETS.values():
            if ds.name not in found and any(u.name in found for u in ds.upstream):
                found.add(ds.name)
                grew = True
    return found


def _allowed(lay: Layout, name: str, day: dt.date, kind: str | None) -> set[Path]:
    """The files a rebuild of (name, day, kind) may replace: its own, those of the same day and
    kind built from it, and the products of the range's end."""
    allowed: set[Path] = set()
    for other in _built_from(name):
        ds = DATASETS[other]
        if ds.product or ds.key == NONE:
            allowed |= set(ds.outputs(lay, END, None))
        elif ds.key == DAY_KIND:
            allowed |= set(ds.outputs(lay, day, kind))
            if ds.quality:   # a load also publishes its quality report and rejects
                allowed |= {lay.quality(kind, day), lay.rejects(kind, day)}
        else:
            allowed |= set(ds.outputs(lay, day, None))
    return allowed


@pytest.mark.parametrize("name", WITH_SIDECAR)
def test_a_deleted_sidecar_is_stale_everywhere_and_a_backfill_rebuilds_only_that_output(built, name, tmp_path,
                                                                                         capsys):
    from cvas.core.freshness import STALE, Freshness
    from cvas.ops.status import grid
    from tasks import datasets
    from tasks.cli import main
    from tasks.pipeline import missing_days, planned_steps, run_backfill

    root, nova = built
    lay = Layout(tmp_path / "data")
    shutil.copytree(root, lay.root)   # mtimes kept: the copy is as fresh as the original
    day, kind = _key(name)
    outputs = DATASETS[name].outputs(lay, day, kind)
    with luigi_settings(simulated_settings(lay.root, nova)):
        assert datasets.state(datasets.task_for(name, day, kind)).fresh
        sidecar(lay, outputs[0]).unlink()

        cell = Freshness(lay, datasets.settings()).state(name, day, kind)
        assert (cell.state, cell.reason) == (STALE, "no provenance sidecar")
        task = datasets.task_for(name, day, kind)
        assert not task.complete()
        capsys.readouterr()
        assert main(["status", "--start", str(START), "--end", str(END)]) == 0
        status = capsys.readouterr().out
        assert main(["plan", "--start", str(START), "--end", str(END)]) == 0
        plan = capsys.readouterr().out
        if DATASETS[name].per_day and not DATASETS[name].product:
            assert type(task).bulk_complete([{"date": day, "kind": kind}] if kind else [day]) == []
            cells = grid(lay, START, END, datasets.settings())
            stale = {(d, lab) for d, row in cells.items() for lab, c in row.items() if c.state != "present"}
            assert stale == {(day, label(name, kind))}
            steps = planned_steps(START, END)
            assert (day, label(name, kind), "stale: no provenance sidecar") in steps
            assert {d for d, _, _ in steps} == {day} and missing_days(START, END) == [day]
            assert f"{day}  {label(name, kind):<17} stale: no provenance sidecar" in plan
        else:
            assert planned_steps(START, END) == [] and missing_days(START, END) == []
            assert f"{name:<17} S stale (no provenance sidecar)" in status
            assert f"{END}  {name:<17} stale: no provenance sidecar" in plan

        before = _mtimes(lay.root)
        assert run_backfill(START, END, progress=lambda _: None) == 0
        after = _mtimes(lay.root)
        rebuilt = {p for p, m in after.items() if before.get(p) != m} | (before.keys() - after.keys())
        assert set(outputs) <= rebuilt, "the output whose sidecar was lost is rebuilt"
        allowed = _allowed(lay, name, day, kind)
        assert rebuilt <= allowed, sorted(str(p.relative_to(lay.root)) for p in rebuilt - allowed)
        assert sidecar(lay, outputs[0]).exists()
        assert datasets.task_for(name, day, kind).complete()
        assert planned_steps(START, END) == []
        unchanged = _mtimes(lay.root)
        assert run_backfill(START, END, progress=lambda _: None) == 0
        assert _mtimes(lay.root) == unchanged, "a second backfill is a no-op"
