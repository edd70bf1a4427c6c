"""Shared fixtures: an isolated luigi configuration and data root per test."""

from __future__ import annotations

from pathlib import Path

import luigi
import luigi.configuration
import pytest
from luigi.task_register import Register

from cvas.layout import Layout

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def luigi_config(tmp_path):
    """Point the [cvas] settings at a temporary data root; returns a setter for more keys."""
    cfg = luigi.configuration.get_config()
    saved: list[tuple[str, str, str | None]] = []

    def set_option(section: str, key: str, value) -> None:
        old = cfg.get(section, key, None) if cfg.has_section(section) else None
        saved.append((section, key, old))
        if not cfg.has_section(section):
            cfg.add_section(section)
        cfg.set(section, key, str(value))
        Register.clear_instance_cache()

    set_option("cvas", "data_root", tmp_path / "data")
    set_option("core", "autoload_range", "false")
    yield set_option
    for section, key, old in reversed(saved):
        if old is None:
            cfg.remove_option(section, key)
        else:
            cfg.set(section, key, old)
    Register.clear_instance_cache()


@pytest.fixture
def layout(tmp_path) -> Layout:
    return Layout(tmp_path / "data")


@pytest.fixture(scope="session")
def simulated_nova(tmp_path_factory):
    """A small simulated Nova (3 days from Monday 2025-10-06, 20 new subscriptions a day, seed 7)."""
    import datetime as dt

    from cvas.simulate import simulate

    return simulate(tmp_path_factory.mktemp("nova"), dt.date(2025, 10, 6), 3, new_per_day=20, seed=7)
