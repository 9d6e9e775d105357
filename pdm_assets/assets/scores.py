"""Scores: every machine at every observation time of the day, by the model of the day's month."""

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from functools import reduce

import dagster as dg
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from pdm_assets import plots, training
from pdm_assets.partitions import GraphPartitions, partition_window
from pdm_assets.registry import ModelRegistry
from pdm_assets.spark import StepLauncherParam
from pdm_assets.timewindow import Window

SCORING_GROUP = "scoring"
_ONE_DAY = timedelta(days=1)


def months_of(window: Window) -> list[tuple[date, Window]]:
    """Split a window of days into the parts that fall in each month."""
    parts: list[tuple[date, Window]] = []
    for day in window.days:
        month = day.replace(day=1)
        if parts and parts[-1][0] == month:
            parts[-1] = (month, Window.of_days(parts[-1][1].first_day, day + _ONE_DAY))
        else:
            parts.append((month, Window.of_days(day, day + _ONE_DAY)))
    return parts


def build_scores_asset(partitions: GraphPartitions) -> dg.AssetsDefinition:
    @dg.asset(
        group_name=SCORING_GROUP,
        description=(
            "For each machine and observation time: predicted component (0 = none), one "
            "probability per class, the probability of any failure, and the model version "
            "(the model of the day's month) that produced them. Skipped, with the reason, "
            "when a month of the range has no registered model."
        ),
        partitions_def=partitions.daily,
        backfill_policy=dg.BackfillPolicy.single_run(),
        io_manager_key="warehouse_io_manager",
        kinds={"spark", "mlflow", "parquet"},
        ins={"machine_features": dg.AssetIn()},
        deps=[dg.AssetDep("failure_model", partition_mapping=partitions.same_month)],
        output_required=False,
        check_specs=[
            dg.AssetCheckSpec(
                "probabilities_valid",
                asset="machine_scores",
                description="Every probability in [0, 1] and the five of a row sum to 1.",
            ),
            dg.AssetCheckSpec(
                "every_active_machine_scored",
                asset="machine_scores",
                description="Every machine with a feature row has a score at that time.",
            ),
        ],
    )
    def machine_scores(
        context: dg.AssetExecutionContext,
        step_launcher: StepLauncherParam,
        model_registry: ModelRegistry,
        machine_features: DataFrame,
    ) -> Iterator[dg.Output[DataFrame] | dg.AssetCheckResult | dg.AssetObservation]:
        window = partition_window(context.partition_time_window)
        months = months_of(window)
        versions = {month: model_registry.version_for_cutoff(month) for month, _ in months}
        missing = [month.isoformat() for month, version in versions.items() if version is None]
        if missing:
            reason = (
                f"skipped: no registered {model_registry.model_name} version for cutoff "
                f"{', '.join(missing)} that passed its quality gate; materialise "
                "failure_model partition "
                f"{', '.join(missing)}, then score {window.days[0]}..{window.days[-1]} again"
            )
            context.log.warning(reason)
            yield dg.AssetObservation(
                asset_key="machine_scores",
                partition=context.partition_key if len(window.days) == 1 else None,
                metadata={"skip_reason": reason},
            )
            # Check outputs are required even when the asset is skipped: nothing was scored, so
            # no probability is invalid, and no active machine was scored.
            yield dg.AssetCheckResult(
                check_name="probabilities_valid", passed=True, metadata={"scored_rows": 0}
            )
            yield dg.AssetCheckResult(
                check_name="every_active_machine_scored",
                passed=False,
                severity=dg.AssetCheckSeverity.WARN,
                metadata={"skip_reason": reason},
            )
            return
        scored_parts = []
        for month, part in months:
            version = versions[month]
            assert version is not None
            model = model_registry.load(version.version)
            features_of_month = machine_features.where(part.contains("datetime"))
            scored_parts.append(
                training.predict(model, features_of_month).select(
                    "machine_id",
                    "datetime",
                    "predicted_component",
                    *training.PROBABILITY_COLUMNS,
                    (F.lit(1.0) - F.col(training.PROBABILITY_COLUMNS[0])).alias(
                        "failure_probability"
                    ),
                    F.lit(model_registry.model_name).alias("model_name"),
                    F.lit(int(version.version)).alias("model_version"),
                    F.lit(month).alias("model_cutoff"),
                    "date",
                )
            )
        scores = reduce(DataFrame.unionByName, scored_parts).localCheckpoint(eager=True)
        summary = score_summary(scores, machine_features)
        yield dg.Output(
            scores,
            metadata={
                "time_range": f"{window.start.isoformat()} .. {window.end.isoformat()}",
                "model_versions": dg.MetadataValue.json(
                    {month.isoformat(): int(v.version) for month, v in versions.items() if v}
                ),
                "rows": summary.rows,
                "machines_scored": summary.machines,
                "alerts": summary.alerts,
                "alert_rate": summary.alerts / summary.rows if summary.rows else 0.0,
                "score_distribution": plots.markdown_image(
                    plots.to_png(plots.score_distribution(summary.failure_probabilities)),
                    "score distribution",
                ),
            },
        )
        yield dg.AssetCheckResult(
            check_name="probabilities_valid",
            passed=summary.invalid_rows == 0,
            metadata={"invalid_rows": summary.invalid_rows},
        )
        yield dg.AssetCheckResult(
            check_name="every_active_machine_scored",
            passed=summary.unscored_rows == 0,
            metadata={"feature_rows_without_score": summary.unscored_rows},
        )

    return machine_scores


@dataclass(frozen=True)
class ScoreSummary:
    rows: int
    machines: int
    alerts: int
    invalid_rows: int
    unscored_rows: int
    failure_probabilities: list[float]


def score_summary(scores: DataFrame, features: DataFrame) -> ScoreSummary:
    probabilities = [F.col(name) for name in training.PROBABILITY_COLUMNS]
    out_of_range = reduce(
        lambda a, b: a | b, [(p < 0) | (p > 1) | p.isNull() for p in probabilities]
    )
    total = reduce(lambda a, b: a + b, probabilities)
    invalid = out_of_range | (F.abs(total - F.lit(1.0)) > F.lit(1e-6))
    counts = scores.agg(
        F.count(F.lit(1)).alias("rows"),
        F.countDistinct("machine_id").alias("machines"),
        F.sum(F.when(F.col("predicted_component") > 0, 1).otherwise(0)).alias("alerts"),
        F.sum(F.when(invalid, 1).otherwise(0)).alias("invalid"),
    ).first()
    assert counts is not None
    unscored = features.join(scores, ["machine_id", "datetime"], "left_anti").count()
    distribution = [row[0] for row in scores.select("failure_probability").collect()]
    return ScoreSummary(
        rows=int(counts["rows"]),
        machines=int(counts["machines"]),
        alerts=int(counts["alerts"] or 0),
        invalid_rows=int(counts["invalid"] or 0),
        unscored_rows=unscored,
        failure_probabilities=distribution,
    )
