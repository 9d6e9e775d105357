"""model_outcomes' work: each day's scores against its labels, the drift from before the model's
cutoff, and the page (expected beside realised, the trend of earlier days)."""

from dataclasses import dataclass
from datetime import date, timedelta
from functools import reduce
from typing import Any

import dagster as dg
from matplotlib.figure import Figure
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from pdm_assets.adapters.mlflow_registry import ModelRegistry
from pdm_assets.adapters.warehouse import DatasetStore, MissingDatasetError
from pdm_assets.core import decision, monitoring
from pdm_assets.core.fleet import DEFAULT_FLEET, Fleet
from pdm_assets.core.timewindow import Window
from pdm_assets.defs import metadata
from pdm_assets.defs.io_manager import WarehouseReader, require_every_day

REFERENCE_DAYS = 28
TREND_DAYS = 60
# A day's features and the reference window before its month's cutoff: at most 30 days back to
# the month start, then REFERENCE_DAYS more.
FEATURE_LOOKBACK_DAYS = 30 + REFERENCE_DAYS


@dataclass(frozen=True)
class DaysOutcomes:
    """The outcome rows of every day of a window, and each day's alert outcome."""

    rows: DataFrame
    alerts: list[monitoring.AlertOutcome]
    expected: dict[int, decision.Expectation]


def outcomes_by_day(
    session: SparkSession,
    window: Window,
    scores: DataFrame,
    labels: DataFrame,
    planner: DataFrame,
    max_drift: float | None,
    registry: ModelRegistry,
    fleet: Fleet,
) -> DaysOutcomes:
    """One outcome row per day and component: realised quality, the drift, the planner's
    feedback and the expectation of the version that scored the day."""
    scored_by = versions_by_day(scores)
    expected = expected_by_version(registry, scored_by)
    per_day = []
    alerts = []
    for day in window.days:
        day_scores = scores.where(F.col("date") == F.lit(day))
        day_labels = labels.where(F.col("date") == F.lit(day))
        outcome = monitoring.alert_outcome(day_scores, day_labels, planner, fleet.horizon_hours)
        alerts.append(outcome)
        per_day.append(
            monitoring.outcome_rows(
                session,
                day,
                *monitoring.realised_quality(day_scores, day_labels, fleet),
                max_drift,
                outcome,
                _expected_of_day(expected, scored_by.get(day, [])),
            )
        )
    return DaysOutcomes(reduce(DataFrame.unionByName, per_day), alerts, expected)


def outcomes_page(
    window: Window,
    quality: tuple[dict[str, dict[str, float]], int, int, int],
    days: DaysOutcomes,
    drift: tuple[dict[str, float], float | None, str],
    drift_alert: float,
    trend_png: bytes,
) -> dict[str, Any]:
    """The model_outcomes range's metadata."""
    metrics, rows, censored, alerts = quality
    by_feature, max_drift, drift_note = drift
    top_drift = dict(sorted(by_feature.items(), key=lambda item: -item[1])[:5])
    return {
        "time_range": f"{window.start.isoformat()} .. {window.end.isoformat()}",
        "scored_rows": rows,
        "censored_rows": censored,
        "alert_rate": alerts / rows if rows else 0.0,
        **expected_beside_realised(days.alerts, days.expected),
        "realised_metrics": dg.MetadataValue.md(metadata.metrics_table(metrics)),
        "max_feature_drift": dg.MetadataValue.float(max_drift)
        if max_drift is not None
        else dg.MetadataValue.null(),
        "drifting": max_drift is not None and max_drift > drift_alert,
        "drift_reference": drift_note,
        "top_drift": dg.MetadataValue.json({k: round(v, 3) for k, v in top_drift.items()}),
        "trend": metadata.markdown_image(trend_png, "realised recall and alert rate"),
    }


def versions_by_day(scores: DataFrame) -> dict[date, list[int]]:
    """The model versions that scored each day, in one pass (not one Spark job per day)."""
    found: dict[date, list[int]] = {}
    for row in scores.select("date", "model_version").distinct().collect():
        found.setdefault(row["date"], []).append(int(row["model_version"]))
    return {day: sorted(versions) for day, versions in found.items()}


def expected_by_version(
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


def trend_figure(
    warehouse: WarehouseReader, session: SparkSession, outcomes: DataFrame, window: Window
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
    return metadata.trend(days, series, "realised quality by day")
