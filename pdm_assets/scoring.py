"""Scoring: the month split of a window, the score columns, and the summary of a scored range."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from functools import reduce

from pyspark.ml import PipelineModel
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from pdm_assets import decision, training
from pdm_assets.fleet import DEFAULT_FLEET, Fleet
from pdm_assets.timewindow import Window

_ONE_DAY = timedelta(days=1)
MODEL_COLUMNS = ["model_name", "model_version", "model_cutoff"]


def score_columns(fleet: Fleet = DEFAULT_FLEET) -> list[str]:
    """The columns of machine_scores: a probability per class named after the fleet's
    components, and the alerted component as its 1-based index (0: none) and its name."""
    return [
        "machine_id",
        "datetime",
        "predicted_component",
        *fleet.probability_columns,
        "failure_probability",
        "alert",
        "alert_component",
        "alert_component_name",
        *MODEL_COLUMNS,
        "date",
    ]


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


def score_rows(
    model: PipelineModel,
    policy: decision.DecisionPolicy,
    features: DataFrame,
    model_name: str,
    model_version: int,
    model_cutoff: date,
    fleet: Fleet = DEFAULT_FLEET,
) -> DataFrame:
    """The scores of feature rows: probabilities, the policy's alerts, and the model's identity."""
    predicted = training.predict(model, features, fleet).withColumn(
        "failure_probability", F.lit(1.0) - F.col(fleet.probability_columns[0])
    )
    alerted = decision.alerts(predicted, policy, fleet.component_probability_columns)
    names = F.array(*[F.lit(name) for name in fleet.component_names])
    alerted = alerted.withColumn(
        "alert_component_name",
        F.when(F.col("alert_component") > 0, F.element_at(names, F.col("alert_component"))),
    )
    columns = score_columns(fleet)
    return alerted.select(
        *columns[: columns.index("model_name")],
        F.lit(model_name).alias("model_name"),
        F.lit(model_version).alias("model_version"),
        F.lit(model_cutoff).alias("model_cutoff"),
        "date",
    )


@dataclass(frozen=True)
class ScoreSummary:
    rows: int
    machines: int
    alerts: int
    alerts_by_component: dict[str, int]
    invalid_rows: int
    inconsistent_alerts: int
    unscored_rows: int
    failure_probabilities: list[float]


def score_summary(
    scores: DataFrame, features: DataFrame, fleet: Fleet = DEFAULT_FLEET
) -> ScoreSummary:
    """Counts for metadata and checks, in one pass over the scores (plus the unscored join)."""
    probabilities = [F.col(name) for name in fleet.probability_columns]
    out_of_range = reduce(
        lambda a, b: a | b, [(p < 0) | (p > 1) | p.isNull() for p in probabilities]
    )
    total = reduce(lambda a, b: a + b, probabilities)
    invalid = out_of_range | (F.abs(total - F.lit(1.0)) > F.lit(1e-6))
    # An alert names a component, and a row without an alert names none.
    inconsistent = F.col("alert").isNull() | (F.col("alert") != (F.col("alert_component") > 0))
    components = list(enumerate(fleet.component_names, start=1))
    counts = scores.agg(
        F.count(F.lit(1)).alias("rows"),
        F.countDistinct("machine_id").alias("machines"),
        F.sum(F.col("alert").cast("int")).alias("alerts"),
        *[
            F.sum((F.col("alert_component") == number).cast("int")).alias(f"_alerts{number}")
            for number, _ in components
        ],
        F.sum(invalid.cast("int")).alias("invalid"),
        F.sum(inconsistent.cast("int")).alias("inconsistent"),
    ).first()
    assert counts is not None
    unscored = features.join(scores, ["machine_id", "datetime"], "left_anti").count()
    distribution = [row[0] for row in scores.select("failure_probability").collect()]
    return ScoreSummary(
        rows=int(counts["rows"]),
        machines=int(counts["machines"]),
        alerts=int(counts["alerts"] or 0),
        alerts_by_component={
            name: int(counts[f"_alerts{number}"] or 0) for number, name in components
        },
        invalid_rows=int(counts["invalid"] or 0),
        inconsistent_alerts=int(counts["inconsistent"] or 0),
        unscored_rows=unscored,
        failure_probabilities=distribution,
    )
