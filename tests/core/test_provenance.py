"""Sidecars and quality reports are read by one rule: a missing or unreadable file is None (decision D13)."""

from __future__ import annotations

from cvas.core import provenance
from cvas.core.layout import Layout, sidecar
from cvas.core.logs import run_id
from cvas.core.quality import read_quality, write_quality


def test_a_sidecar_records_the_run_and_an_unreadable_one_counts_as_none(tmp_path):
    layout = Layout(tmp_path / "data")
    output = layout.root / "counters" / "x.parquet"
    output.parent.mkdir(parents=True)
    output.write_bytes(b"PAR1")
    meta = provenance.record(layout, output, inputs={}, params={}, rows=1)
    assert provenance.read(layout, output) == meta and meta["run_id"] == run_id() != ""
    for broken in ("{not json", "[1, 2]", "\udcff"):
        sidecar(layout, output).write_text(broken, encoding="utf-8", errors="surrogateescape")
        assert provenance.read(layout, output) is None, broken
    sidecar(layout, output).unlink()
    assert provenance.read(layout, output) is None


def test_quality_reports_round_trip_and_a_broken_one_is_none(tmp_path):
    path = tmp_path / "quality" / "act" / "2026-01-14.json"
    write_quality(tmp_path / ".staging", path, {"status": "ok", "rejected": 0})
    assert read_quality(path) == {"status": "ok", "rejected": 0}
    path.write_text('"ok"', encoding="utf-8")
    assert read_quality(path) is None
    assert read_quality(tmp_path / "absent.json") is None
