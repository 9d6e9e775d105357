"""Monitoring: realised quality of the scores once their labels are known, and feature drift."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from pdm_assets.core import training
from pdm_assets.core.fleet import DEFAULT_FLEET, Fleet


def realised_quality(
    scores: DataFrame, labels: DataFrame, fleet: Fleet = DEFAULT_FLEET
) -> tuple[dict[str, dict[str, float]], int, int, int]:
    """Per-component metrics of scores against uncensored labels; rows, censored rows, alerts."""
    joined = scores.join(
        labels.select("machine_id", "datetime", "label", "censored"), ["machine_id", "datetime"]
    )
    known = joined.where(~F.col("censored"))
    counts = joined.agg(
        F.count(F.lit(1)).alias("rows"),
        F.sum(F.col("censored").cast("int")).alias("censored"),
        F.sum(F.col("alert").cast("int")).alias("alerts"),
    ).first()
    assert counts is not None
    return (
        training.component_metrics(known, fleet=fleet),
        int(counts["rows"]),
        int(counts["censored"] or 0),
        int(counts["alerts"] or 0),
    )


def feature_drift(
    current: DataFrame, reference: DataFrame, fleet: Fleet = DEFAULT_FLEET
) -> dict[str, float]:
    """|mean now - mean in the reference| / sd in the reference, per numeric feature."""
    numeric = fleet.numeric_features
    now = current.agg(*[F.avg(name).alias(name) for name in numeric]).first()
    ref = reference.agg(
        *[F.avg(name).alias(f"m_{name}") for name in numeric],
        *[F.stddev_samp(name).alias(f"s_{name}") for name in numeric],
    ).first()
    assert now is not None and ref is not None
    drift = {}
    for name in numeric:
        mean_now, mean_ref, sd_ref = now[name], ref[f"m_{name}"], ref[f"s_{name}"]
        if mean_now is None or mean_ref is None or not sd_ref:
            continue
        drift[name] = abs(mean_now - mean_ref) / sd_ref
    return drift


def outcome_rows(
    spark: SparkSession,
    day: date,
    metrics: dict[str, dict[str, float]],
    rows: int,
    censored: int,
    alerts: int,
    max_drift: float | None,
    outcome: AlertOutcome | None = None,
    expected: tuple[float | None, float | None] = (None, None),
) -> DataFrame:
    """One row per component for the day: the table the trend picture reads back. The day's
    pooled precision, false alarms and the policy's expected alerts per day and precision
    (`expected`) repeat on each of its rows."""
    day_values = (
        (
            outcome.pooled_precision,
            outcome.false_alarms_measured,
            outcome.false_alarms_recorded,
        )
        if outcome is not None
        else (None, None, None)
    )
    records = [
        (
            day,
            component,
            values["precision"],
            values["recall"],
            values["f1"],
            int(values["support"]),
            rows,
            censored,
            alerts,
            alerts / rows if rows else 0.0,
            max_drift,
            *day_values,
            *expected,
        )
        for component, values in metrics.items()
    ]
    schema = (
        "date date, component string, precision double, recall double, f1 double, "
        "support int, scored_rows int, censored_rows int, alerts int, alert_rate double, "
        "max_feature_drift double, pooled_precision double, false_alarms_measured int, "
        "false_alarms_recorded int, expected_alerts_per_day double, expected_precision double"
    )
    return spark.createDataFrame(records, schema)


@dataclass(frozen=True)
class AlertOutcome:
    """A day's alerts against what happened: rows that alerted (among the settled ones), the
    pooled precision (an alert is right when it names the first component to fail), and false
    alarms per alerting (machine, component) measured by the labels and recorded by the
    planner."""

    alerts: int
    pooled_precision: float
    alerted_pairs: int
    false_alarms_measured: int
    false_alarms_recorded: int


def alert_outcome(
    scores: DataFrame, labels: DataFrame, planner_feedback: DataFrame, horizon_hours: int
) -> AlertOutcome:
    """`scores` and `labels` of one day; `planner_feedback` typed (`feedback.validate`).

    A (machine, component) that alerted on the day is a measured false alarm when none of its
    settled alerting rows was right, and a recorded one when the planner marked it
    `false_alarm` between its first alert of the day and a horizon after its last.
    """
    alerted = (
        scores.where(F.col("alert"))
        .join(
            labels.where(~F.col("censored")).select("machine_id", "datetime", "label"),
            ["machine_id", "datetime"],
        )
        .withColumn("_right", F.col("label") == F.col("alert_component"))
    )
    pairs = alerted.groupBy("machine_id", F.col("alert_component_name").alias("component")).agg(
        F.max(F.col("_right").cast("int")).alias("_any_right"),
        F.min("datetime").alias("_first"),
        F.max("datetime").alias("_last"),
    )
    marked = planner_feedback.where(F.col("action") == "false_alarm").select(
        F.col("machine_id").alias("_machine"),
        F.col("component").alias("_component"),
        F.unix_timestamp("recorded_at").alias("_recorded"),
    )
    recorded = pairs.join(
        marked,
        (F.col("_machine") == F.col("machine_id"))
        & (F.col("_component") == F.col("component"))
        & (F.col("_recorded") >= F.unix_timestamp("_first"))
        & (F.col("_recorded") <= F.unix_timestamp("_last") + F.lit(horizon_hours * 3600)),
        "left_semi",
    ).count()
    rows = alerted.agg(
        F.count(F.lit(1)).alias("alerts"), F.sum(F.col("_right").cast("int")).alias("right")
    ).first()
    counts = pairs.agg(
        F.count(F.lit(1)).alias("pairs"),
        F.sum((F.col("_any_right") == 0).cast("int")).alias("wrong"),
    ).first()
    assert rows is not None and counts is not None
    alerts = int(rows["alerts"] or 0)
    return AlertOutcome(
        alerts=alerts,
        pooled_precision=int(rows["right"] or 0) / alerts if alerts else 0.0,
        alerted_pairs=int(counts["pairs"] or 0),
        false_alarms_measured=int(counts["wrong"] or 0),
        false_alarms_recorded=recorded,
    )
