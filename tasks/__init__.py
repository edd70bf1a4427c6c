"""Luigi tasks of cvas: thin wrappers that resolve paths and call one cvas function each."""

from cvas.core.logs import run_id

# Without the `cvas` command (`luigi --module tasks ...`) the process still gets one run id,
# before luigi starts its worker processes, so that every sidecar of the run records the same.
run_id()

from tasks.config import CvasSettings, directory_source, simulated_source  # noqa: F401
from tasks.steps.counters import DailyCounters, ExportCounters, MasterCpc  # noqa: F401
from tasks.pipeline import Backfill, DailyPipeline  # noqa: F401
from tasks.analyst.report import DailyReport  # noqa: F401
from tasks.steps.subscriptions import SubscriptionView  # noqa: F401
from tasks.steps.transactions import FetchTransactions, LoadTransactions  # noqa: F401
from tasks.steps.user_base import AggregateUserBase, ExportUserBase, FetchUserBase  # noqa: F401
