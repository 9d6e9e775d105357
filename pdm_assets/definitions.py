"""Assembles the Dagster definitions: assets, jobs and the resources of the chosen environment."""

from __future__ import annotations

from typing import TYPE_CHECKING

import dagster as dg

if TYPE_CHECKING:
    from dagster._core.definitions.unresolved_asset_job_definition import (
        UnresolvedAssetJobDefinition,
    )

from pdm_assets.assets.features import build_feature_assets
from pdm_assets.assets.model import build_model_asset
from pdm_assets.assets.outcomes import build_outcomes_asset
from pdm_assets.assets.raw import ValidationRules, build_raw_assets
from pdm_assets.assets.scores import build_scores_asset
from pdm_assets.automation import (
    OUTCOMES_JOB,
    SCORING_JOB,
    build_landing_sensor,
    build_training_schedule,
)
from pdm_assets.databricks import no_step_launcher, step_launcher_resource
from pdm_assets.partitions import GraphPartitions, build_partitions
from pdm_assets.registry import ModelRegistry, mlflow_tracking_resource
from pdm_assets.settings import Settings, load_settings
from pdm_assets.sources import CsvFolderSource, RawSource, SimulatedFleetSource
from pdm_assets.spark import SparkResource
from pdm_assets.warehouse import SparkParquetIOManager, WarehouseResource

INGEST_JOB = "ingest_job"
TRAIN_JOB = "train_job"
SCORE_JOB = "score_job"


def raw_source(settings: Settings) -> RawSource:
    if settings.data_source == "csv":
        assert settings.csv_dir is not None
        return CsvFolderSource(
            csv_dir=str(settings.csv_dir), partitions_start=settings.partitions_start.isoformat()
        )
    return SimulatedFleetSource(
        landing_dir=str(settings.landing),
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


def local_resources(settings: Settings) -> dict[str, object]:
    """Spark in the run's process; everything under the project home."""
    spark = SparkResource(master=settings.spark_master, conf=settings.spark_conf)
    warehouse = WarehouseResource(root=settings.warehouse, table_format=settings.warehouse_format)
    return {
        # Every Spark asset asks for this key; here the step runs in the run's own process.
        "step_launcher": no_step_launcher,
        "spark": spark,
        "warehouse": warehouse,
        "warehouse_io_manager": SparkParquetIOManager(warehouse_resource=warehouse, spark=spark),
        "source": raw_source(settings),
        "validation_rules": ValidationRules(
            sensor_ranges={name: list(bounds) for name, bounds in settings.sensor_ranges.items()}
        ),
        "mlflow": mlflow_resource(settings, artifacts_under_home=True),
        "model_registry": ModelRegistry(
            tracking_uri=settings.mlflow_tracking_uri,
            registry_uri=settings.mlflow_registry_uri,
            model_name=settings.model_name,
        ),
    }


def cluster_resources(settings: Settings) -> dict[str, object]:
    """Any Spark master (PDM_SPARK_MASTER) with a warehouse every executor sees (PDM_WAREHOUSE);
    the rest as locally, each overridable by its variable."""
    return local_resources(settings)


def databricks_resources(settings: Settings) -> dict[str, object]:
    """Each Spark step on a Databricks cluster (databricks.py); the warehouse a Delta location
    on ADLS, S3 or DBFS; MLflow tracking and registry in the workspace."""
    resources = local_resources(settings)
    resources["step_launcher"] = step_launcher_resource(settings)
    # The workspace stores the experiment's artefacts itself.
    resources["mlflow"] = mlflow_resource(settings, artifacts_under_home=False)
    return resources


RESOURCES_BY_ENVIRONMENT = {
    "local": local_resources,
    "cluster": cluster_resources,
    "databricks": databricks_resources,
}


def build_assets(partitions: GraphPartitions) -> list[dg.AssetsDefinition]:
    return [
        *build_raw_assets(partitions),
        *build_feature_assets(partitions),
        build_model_asset(partitions),
        build_scores_asset(partitions),
        build_outcomes_asset(partitions),
    ]


RAW_EVENT_ASSETS = ["raw_telemetry", "raw_errors", "raw_maintenance", "raw_failures"]


def build_jobs() -> list[UnresolvedAssetJobDefinition]:
    return [
        dg.define_asset_job(
            SCORING_JOB,
            selection=dg.AssetSelection.assets(
                "raw_machines",
                *RAW_EVENT_ASSETS,
                "machine_features",
                "failure_labels",
                "machine_scores",
            ),
            description=(
                "One landed day: machines (new ones are registered), raw tables -> features -> "
                "labels -> scores."
            ),
        ),
        dg.define_asset_job(
            OUTCOMES_JOB,
            selection=dg.AssetSelection.assets("failure_labels", "model_outcomes"),
            description="Re-label a day whose horizon has passed and measure its outcomes.",
        ),
        dg.define_asset_job(
            INGEST_JOB,
            selection=dg.AssetSelection.groups("raw", "features"),
            description="Raw tables, features and labels for a range of days (one run).",
        ),
        dg.define_asset_job(
            TRAIN_JOB,
            selection=dg.AssetSelection.assets("failure_model"),
            description="Train, validate and register the model of one month.",
        ),
        dg.define_asset_job(
            SCORE_JOB,
            selection=dg.AssetSelection.assets("machine_scores"),
            description="Score a range of days with each day's month model.",
        ),
    ]


def build_definitions(settings: Settings | None = None) -> dg.Definitions:
    settings = settings or load_settings()
    partitions = build_partitions(settings)
    resources = RESOURCES_BY_ENVIRONMENT[settings.environment](settings)
    jobs = build_jobs()
    by_name = {job.name: job for job in jobs}
    return dg.Definitions(
        assets=build_assets(partitions),
        jobs=jobs,
        sensors=[
            build_landing_sensor(
                settings.landing,
                partitions.daily,
                settings.horizon_days,
                [by_name[SCORING_JOB], by_name[OUTCOMES_JOB]],
            )
        ],
        schedules=[build_training_schedule(partitions.monthly, TRAIN_JOB)],
        resources=resources,
        # One process and one Spark session for every step of a run: a JVM per step costs ~3x.
        executor=dg.in_process_executor,
    )


def environment_job(name: str) -> dg.JobDefinition:
    """A job of the definitions the environment gives *now*, for `dg.build_reconstructable_job`.

    The Databricks step launcher needs a reconstructable job, and the module-level `defs` is built
    once at import: a process that changes PDM_ENV afterwards must rebuild through this.
    """
    return build_definitions().resolve_job_def(name)


defs = build_definitions()
