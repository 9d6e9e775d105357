"""pdm_assets: predictive-maintenance batch scoring with Spark ML, as a Dagster asset graph."""

import warnings

from dagster import BetaWarning, PreviewWarning

# Single-run backfill policies and dagster-mlflow's hook are marked beta; this project relies on
# them knowingly, and the warnings, raised at import, would bury the start of every run's log.
warnings.filterwarnings("ignore", category=BetaWarning)
warnings.filterwarnings("ignore", category=PreviewWarning)
