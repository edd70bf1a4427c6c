"""`cvas adopt`: a legacy tree made by the simulator, taken in without losing a row."""

from __future__ import annotations

import pyarrow.parquet as pq
import pytest

from cvas.ops.adopt import adopt, format_reconciliation
from cvas.core.layout import Layout
from cvas.core.schemas import KINDS
from cvas.simulator.legacy import write_legacy_tree


def test_adopt_reconciles_every_row(simulated_nova, tmp_path):
    days = simulated_nova.days
    legacy = tmp_path / "legacy"
    # days 1-2 in the legacy Parquet store, days 2-3 in Historical_Data: day 2 is in both
    written = write_legacy_tree(simulated_nova.database, legacy, days[:2], days[1:])
    lay = Layout(tmp_path / "data")
    counts = adopt(legacy, lay)
    text = format_reconciliation(counts)
    assert "MISMATCH" not in text and "reno" in text
    for kind in KINDS:
        kind_counts = [mc for (k, _), mc in counts.items() if k == kind]
        assert sum(mc.source for mc in kind_counts) == written[kind]
        assert sum(mc.unassigned for mc in kind_counts) == 1          # the null-date legacy row, kept aside
        for day in days:
            assert lay.transactions(kind, day).exists()
        # day 2 arrived twice: once from each source, so its rows are counted as duplicates, never lost
        assert sum(mc.duplicates for mc in kind_counts) >= pq.read_metadata(lay.transactions(kind, days[1])).num_rows
        assert list((lay.root / "adopt" / "unassigned").glob(f"{kind}-*.parquet"))
    # a second adopt leaves the adopted days alone
    again = adopt(legacy, lay)
    assert all(mc.written == 0 for mc in again.values())
    assert sum(mc.already_present_days for mc in again.values()) == len(KINDS) * len(days)


def test_adopted_days_need_no_fetch(simulated_nova, tmp_path, luigi_config):
    from cvas.ops.status import grid

    days = simulated_nova.days
    legacy = tmp_path / "legacy"
    write_legacy_tree(simulated_nova.database, legacy, days, [])
    lay = Layout(tmp_path / "data")
    adopt(legacy, lay)
    cells = grid(lay, days[0], days[-1], None)
    assert all(cells[d][f"transactions:{k}"].state == "present" for d in days for k in KINDS)
    assert all(cells[d][f"raw:{k}"].state == "present" for d in days for k in KINDS)


def test_adopt_refuses_the_data_root_itself(simulated_nova, tmp_path):
    """cvas keeps transactions where the legacy kept them: adopting a legacy tree in place would read
    cvas's own partitions as legacy ones and leave the legacy files in cvas's folders."""
    from cvas.ops.adopt import AdoptError

    root = tmp_path / "data"
    write_legacy_tree(simulated_nova.database, root, simulated_nova.days[:1], [])
    with pytest.raises(AdoptError, match=r"data: the legacy installation is the data root itself; .*move the legacy"):
        adopt(root, Layout(root))
    assert not Layout(root).transactions("act", simulated_nova.days[0]).exists()
