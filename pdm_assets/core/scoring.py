"""Scoring: the month split of a window, the score columns, and the summary of a scored range."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from functools import reduce

from pyspark.ml import PipelineModel
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from pdm_assets.core import decision, explain, training
from pdm_assets.core.fleet import DEFAULT_FLEET, Fleet
from pdm_assets.core.timewindow import Window

_ONE_DAY = timedelta(days=1)
MODEL_COLUMNS = ["model_name", "model_version", "model_cutoff"]


def score_columns(fleet: Fleet = DEFAULT_FLEET) -> list[str]:
    """The columns of machine_scores: a probability per class named after the fleet's
    components, and the alerted component as its 1-based index (0: none) and its name; for an
    alert also the cut it passed, its reasons and the days since that component's last
    replacement."""
    return [
        "machine_id",
        "datetime",
        "predicted_component",
        *fleet.probability_columns,
        "failure_probability",
        "alert",
        "alert_component",
        "alert_component_name",
        "alert_threshold",
        "alert_reasons",
        "days_since_replacement",
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
    explainer: explain.Explainer | None = None,
) -> DataFrame:
    """The scores of feature rows: probabilities, the policy's alerts with the cut each passed,
    its reasons (from `explainer`, None for a learner without exact reasons) and the days since
    the component's replacement, and the model's identity."""
    predicted = training.predict(model, features, fleet).withColumn(
        "failure_probability", F.lit(1.0) - F.col(fleet.probability_columns[0])
    )
    alerted = decision.alerts(predicted, policy, fleet.component_probability_columns)
    by_component = F.col("alert_component")

    def of_alerted(values: list[F.Column]) -> F.Column:
        return F.when(by_component > 0, F.element_at(F.array(*values), by_component))

    alerted = (
        alerted.withColumn(
            "alert_component_name", of_alerted([F.lit(n) for n in fleet.component_names])
        )
        .withColumn(
            "alert_threshold",
            of_alerted([F.lit(float(t)) for t in policy.thresholds.values()]),
        )
        .withColumn(
            "days_since_replacement",
            of_alerted([F.col(n).cast("double") for n in fleet.maintenance_features]),
        )
    )
    if explainer is None:
        alerted = alerted.withColumn("alert_reasons", F.lit(None).cast(explain.REASONS_TYPE))
    else:
        alerted = explainer.with_reasons(alerted, model, fleet)
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
    alerts_without_reasons: int
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
        F.sum(
            (F.col("alert") & F.coalesce(F.size("alert_reasons") <= 0, F.lit(True))).cast("int")
        ).alias("unexplained"),
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
        alerts_without_reasons=int(counts["unexplained"] or 0),
        failure_probabilities=distribution,
    )
