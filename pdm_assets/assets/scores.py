"""Scores: every machine at every observation time of the day, by the model of the day's month."""

from datetime import date, timedelta
from functools import reduce

import dagster as dg
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from pdm_assets import training
from pdm_assets.partitions import GraphPartitions, Window
from pdm_assets.registry import ModelRegistry

SCORING_GROUP = "scoring"
_ONE_DAY = timedelta(days=1)
SCORE_COLUMNS = [
    "machine_id",
    "datetime",
    "predicted_component",
    *training.PROBABILITY_COLUMNS,
    "failure_probability",
    "model_name",
    "model_version",
    "model_cutoff",
    "date",
]


def months_of(window: Window) -> list[tuple[date, Window]]:
    """Split a window of days into the parts that fall in each month."""
    parts: list[tuple[date, Window]] = []
    for day in window.days:
        month = day.replace(day=1)
        if parts and parts[-1][0] == month:
            parts[-1] = (month, Window.of_days(parts[-1][1].start.date(), day + _ONE_DAY))
        else:
            parts.append((month, Window.of_days(day, day + _ONE_DAY)))
    return parts


def build_scores_asset(partitions: GraphPartitions) -> dg.AssetsDefinition:
    @dg.asset(
        group_name=SCORING_GROUP,
        description=(
            "For each machine and observation time: predicted component (0 = none), one "
            "probability per class, the probability of any failure, and the model version "
            "(the model of the day's month) that produced them."
        ),
        partitions_def=partitions.daily,
        backfill_policy=dg.BackfillPolicy.single_run(),
        io_manager_key="warehouse_io_manager",
        kinds={"spark", "mlflow", "parquet"},
        ins={"machine_features": dg.AssetIn()},
        deps=[dg.AssetDep("failure_model", partition_mapping=partitions.same_month)],
    )
    def machine_scores(
        context: dg.AssetExecutionContext,
        model_registry: ModelRegistry,
        machine_features: DataFrame,
    ) -> dg.Output[DataFrame]:
        window = Window.from_dagster(context.partition_time_window)
        scored_parts = []
        versions = {}
        for month, part in months_of(window):
            version = model_registry.version_for_cutoff(month)
            if version is None:
                raise dg.Failure(
                    description=(
                        f"No registered {model_registry.model_name} version for cutoff {month}: "
                        f"materialise failure_model partition {month.isoformat()} before scoring "
                        f"{part.start.date()}..{part.days[-1]}."
                    )
                )
            model = model_registry.load(version.version)
            features_of_month = machine_features.where(
                (F.col("datetime") >= F.lit(part.start)) & (F.col("datetime") < F.lit(part.end))
            )
            scored = training.predict(model, features_of_month).select(
                "machine_id",
                "datetime",
                "predicted_component",
                *training.PROBABILITY_COLUMNS,
                (F.lit(1.0) - F.col(training.PROBABILITY_COLUMNS[0])).alias("failure_probability"),
                F.lit(model_registry.model_name).alias("model_name"),
                F.lit(int(version.version)).alias("model_version"),
                F.lit(month).alias("model_cutoff"),
                "date",
            )
            scored_parts.append(scored)
            versions[month.isoformat()] = int(version.version)
        scores = reduce(DataFrame.unionByName, scored_parts)
        return dg.Output(
            scores,
            metadata={
                "time_range": f"{window.start.isoformat()} .. {window.end.isoformat()}",
                "model_versions": dg.MetadataValue.json(versions),
            },
        )

    return machine_scores
