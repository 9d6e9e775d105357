"""The maintenance work list of a day: what a planner works through, most urgent first.

One row per (machine, component) that alerted on the day, at its latest alerting observation
of that day: the probability and the cut it passed, how far over the cut it stands (the
urgency the list is ordered by), how many consecutive observations the alert has held, the
reasons the model gives, the days since the component was last replaced, and the model version.
An alert the planner has acknowledged (any feedback on that machine and component recorded in
the `acknowledge_days` before it) leaves the list until that time has passed.
"""

from __future__ import annotations

import csv
import io
from datetime import date

from pyspark.sql import DataFrame, Row
from pyspark.sql import Window as SparkWindow
from pyspark.sql import functions as F

from pdm_assets.core.fleet import DEFAULT_FLEET, Fleet
from pdm_assets.core.timewindow import from_spark

REASONS = 3
COLUMNS = [
    "rank",
    "date",
    "machine_id",
    "component",
    "datetime",
    "probability",
    "threshold",
    "urgency",
    "held_observations",
    *[f"reason_{n}" for n in range(1, REASONS + 1)],
    "days_since_replacement",
    "model_name",
    "model_version",
]
SCHEMA = {
    "rank": "int",
    "date": "date",
    "machine_id": "int",
    "component": "string",
    "datetime": "timestamp",
    "probability": "double",
    "threshold": "double",
    "urgency": "double",
    "held_observations": "int",
    **{f"reason_{n}": "string" for n in range(1, REASONS + 1)},
    "days_since_replacement": "double",
    "model_name": "string",
    "model_version": "int",
}


def reason_text(reason: F.Column) -> F.Column:
    """'vibration_mean_24h = 52.1 (typical 40.3), +0.214' from a reason struct: the feature, its
    value, its typical value at training time, and how much it added to the probability."""
    return F.concat(
        reason["feature"],
        F.lit(" = "),
        reason["value"],
        F.lit(" (typical "),
        reason["typical"],
        F.lit("), "),
        F.format_string("%+.3f", reason["contribution"]),
    )


def held_observations(scores: DataFrame, latest: DataFrame, history_hours: int) -> DataFrame:
    """For each (machine, component, datetime) of `latest`: the consecutive observations of the
    machine up to and including it that alerted for that component (its own included), looking
    back at most `history_hours`.

    `scores` holds the machine's scores of those hours as far as they were materialised; a run
    that reaches back to their start is counted as far as they go.
    """
    history = scores.select(
        F.col("machine_id").alias("_machine"),
        F.col("datetime").alias("_at"),
        F.col("alert_component_name").alias("_alerted"),
    )
    at, seen = F.unix_timestamp("datetime"), F.unix_timestamp("_at")
    paired = latest.select("machine_id", "component", "datetime").join(
        history,
        (F.col("_machine") == F.col("machine_id"))
        & (seen <= at)
        & (seen > at - F.lit(history_hours * 3600)),
    )
    # The latest earlier observation that did not alert for the component ends the run.
    broken = F.when(
        F.col("_alerted").isNull() | (F.col("_alerted") != F.col("component")), F.col("_at")
    )
    keys = ["machine_id", "component", "datetime"]
    ends = paired.groupBy(*keys).agg(F.max(broken).alias("_break"))
    return (
        paired.join(ends, keys)
        .where(F.col("_break").isNull() | (F.col("_at") > F.col("_break")))
        .groupBy(*keys)
        .agg(F.count(F.lit(1)).cast("int").alias("held_observations"))
    )


def worklists(
    scores: DataFrame,
    days: list[date],
    planner_feedback: DataFrame,
    acknowledge_days: int,
    history_days: int,
    fleet: Fleet = DEFAULT_FLEET,
) -> DataFrame:
    """The work list of each of `days`, ranked within its day, from `scores` (machine_scores of
    the days and of the `history_days` before them, for the held observations) and typed
    feedback rows (`feedback.validate`)."""
    alerts = scores.where(F.col("date").isin(*days) & F.col("alert")).withColumn(
        "component", F.col("alert_component_name")
    )
    newest_first = SparkWindow.partitionBy("date", "machine_id", "component").orderBy(
        F.col("datetime").desc()
    )
    latest = (
        alerts.withColumn("_order", F.row_number().over(newest_first))
        .where(F.col("_order") == 1)
        .drop("_order")
    )
    acknowledged = latest.alias("alert").join(
        planner_feedback.alias("feedback"), _acknowledged(acknowledge_days), "left_semi"
    )
    keys = ["machine_id", "component", "datetime"]
    open_alerts = latest.join(acknowledged.select(*keys), keys, "left_anti")
    held = held_observations(scores, open_alerts, (history_days + 1) * 24)
    reasons = F.col("alert_reasons")
    probability = F.element_at(
        F.array(*[F.col(name) for name in fleet.component_probability_columns]),
        F.col("alert_component"),
    )
    listed = open_alerts.join(held, keys, "left").select(
        "date",
        "machine_id",
        "component",
        "datetime",
        probability.alias("probability"),
        F.col("alert_threshold").alias("threshold"),
        (probability / F.col("alert_threshold")).alias("urgency"),
        F.coalesce(F.col("held_observations"), F.lit(1)).alias("held_observations"),
        *[
            F.when(F.size(reasons) >= n, reason_text(reasons[n - 1])).alias(f"reason_{n}")
            for n in range(1, REASONS + 1)
        ],
        "days_since_replacement",
        "model_name",
        "model_version",
    )
    most_urgent_first = SparkWindow.partitionBy("date").orderBy(
        F.col("urgency").desc(),
        F.col("held_observations").desc(),
        F.col("machine_id"),
        F.col("component"),
    )
    return listed.withColumn("rank", F.row_number().over(most_urgent_first).cast("int")).select(
        *COLUMNS
    )


def _acknowledged(acknowledge_days: int) -> F.Column:
    seconds = acknowledge_days * 86400
    at = F.unix_timestamp(F.col("alert.datetime"))
    recorded = F.unix_timestamp(F.col("feedback.recorded_at"))
    return (
        (F.col("alert.machine_id") == F.col("feedback.machine_id"))
        & (F.col("alert.component") == F.col("feedback.component"))
        & (recorded <= at)
        & (recorded > at - F.lit(seconds))
    )


def to_csv(rows: list[Row]) -> str:
    """The work list as CSV text (UTC times, reasons as text), for people outside Dagster."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(COLUMNS)
    for row in rows:
        values = []
        for name in COLUMNS:
            value = row[name]
            if name == "datetime" and value is not None:
                value = from_spark(value).strftime("%Y-%m-%d %H:%M:%S")
            elif isinstance(value, float):
                value = f"{value:.4g}" if name != "probability" else f"{value:.4f}"
            values.append("" if value is None else value)
        writer.writerow(values)
    return out.getvalue()


def markdown(rows: list[Row], limit: int = 10) -> str:
    """The list's first `limit` rows as a Markdown table, for the asset's page."""
    if not rows:
        return "No open alerts on this day."
    shown = ["rank", "machine_id", "component", "probability", "threshold", "held_observations"]
    lines = [
        "| " + " | ".join([*shown, "reasons", "days since replacement"]) + " |",
        "|" + "---|" * (len(shown) + 2),
    ]
    for row in rows[:limit]:
        cells = [
            f"{row[name]:.3f}" if isinstance(row[name], float) else str(row[name]) for name in shown
        ]
        reasons = "; ".join(row[f"reason_{n}"] for n in range(1, REASONS + 1) if row[f"reason_{n}"])
        since = row["days_since_replacement"]
        cells += [reasons or "none", "never" if since is None else f"{since:.1f}"]
        lines.append("| " + " | ".join(cells) + " |")
    if len(rows) > limit:
        lines.append(f"\n{len(rows) - limit} more in the CSV.")
    return "\n".join(lines)
