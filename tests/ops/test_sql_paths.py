"""A data root whose path holds a quote and a space works end to end: every path reaches SQL
bound or escaped (a formatted path used to end in a DuckDB ParserException)."""

from __future__ import annotations

import pytest

import pyarrow.parquet as pq

from cvas.core.layout import Layout
from cvas.core.schemas import KINDS
from cvas.simulator.legacy import write_legacy_tree
from tests.cli_runs import copy_nova, run_cvas, write_cfg

pytestmark = pytest.mark.slow   # see pyproject: make test-fast leaves it out


def test_a_data_root_with_a_quote_and_a_space_in_its_path_works_end_to_end(simulated_nova, tmp_path):
    home = tmp_path / "o'brien data"
    nova = copy_nova(simulated_nova, home / "nova's copy")
    first, second, third = simulated_nova.days
    root = home / "data"
    cfg = home / "luigi.cfg"
    write_cfg(cfg, root, log_dir=home / "logs", master_xlsx=nova / simulated_nova.master_xlsx.name,
              exclusions=nova / simulated_nova.exclusions.name,
              extra=f"[simulated_source]\ndatabase = {nova / simulated_nova.database.name}\n")

    # through the preflight of the building commands too (it used to pass such a root, then the build failed)
    run = run_cvas(cfg, "backfill", "--start", str(first), "--end", str(second))
    assert run.returncode == 0, run.stdout + run.stderr
    run = run_cvas(cfg, "daily", "--date", str(third))   # a daily folds the view from the state
    assert run.returncode == 0, run.stdout + run.stderr
    lay = Layout(root)
    for path in (lay.counters_cpc, lay.counters_service, lay.master_cpc, lay.subscriptions(third),
                 lay.subscriptions_latest, lay.report(third), lay.user_base_export("service")):
        assert path.exists(), path
    for command in (("verify", "--start", str(first), "--end", str(third)),
                    ("status", "--start", str(first), "--end", str(third)),
                    ("report", "--date", str(third)),
                    ("ltv", "--service", "Abaco", "--month", f"{first:%Y-%m}"),
                    ("query", "--subscription-id", _a_subscription(lay)),
                    ("summary",)):
        run = run_cvas(cfg, *command)
        assert run.returncode == 0 and "Parser Error" not in run.stderr, (command, run.stdout + run.stderr)

    legacy = home / "legacy's tree"
    write_legacy_tree(simulated_nova.database, legacy, [first, second], [second, third])
    adopted = home / "adopted data"
    run = run_cvas(write_cfg(home / "adopt.cfg", adopted, log_dir=home / "logs"), "adopt", str(legacy))
    assert run.returncode == 0 and "MISMATCH" not in run.stdout, run.stdout + run.stderr
    assert all(Layout(adopted).transactions(k, d).exists() for k in KINDS for d in (first, second, third))


def _a_subscription(lay: Layout) -> str:
    view = pq.read_table(lay.subscriptions_latest, columns=["subscription_id"])
    return str(view.column(0)[0].as_py())

