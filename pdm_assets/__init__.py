"""pdm_assets: predictive-maintenance batch scoring with Spark ML, as a Dagster asset graph.

Layers, each importing only those below it: `dev` (the demo) -> `definitions` -> `defs` (the
Dagster wiring) -> `adapters` (Spark, MLflow, Databricks, sources, the warehouse) ->
`simulator` and `settings` -> `core` (pure functions and the fleet description, no Dagster).
"""
