"""The resources of each environment (PDM_ENV), chosen in `resources_for`.

* `local`: Dagster runs here and each step's Spark session is in the run's process; Spark may
  still be anywhere PDM_SPARK_MASTER points (local[*], a warm Spark Connect server,
  spark://, yarn, k8s://). The warehouse, MLflow and Dagster storage are under the home unless
  their variables say otherwise.
* `databricks`: each Spark step runs on a Databricks cluster through the step launcher; the
  warehouse is a Delta location the cluster writes; MLflow tracking and the registry are the
  workspace's.
"""

from __future__ import annotations

from collections.abc import Callable

import dagster as dg

from pdm_assets.adapters.databricks import no_step_launcher, step_launcher_resource
from pdm_assets.adapters.mlflow_registry import ModelRegistry, mlflow_tracking_resource
from pdm_assets.adapters.sources import (
    CsvFolderSource,
    LandingFolderSource,
    RawSource,
    SimulatedFleetSource,
)
from pdm_assets.adapters.spark import SparkResource
from pdm_assets.adapters.table_source import TableSource
from pdm_assets.adapters.worklist_files import WorklistFiles
from pdm_assets.defs.io_manager import WarehouseIOManager, WarehouseReader
from pdm_assets.settings import Settings


def raw_source(settings: Settings) -> RawSource:
    """PDM_DATA_SOURCE: a producer's landing folder (read only), a folder of CSV files in the
    public layout, Spark tables or paths, or the simulated fleet in the home's own folder."""
    if settings.data_source == "landing":
        return LandingFolderSource(landing_dir=settings.landing)
    if settings.data_source == "csv":
        assert settings.csv_dir is not None
        return CsvFolderSource(
            csv_dir=str(settings.csv_dir), partitions_start=settings.partitions_start.isoformat()
        )
    if settings.data_source == "tables":
        return TableSource(tables=settings.tables)
    return SimulatedFleetSource(
        landing_dir=settings.landing,
        machines=settings.sim_machines,
        start=settings.partitions_start.isoformat(),
        days=settings.sim_days,
        seed=settings.sim_seed,
    )


def mlflow_resource(settings: Settings, artifacts_under_home: bool) -> dg.ResourceDefinition:
    config = {
        "experiment_name": settings.mlflow_experiment,
        "mlflow_tracking_uri": settings.mlflow_tracking_uri,
    }
    if artifacts_under_home:
        config["artifact_location"] = settings.mlflow_artifacts.as_uri()
    return mlflow_tracking_resource.configured(config)


def _shared(settings: Settings) -> dict[str, object]:
    """What every environment configures the same way from its settings."""
    # PDM_SPARK_CONF may hold object-store keys: read at run time, shown as the variable's name.
    spark = SparkResource(
        master=settings.spark_master,
        conf_json=dg.EnvVar("PDM_SPARK_CONF") if settings.spark_conf else "{}",
    )
    warehouse = WarehouseReader(
        root=settings.warehouse,
        table_format=settings.warehouse_format,
        keep_replaced_hours=settings.keep_replaced_hours,
    )
    return {
        "spark": spark,
        "warehouse": warehouse,
        "warehouse_io_manager": WarehouseIOManager(warehouse_resource=warehouse, spark=spark),
        "source": raw_source(settings),
        "worklist_files": WorklistFiles(location=settings.worklists),
        "model_registry": ModelRegistry(
            tracking_uri=settings.mlflow_tracking_uri,
            registry_uri=settings.mlflow_registry_uri,
            model_name=settings.model_name,
        ),
    }


def local_resources(settings: Settings) -> dict[str, object]:
    """Every step in the run's process; MLflow's artefacts under the home."""
    return {
        **_shared(settings),
        # Every Spark asset asks for this key; here the step runs where the run runs.
        "step_launcher": no_step_launcher,
        "mlflow": mlflow_resource(settings, artifacts_under_home=True),
    }


def databricks_resources(settings: Settings) -> dict[str, object]:
    """Each Spark step on a Databricks cluster (databricks.py); the workspace stores the
    experiment's artefacts itself."""
    return {
        **_shared(settings),
        "step_launcher": step_launcher_resource(settings),
        "mlflow": mlflow_resource(settings, artifacts_under_home=False),
    }


RESOURCES_BY_ENVIRONMENT: dict[str, Callable[[Settings], dict[str, object]]] = {
    "local": local_resources,
    "databricks": databricks_resources,
}


def resources_for(settings: Settings) -> dict[str, object]:
    return RESOURCES_BY_ENVIRONMENT[settings.environment](settings)
