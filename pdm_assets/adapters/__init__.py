"""Adapters to outside systems: Spark (local, Spark Connect, Databricks), MLflow's tracking and
registry, the raw sources (a landing folder, CSV files, tables), the warehouse and the worklist
files. They know Dagster only as resources; they never import the wiring in `pdm_assets.defs`."""

import warnings

from dagster import BetaWarning, PreviewWarning, SupersessionWarning

# Single-run backfill policies and dagster-mlflow's hook are marked beta; this project relies on
# them knowingly, and the warnings, raised at import, would bury the start of every run's log.
warnings.filterwarnings("ignore", category=BetaWarning)
warnings.filterwarnings("ignore", category=PreviewWarning)
# The Databricks step launcher is superseded by Pipes, knowingly kept (see the README's Databricks
# guide); its warning would otherwise repeat at every step.
warnings.filterwarnings("ignore", category=SupersessionWarning, message="StepLauncher")
