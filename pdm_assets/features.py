"""Features at observation times t, exactly as docs/model.md defines them, for the sensors,
windows, error codes and components of a fleet description.

Every feature at t reads only rows at or before t; windows are by time, (t - W, t], so a missing
hour shortens a window instead of stretching it to an earlier hour.
"""

from __future__ import annotations

import math
from datetime import datetime

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from pdm_assets.fleet import DEFAULT_FLEET, Fleet
from pdm_assets.timewindow import Window as TimeWindow

SECONDS_PER_HOUR = 3600


def _epoch_seconds(moment: Column) -> Column:
    return F.unix_timestamp(moment)


def _candidate_times(frame: DataFrame, reach_hours: int, cadence_hours: int) -> DataFrame:
    """Pair each row with every observation time t >= its time with t - time < reach_hours.

    A row at time h belongs to (t - W, t] exactly when 0 <= t - h < W, so pairing rows with the
    cadence points in [h, h + reach) and keeping lag = t - h lets one aggregation compute every
    window at once, with no self-join.
    """
    cadence = cadence_hours * SECONDS_PER_HOUR
    seconds = _epoch_seconds(F.col("datetime"))
    first = (F.ceil(seconds / F.lit(cadence)) * F.lit(cadence)).cast("long")
    steps = math.ceil(reach_hours / cadence_hours) + 1
    paired = frame.withColumn("_step", F.explode(F.sequence(F.lit(0), F.lit(steps - 1))))
    paired = paired.withColumn("_t_seconds", first + F.col("_step") * F.lit(cadence))
    paired = paired.withColumn(
        "lag_hours", (F.col("_t_seconds") - seconds) / F.lit(SECONDS_PER_HOUR)
    )
    paired = paired.where(F.col("lag_hours") < F.lit(reach_hours))
    return paired.withColumn("obs_time", F.timestamp_seconds(F.col("_t_seconds"))).drop(
        "_step", "_t_seconds"
    )


def _in_range(frame: DataFrame, start: datetime, end: datetime) -> DataFrame:
    return frame.where(TimeWindow(start, end).contains("obs_time"))


def telemetry_features(
    telemetry: DataFrame, start: datetime, end: datetime, fleet: Fleet = DEFAULT_FLEET
) -> DataFrame:
    """One row per machine and observation time t in [start, end) (every `observation_hours`
    from 00:00 UTC) with telemetry in (t - observation_hours, t].

    Mean and sample standard deviation of each sensor over (t - W, t] for each declared window W
    (the default: 12, 24, 36 h); a window too short to hold two readings has no deviation.
    """
    cadence_hours = fleet.observation_hours
    reach = max(fleet.telemetry.windows_hours)
    paired = _in_range(_candidate_times(telemetry, reach, cadence_hours), start, end)
    aggregates = []
    for window in fleet.telemetry.windows_hours:
        inside = F.col("lag_hours") < F.lit(window)
        for sensor in fleet.sensors:
            value = F.when(inside, F.col(sensor))
            aggregates.append(F.avg(value).alias(f"{sensor}_mean_{window}h"))
            if fleet.has_sd(window):
                aggregates.append(F.stddev_samp(value).alias(f"{sensor}_sd_{window}h"))
    observed = F.count(F.when(F.col("lag_hours") < F.lit(cadence_hours), F.lit(1)))
    grouped = paired.groupBy("machine_id", "obs_time").agg(
        observed.alias("_hours_in_cadence"), *aggregates
    )
    return (
        grouped.where(F.col("_hours_in_cadence") > 0)
        .drop("_hours_in_cadence")
        .withColumnRenamed("obs_time", "datetime")
        .select("machine_id", "datetime", *fleet.telemetry_features)
    )


def error_features(
    errors: DataFrame, start: datetime, end: datetime, fleet: Fleet = DEFAULT_FLEET
) -> DataFrame:
    """Count of each error code in (t - W, t] (W = `errors.window_hours`, 24 h by default), for
    observation times that had an error."""
    window = fleet.errors.window_hours
    candidates = _candidate_times(errors, window, fleet.observation_hours)
    paired = _in_range(candidates, start, end)
    counts = [
        F.count(F.when(F.col("error_id") == F.lit(error), F.lit(1))).alias(name)
        for error, name in enumerate(fleet.error_features, start=1)
    ]
    return (
        paired.groupBy("machine_id", "obs_time")
        .agg(*counts)
        .withColumnRenamed("obs_time", "datetime")
    )


def replacements(maintenance: DataFrame, failures: DataFrame) -> DataFrame:
    """Every component replacement: the maintenance log plus the failure log.

    A failure is a replacement; in the public data some failures have no maintenance row, so
    reading only the maintenance log would miss them.
    """
    columns = ["machine_id", "datetime", "component"]
    return maintenance.select(*columns).unionByName(failures.select(*columns)).distinct()


def maintenance_features(
    observations: DataFrame, replaced: DataFrame, fleet: Fleet = DEFAULT_FLEET
) -> DataFrame:
    """Days (hours / 24) since the last replacement of each component at or before t.

    `replaced` must hold the machine's whole history; a component never replaced is null.
    Observations and replacements go into one timeline per machine, replacements first at equal
    times ("at or before t"); each observation takes the latest replacement so far of each
    component. A join of every observation with every earlier replacement would grow with the
    square of the history (20 M pairs for a year of 1000 machines).
    """
    components = range(1, len(fleet.component_names) + 1)
    observed = observations.select(
        "machine_id",
        "datetime",
        F.lit(1).alias("_observation"),
        *[F.lit(None).cast("timestamp").alias(f"_replaced{c}") for c in components],
    )
    replacements_by_component = replaced.select(
        "machine_id",
        "datetime",
        F.lit(0).alias("_observation"),
        *[
            F.when(F.col("component") == F.lit(c), F.col("datetime")).alias(f"_replaced{c}")
            for c in components
        ],
    )
    so_far = (
        Window.partitionBy("machine_id")
        .orderBy("datetime", "_observation")
        .rowsBetween(Window.unboundedPreceding, Window.currentRow)
    )
    timeline = observed.unionByName(replacements_by_component).select(
        "machine_id",
        "datetime",
        "_observation",
        *[F.max(f"_replaced{c}").over(so_far).alias(f"_last{c}") for c in components],
    )
    days = [
        (
            (_epoch_seconds(F.col("datetime")) - _epoch_seconds(F.col(f"_last{component}")))
            / F.lit(24 * SECONDS_PER_HOUR)
        ).alias(name)
        for component, name in zip(components, fleet.maintenance_features, strict=True)
    ]
    return timeline.where(F.col("_observation") == 1).select("machine_id", "datetime", *days)


def compute(
    telemetry: DataFrame,
    errors: DataFrame,
    maintenance: DataFrame,
    failures: DataFrame,
    machines: DataFrame,
    start: datetime,
    end: datetime,
    fleet: Fleet = DEFAULT_FLEET,
) -> DataFrame:
    """The feature rows of observation times in [start, end).

    `telemetry` must reach back the longest window before `start` (36 h by default), `errors`
    the error window, and `maintenance` and `failures` must hold the whole history up to `end`;
    rows after t are never used for t. A fleet without error codes has no error features, one
    without a maintenance log counts its failures as its only replacements.
    """
    rows = telemetry_features(telemetry, start, end, fleet)
    if fleet.error_features:
        error_counts = error_features(errors, start, end, fleet)
        rows = rows.join(error_counts, ["machine_id", "datetime"], "left").fillna(
            0, subset=fleet.error_features
        )
    since_replacement = maintenance_features(
        rows.select("machine_id", "datetime"), replacements(maintenance, failures), fleet
    )
    machine_columns = machines.select(
        "machine_id", *fleet.machines.categorical, *fleet.machine_numeric
    )
    return (
        rows.join(since_replacement, ["machine_id", "datetime"], "left")
        .join(machine_columns, "machine_id", "left")
        .withColumn("date", F.to_date("datetime"))
        .select("machine_id", "datetime", *fleet.feature_columns, "date")
    )


def null_rates(rows: DataFrame, fleet: Fleet = DEFAULT_FLEET) -> dict[str, float]:
    """Share of null values of every feature column, in one pass."""
    columns = fleet.feature_columns
    counts = rows.agg(
        F.count(F.lit(1)).alias("_rows"),
        *[F.sum(F.col(name).isNull().cast("int")).alias(name) for name in columns],
    ).first()
    assert counts is not None
    total = counts["_rows"] or 0
    return {name: (counts[name] or 0) / total if total else 0.0 for name in columns}
