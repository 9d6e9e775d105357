"""Outcomes: the scores of a day against the labels that became known, a horizon later."""

import dagster as dg
from pyspark.sql import DataFrame

from pdm_assets.adapters.mlflow_registry import ModelRegistry
from pdm_assets.adapters.sources import RawSource
from pdm_assets.adapters.spark import SparkResource, StepLauncherParam
from pdm_assets.core import feedback, monitoring
from pdm_assets.defs import metadata
from pdm_assets.defs.instance_config import WAREHOUSE_POOL
from pdm_assets.defs.io_manager import WarehouseReader
from pdm_assets.defs.monitoring.outcomes import (
    FEATURE_LOOKBACK_DAYS,
    REFERENCE_DAYS,
    TREND_DAYS,
    drift_since_cutoff,
    outcomes_by_day,
    outcomes_page,
    trend_figure,
)
from pdm_assets.defs.partitions import GraphPartitions, partition_window
from pdm_assets.defs.thresholds import CheckThresholds

MONITORING_GROUP = "monitoring"


def build_outcomes_asset(partitions: GraphPartitions) -> dg.AssetsDefinition:
    fleet = partitions.fleet

    @dg.asset(
        pool=WAREHOUSE_POOL,
        group_name=MONITORING_GROUP,
        description=(
            "Per day and component: realised precision, recall and F1 of the alerts (the "
            "decision policy's alert_component) against the labels known so far (materialise "
            "it a horizon after the day, once the day's labels are no longer censored), the "
            "alert rate, and the drift of the day's "
            f"features from the {REFERENCE_DAYS} days before the scoring model's cutoff."
        ),
        partitions_def=partitions.daily,
        backfill_policy=dg.BackfillPolicy.single_run(),
        io_manager_key="warehouse_io_manager",
        kinds={"spark", "parquet"},
        ins={"machine_scores": dg.AssetIn(), "failure_labels": dg.AssetIn()},
        # Read through the warehouse, not loaded as inputs: the drift reads two windows of
        # features, the trend this asset's own earlier days.
        deps=[
            dg.AssetDep(
                "machine_features",
                partition_mapping=dg.TimeWindowPartitionMapping(
                    start_offset=-FEATURE_LOOKBACK_DAYS
                ),
            ),
            dg.AssetDep(
                "model_outcomes",
                partition_mapping=dg.TimeWindowPartitionMapping(
                    start_offset=-TREND_DAYS, end_offset=-1
                ),
            ),
        ],
    )
    def model_outcomes(
        context: dg.AssetExecutionContext,
        step_launcher: StepLauncherParam,
        spark: SparkResource,
        warehouse: WarehouseReader,
        source: RawSource,
        model_registry: ModelRegistry,
        config: CheckThresholds,
        machine_scores: DataFrame,
        failure_labels: DataFrame,
    ) -> dg.Output[DataFrame]:
        window = partition_window(context.partition_time_window)
        session = spark.get_session()
        quality = monitoring.realised_quality(machine_scores, failure_labels, fleet)
        drift = drift_since_cutoff(warehouse.store, session, window, fleet)
        planner = feedback.validate(source.read_feedback(session), fleet).valid.cache()
        days = outcomes_by_day(
            session,
            window,
            machine_scores,
            failure_labels,
            planner,
            drift[1],
            model_registry,
            fleet,
        )
        planner.unpersist()
        trend = metadata.to_png(trend_figure(warehouse, session, days.rows, window))
        page = outcomes_page(window, quality, days, drift, config.drift_alert, trend)
        return dg.Output(days.rows, metadata=page)

    return model_outcomes
