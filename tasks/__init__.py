"""Luigi tasks of cvas: thin wrappers that resolve paths and call one cvas function each."""

import configparser
import sys
import warnings

from cvas.core.logs import run_id
from cvas.ops.preflight import BAD_CONFIG

# Luigi reads its configuration files when imported: one it cannot parse (a line before the
# first section, a key twice) ends the process with one line and the configuration's exit
# code; a LUIGI_CONFIG_PATH that names no file is reported by tasks.config.find_config.
warnings.filterwarnings("ignore", message="Config file does not exist", category=UserWarning)
try:
    import luigi  # noqa: F401
except configparser.Error as exc:
    print(f"error: configuration: {' '.join(str(exc).split())}", file=sys.stderr)
    sys.exit(BAD_CONFIG)

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

from tasks.config import ConfigError, use_config  # noqa: E402

# The one configuration file (tasks.config.find_config), after the task classes (the check of
# its names knows their sections) and before anything reads a setting.
if "luigi.cmdline" in sys.modules:   # imported by `luigi --module tasks…`: check as `cvas` does
    from tasks.preflight import luigi_cli_preflight

    luigi_cli_preflight()
else:
    try:
        use_config()
    except ConfigError:   # the cvas command reports it, as one line (tasks.preflight.check_config)
        pass
