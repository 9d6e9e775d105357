"""Assembles the Dagster definitions: assets, jobs and the resources of the chosen environment."""

from __future__ import annotations

import dagster as dg

from pdm_assets.assets.features import build_feature_assets
from pdm_assets.assets.model import build_model_asset
from pdm_assets.assets.raw import build_raw_assets
from pdm_assets.assets.scores import build_scores_asset
from pdm_assets.io_manager import SparkParquetIOManager, WarehouseResource
from pdm_assets.partitions import GraphPartitions, build_partitions
from pdm_assets.registry import ModelRegistry, mlflow_tracking_resource
from pdm_assets.settings import Settings, load_settings
from pdm_assets.sources import CsvFolderSource, RawSource, SimulatedFleetSource
from pdm_assets.spark import SparkResource

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


def local_resources(settings: Settings) -> dict[str, object]:
    spark = SparkResource(master=settings.spark_master)
    warehouse = WarehouseResource(root=str(settings.warehouse))
    return {
        "spark": spark,
        "warehouse": warehouse,
        "warehouse_io_manager": SparkParquetIOManager(warehouse_resource=warehouse, spark=spark),
        "source": raw_source(settings),
        "mlflow": mlflow_tracking_resource.configured(
            {
                "experiment_name": settings.mlflow_experiment,
                "mlflow_tracking_uri": settings.mlflow_tracking_uri,
                "artifact_location": settings.mlflow_artifacts.as_uri(),
            }
        ),
        "model_registry": ModelRegistry(
            tracking_uri=settings.mlflow_tracking_uri, model_name=settings.model_name
        ),
    }


RESOURCES_BY_ENVIRONMENT = {"local": local_resources}


def build_assets(partitions: GraphPartitions) -> list[dg.AssetsDefinition]:
    return [
        *build_raw_assets(partitions),
        *build_feature_assets(partitions),
        build_model_asset(partitions),
        build_scores_asset(partitions),
    ]


def build_jobs() -> list[dg.UnresolvedAssetJobDefinition]:
    return [
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
    return dg.Definitions(
        assets=build_assets(partitions),
        jobs=build_jobs(),
        resources=resources,
        # One process and one Spark session for every step of a run: a JVM per step costs ~3x.
        executor=dg.in_process_executor,
    )


defs = build_definitions()
