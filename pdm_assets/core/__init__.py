"""The core: the fleet description, the landing folder's contract and the pure transforms from
raw rows to features, labels, the model, scores and outcomes. It imports no Dagster, MLflow or
Databricks (an import-linter contract in pyproject.toml holds it to that), so every rule here is
tested on tiny frames without a run."""
