"""Monitoring: realised quality of the scores once their labels are known, and feature drift."""

from datetime import date

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from pdm_assets import training
from pdm_assets.fleet import DEFAULT_FLEET, Fleet

DRIFT_ALERT = 0.5  # standardised mean difference that counts as drift


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
) -> DataFrame:
    """One row per component for the day: the table the trend picture reads back."""
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
        )
        for component, values in metrics.items()
    ]
    schema = (
        "date date, component string, precision double, recall double, f1 double, "
        "support int, scored_rows int, censored_rows int, alerts int, alert_rate double, "
        "max_feature_drift double"
    )
    return spark.createDataFrame(records, schema)
