"""Outcomes: the scores of a day against the labels that became known, a horizon later."""

from datetime import date, timedelta
from functools import reduce

import dagster as dg
from matplotlib.figure import Figure
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from pdm_assets import decision, feedback, monitoring, plots
from pdm_assets.assets.model import metrics_table
from pdm_assets.fleet import DEFAULT_FLEET, Fleet
from pdm_assets.instance_config import WAREHOUSE_POOL
from pdm_assets.partitions import GraphPartitions, partition_window
from pdm_assets.registry import ModelRegistry
from pdm_assets.sources import RawSource
from pdm_assets.spark import SparkResource, StepLauncherParam
from pdm_assets.timewindow import Window
from pdm_assets.warehouse import (
    DatasetStore,
    MissingDatasetError,
    WarehouseResource,
    require_every_day,
)

MONITORING_GROUP = "monitoring"
REFERENCE_DAYS = 28
TREND_DAYS = 60
# A day's features and the reference window before its month's cutoff: at most 30 days back to
# the month start, then REFERENCE_DAYS more.
FEATURE_LOOKBACK_DAYS = 30 + REFERENCE_DAYS


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
        warehouse: WarehouseResource,
        source: RawSource,
        model_registry: ModelRegistry,
        machine_scores: DataFrame,
        failure_labels: DataFrame,
    ) -> dg.Output[DataFrame]:
        window = partition_window(context.partition_time_window)
        session = spark.get_session()
        metrics, rows, censored, alerts = monitoring.realised_quality(
            machine_scores, failure_labels, fleet
        )
        drift, max_drift, drift_note = drift_since_cutoff(warehouse.store, session, window, fleet)
        planner = feedback.validate(source.read_feedback(session), fleet).valid.cache()
        versions_by_day = _versions_by_day(machine_scores)
        expected = _expected_by_version(model_registry, versions_by_day)
        per_day = []
        day_outcomes = []
        for day in window.days:
            day_scores = machine_scores.where(F.col("date") == F.lit(day))
            day_labels = failure_labels.where(F.col("date") == F.lit(day))
            outcome = monitoring.alert_outcome(day_scores, day_labels, planner, fleet.horizon_hours)
            day_outcomes.append(outcome)
            per_day.append(
                monitoring.outcome_rows(
                    session,
                    day,
                    *monitoring.realised_quality(day_scores, day_labels, fleet),
                    max_drift,
                    outcome,
                    _expected_of_day(expected, versions_by_day.get(day, [])),
                )
            )
        planner.unpersist()
        outcomes = reduce(DataFrame.unionByName, per_day)
        top_drift = dict(sorted(drift.items(), key=lambda item: -item[1])[:5])
        return dg.Output(
            outcomes,
            metadata={
                "time_range": f"{window.start.isoformat()} .. {window.end.isoformat()}",
                "scored_rows": rows,
                "censored_rows": censored,
                "alert_rate": alerts / rows if rows else 0.0,
                **expected_beside_realised(day_outcomes, expected),
                "realised_metrics": dg.MetadataValue.md(metrics_table(metrics)),
                "max_feature_drift": dg.MetadataValue.float(max_drift)
                if max_drift is not None
                else dg.MetadataValue.null(),
                "drifting": max_drift is not None and max_drift > monitoring.DRIFT_ALERT,
                "drift_reference": drift_note,
                "top_drift": dg.MetadataValue.json({k: round(v, 3) for k, v in top_drift.items()}),
                "trend": plots.markdown_image(
                    plots.to_png(_trend_figure(warehouse, session, outcomes, window)),
                    "realised recall and alert rate",
                ),
            },
        )

    return model_outcomes


def _versions_by_day(scores: DataFrame) -> dict[date, list[int]]:
    """The model versions that scored each day, in one pass (not one Spark job per day)."""
    found: dict[date, list[int]] = {}
    for row in scores.select("date", "model_version").distinct().collect():
        found.setdefault(row["date"], []).append(int(row["model_version"]))
    return {day: sorted(versions) for day, versions in found.items()}


def _expected_by_version(
    registry: ModelRegistry, versions_by_day: dict[date, list[int]]
) -> dict[int, decision.Expectation]:
    """The expectation stored with each model version that scored these rows."""
    versions = {version for day in versions_by_day.values() for version in day}
    found = {version: registry.policy_of(version).expected for version in sorted(versions)}
    return {version: value for version, value in found.items() if value is not None}


def _expected_of_day(
    expected: dict[int, decision.Expectation], versions: list[int]
) -> tuple[float | None, float | None]:
    known = [expected[v] for v in versions if v in expected]
    if not known:
        return None, None
    return known[0].alerts_per_day, known[0].precision


def expected_beside_realised(
    outcomes: list[monitoring.AlertOutcome], expected: dict[int, decision.Expectation]
) -> dict[str, float | str]:
    """The model page's expectations next to what the days delivered, for the asset page."""
    days = len(outcomes)
    alerts = sum(outcome.alerts for outcome in outcomes)
    right = sum(outcome.alerts * outcome.pooled_precision for outcome in outcomes)
    realised: dict[str, float | str] = {
        "realised_alerts_per_day": alerts / days if days else 0.0,
        "realised_pooled_precision": right / alerts if alerts else 0.0,
        "false_alarms_measured": sum(outcome.false_alarms_measured for outcome in outcomes),
        "false_alarms_recorded": sum(outcome.false_alarms_recorded for outcome in outcomes),
        "alerted_machine_components": sum(outcome.alerted_pairs for outcome in outcomes),
    }
    if expected:
        first = next(iter(expected.values()))
        realised["expected_alerts_per_day"] = first.alerts_per_day
        realised["expected_pooled_precision"] = first.precision
    else:
        realised["expected"] = "not recorded by the scoring model version"
    return realised


def drift_since_cutoff(
    store: DatasetStore, session: SparkSession, window: Window, fleet: Fleet = DEFAULT_FLEET
) -> tuple[dict[str, float], float | None, str]:
    """Drift of the window's features from the REFERENCE_DAYS before its month's cutoff: per
    feature, the largest, and what was compared (or why nothing was)."""
    cutoff = window.start.date().replace(day=1)
    reference_window = Window.of_days(cutoff - timedelta(days=REFERENCE_DAYS), cutoff)
    # The day's own features must all be there: a hole would read as "no drift".
    materialised = require_every_day(store, "machine_features", window)
    if not materialised.intersection(reference_window.days):
        # The first month of data has no reference: unknown, not zero.
        return {}, None, f"not measured: no machine_features in {reference_window.label()}"
    current = store.read_window(session, "machine_features", window)
    reference = store.read_window(session, "machine_features", reference_window)
    drift = monitoring.feature_drift(current, reference, fleet)
    compared = f"features of {window.label()} against {reference_window.label()}"
    return drift, max(drift.values(), default=None), compared


def _trend_figure(
    warehouse: WarehouseResource, session: SparkSession, outcomes: DataFrame, window: Window
) -> Figure:
    history_window = Window.of_days(
        window.start.date() - timedelta(days=TREND_DAYS), window.start.date()
    )
    try:
        earlier = warehouse.store.read_window(session, "model_outcomes", history_window)
        rows = earlier.unionByName(outcomes.select(*earlier.columns))
    except MissingDatasetError:
        rows = outcomes
    by_day = (
        rows.groupBy("date")
        .agg(
            F.avg("recall").alias("mean recall"),
            F.avg("precision").alias("mean precision"),
            F.first("alert_rate").alias("alert rate"),
        )
        .orderBy("date")
        .collect()
    )
    days = [str(row["date"]) for row in by_day]
    series = {
        name: [float(row[name]) for row in by_day]
        for name in ("mean recall", "mean precision", "alert rate")
    }
    return plots.trend(days, series, "realised quality by day")
