"""Shared fixtures: an isolated luigi configuration and data root per test."""

from __future__ import annotations

import contextlib
import datetime as dt
from pathlib import Path

import luigi
import luigi.configuration
import pytest
from luigi.task_register import Register

from cvas.core.layout import Layout

REPO = Path(__file__).resolve().parents[1]


class LuigiOverrides:
    """Temporary luigi.cfg values, undone in reverse order; Luigi's instance cache (and with it
    cvas's settings cache) is cleared on every change."""

    def __init__(self) -> None:
        self.cfg = luigi.configuration.get_config()
        self.saved: list[tuple[str, str, str | None]] = []

    def __call__(self, section: str, key: str, value) -> None:
        old = self.cfg.get(section, key, None) if self.cfg.has_section(section) else None
        self.saved.append((section, key, old))
        if not self.cfg.has_section(section):
            self.cfg.add_section(section)
        self.cfg.set(section, key, str(value))
        Register.clear_instance_cache()

    def undo(self) -> None:
        for section, key, old in reversed(self.saved):
            if old is None:
                self.cfg.remove_option(section, key)
            else:
                self.cfg.set(section, key, old)
        self.saved.clear()
        Register.clear_instance_cache()


@contextlib.contextmanager
def luigi_settings(settings: dict[tuple[str, str], object]):
    """Apply {(section, key): value} for the duration of a block (module-scoped fixtures)."""
    overrides = LuigiOverrides()
    for (section, key), value in settings.items():
        overrides(section, key, value)
    try:
        yield
    finally:
        overrides.undo()


def simulated_settings(data_root: Path, nova, workers: int = 1) -> dict[tuple[str, str], object]:
    """The settings that point cvas at a data root and a simulated Nova (run logs beside the root)."""
    return {("cvas", "data_root"): data_root, ("cvas", "log_dir"): Path(data_root).parent / "logs",
            ("cvas", "source"): "simulated",
            ("simulated_source", "database"): nova.database, ("cvas", "master_xlsx"): nova.master_xlsx,
            ("cvas", "exclusions"): nova.exclusions, ("cvas", "workers"): workers,
            ("core", "autoload_range"): "false"}


def backfilled_root(tmp_path_factory, nova, start, end) -> Path:
    """A data root with start..end built by one backfill from the simulated `nova`."""
    from tasks.pipeline import run_backfill

    root = tmp_path_factory.mktemp("built") / "data"
    with luigi_settings(simulated_settings(root, nova)):
        assert run_backfill(start, end, progress=lambda _: None) == 0
    return root


@pytest.fixture
def luigi_config(tmp_path):
    """Point the [cvas] settings at a temporary data root and log folder (never the checkout's);
    returns a setter for more keys."""
    overrides = LuigiOverrides()
    overrides("cvas", "data_root", tmp_path / "data")
    overrides("cvas", "log_dir", tmp_path / "logs")
    overrides("core", "autoload_range", "false")
    yield overrides
    overrides.undo()


@pytest.fixture
def layout(tmp_path) -> Layout:
    return Layout(tmp_path / "data")


# A second, later row for a CPC already in the master: the real workbook has one (legacy rule L4.4).
DUPLICATED_MASTER_ROW = (41949, None, "APP1999", "TOP VIDEO (O", "NO", "Free Time", "Tribuu Media", "Baja",
                         "Top Video (old)", "Weekly subscription", 1.99, 21)


def add_duplicated_master_row(path: Path) -> None:
    """Append DUPLICATED_MASTER_ROW to the simulated Excel master at `path` (the first row must win)."""
    from openpyxl import load_workbook

    wb = load_workbook(path)
    wb.worksheets[0].append(list(DUPLICATED_MASTER_ROW))
    wb.save(path)


@pytest.fixture(scope="session")
def simulated_nova(tmp_path_factory):
    """A small simulated Nova (3 days from Monday 2025-10-06, 20 new subscriptions a day, seed 7),
    its master holding the legacy workbook's duplicated CPC row."""
    from cvas.simulator.simulate import simulate

    info = simulate(tmp_path_factory.mktemp("nova"), dt.date(2025, 10, 6), 3, new_per_day=20, seed=7)
    add_duplicated_master_row(info.master_xlsx)
    return info


MONTH_END = (dt.date(2025, 10, 30), dt.date(2025, 11, 2))


@pytest.fixture(scope="session")
def month_end_root(tmp_path_factory) -> Path:
    """A data root built by one backfill of four simulated days across a month's end (MONTH_END):
    two `year_month=` partitions per kind, every output published. Read it, never change it."""
    from cvas.simulator.simulate import simulate

    start, end = MONTH_END
    nova = simulate(tmp_path_factory.mktemp("nova-month-end"), start, (end - start).days + 1, new_per_day=20, seed=11)
    return backfilled_root(tmp_path_factory, nova, start, end)
