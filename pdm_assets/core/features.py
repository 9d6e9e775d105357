"""Features at observation times t, exactly as docs/model.md defines them, for the sensors,
windows, error codes and components of a fleet description.

Every feature at t reads only rows at or before t; windows are by time, (t - W, t], so a missing
hour shortens a window instead of stretching it to an earlier hour.
"""

from __future__ import annotations

import math
from datetime import datetime

from pyspark.sql import Column, DataFrame, Window, WindowSpec
from pyspark.sql import functions as F

from pdm_assets.core.fleet import DEFAULT_FLEET, Fleet
from pdm_assets.core.timewindow import Window as TimeWindow
from pdm_assets.core.timewindow import utc

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


def observation_times(
    telemetry: DataFrame, start: datetime, end: datetime, fleet: Fleet = DEFAULT_FLEET
) -> DataFrame:
    """`machine_id`, `datetime` of the observation times in [start, end): every t (a multiple of
    `observation_hours` from 00:00 UTC) with telemetry in (t - observation_hours, t], the rows of
    `telemetry_features`, found without pairing readings with observation times."""
    period = fleet.observation_hours * SECONDS_PER_HOUR
    bucket_end = F.ceil(_epoch_seconds(F.col("datetime")) / F.lit(period)).cast("long")
    at = F.timestamp_seconds(bucket_end * F.lit(period)).alias("datetime")
    times = telemetry.select("machine_id", at).distinct()
    return times.where(TimeWindow(start, end).contains("datetime"))


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
        .select("machine_id", "datetime", *fleet.base_telemetry_features)
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
        for error, name in enumerate(fleet.base_error_features, start=1)
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


def latest_so_far(
    observations: DataFrame, events: DataFrame, kind_column: str, kinds: int
) -> DataFrame:
    """Each observation (machine_id, datetime) with `_last<k>`, the time of the latest event of
    kind k (1..kinds, in `kind_column`) at or before it, null if none.

    Observations and events go into one timeline per machine, events first at equal times ("at
    or before t"), and a running max carries each kind's latest time forward: a join of every
    observation with every earlier event would grow with the square of the history.
    """
    observed = observations.select(
        "machine_id",
        "datetime",
        F.lit(1).alias("_observation"),
        *[F.lit(None).cast("timestamp").alias(f"_at{k}") for k in range(1, kinds + 1)],
    )
    by_kind = events.select(
        "machine_id",
        "datetime",
        F.lit(0).alias("_observation"),
        *[
            F.when(F.col(kind_column) == F.lit(k), F.col("datetime")).alias(f"_at{k}")
            for k in range(1, kinds + 1)
        ],
    )
    so_far = (
        Window.partitionBy("machine_id")
        .orderBy("datetime", "_observation")
        .rowsBetween(Window.unboundedPreceding, Window.currentRow)
    )
    timeline = observed.unionByName(by_kind).select(
        "machine_id",
        "datetime",
        "_observation",
        *[F.max(f"_at{k}").over(so_far).alias(f"_last{k}") for k in range(1, kinds + 1)],
    )
    return timeline.where(F.col("_observation") == 1).drop("_observation")


def maintenance_features(
    observations: DataFrame, replaced: DataFrame, fleet: Fleet = DEFAULT_FLEET
) -> DataFrame:
    """Days (hours / 24) since the last replacement of each component at or before t.

    `replaced` must hold the machine's whole history; a component never replaced is null. The
    latest replacement so far comes from one timeline per machine (`latest_so_far`): a join of
    every observation with every earlier replacement would grow with the square of the history
    (20 M pairs for a year of 1000 machines).
    """
    components = range(1, len(fleet.component_names) + 1)
    timeline = latest_so_far(observations, replaced, "component", len(components))
    days = [
        (
            (_epoch_seconds(F.col("datetime")) - _epoch_seconds(F.col(f"_last{component}")))
            / F.lit(24 * SECONDS_PER_HOUR)
        ).alias(name)
        for component, name in zip(components, fleet.maintenance_features, strict=True)
    ]
    return timeline.select("machine_id", "datetime", *days)


# -- extra features (docs/model.md, "Extra features"; each family off unless the description
# switches it on) -------------------------------------------------------------------------------


def _bucket_sums(telemetry: DataFrame, start: datetime, fleet: Fleet) -> DataFrame:
    """Telemetry summed per machine and observation bucket, the cadence period
    (t - observation_hours, t] of an observation time t.

    `_bucket` is t / observation_hours (so bucket b - k is the k-th bucket back), and for each
    sensor the bucket holds n (readings), Σx, and Σu, Σu², Σxu with u the reading's time in
    hours since `start`. Long windows are sums of whole buckets: a year of hourly telemetry is
    12x fewer bucket rows than readings, and no reading is copied onto the observation times
    it reaches. A least-squares slope does not depend on where time is counted from, so hours
    since `start` (small numbers, whatever the epoch) serve every window alike.
    """
    period = fleet.observation_hours * SECONDS_PER_HOUR
    seconds = _epoch_seconds(F.col("datetime"))
    bucket = F.ceil(seconds / F.lit(period)).cast("long")
    u = ((seconds - F.lit(int(utc(start).timestamp()))) / F.lit(SECONDS_PER_HOUR)).cast("double")
    sums = []
    for sensor in fleet.sensors:
        x = F.col(sensor).cast("double")
        at = F.when(x.isNotNull(), u)
        sums += [
            F.count(x).alias(f"_n_{sensor}"),
            F.sum(x).alias(f"_x_{sensor}"),
            F.sum(at).alias(f"_u_{sensor}"),
            F.sum(at * at).alias(f"_uu_{sensor}"),
            F.sum(x * u).alias(f"_xu_{sensor}"),
        ]
    return telemetry.groupBy("machine_id", bucket.alias("_bucket")).agg(*sums)


def _buckets_back(first: int, last: int) -> WindowSpec:
    """The buckets from `first` back to `last` back of the row's own (0 = its own bucket)."""
    return Window.partitionBy("machine_id").orderBy("_bucket").rangeBetween(-last, -first)


def _window_sums(
    sensor: str, name: str, frame: WindowSpec, stats: tuple[str, ...] = ("n", "x")
) -> list[Column]:
    return [F.sum(f"_{stat}_{sensor}").over(frame).alias(f"_{name}_{stat}") for stat in stats]


def _mean(name: str) -> Column:
    # Null for an empty window (a sum over no bucket is null; 0 readings divide to null).
    return F.try_divide(F.col(f"_{name}_x"), F.col(f"_{name}_n"))


def _slope(name: str) -> Column:
    """Least-squares slope of x against time (units per hour) from the window's sums; null
    with fewer than 2 readings (or all of them at one instant)."""
    n, x, u, uu, xu = (F.col(f"_{name}_{stat}") for stat in ("n", "x", "u", "uu", "xu"))
    slope = F.try_divide(n * xu - u * x, n * uu - u * u)
    return F.when(n >= F.lit(2), slope)


def extra_telemetry_features(
    telemetry: DataFrame, start: datetime, end: datetime, fleet: Fleet = DEFAULT_FLEET
) -> DataFrame:
    """The trend and deviation features of observation times in [start, end), those the
    description switches on, from per-observation buckets.

    Trends (`telemetry.trends`): per sensor and trend window W, the mean and the least-squares
    slope (units per hour, of value against time in hours) of the readings in (t - W, t].
    Deviations (`telemetry.deviations`): per sensor and deviation window W, the mean over
    (t - W, t] less the mean over the baseline window (t - baseline_from_hours,
    t - baseline_to_hours]; null when the baseline window has no reading.

    Rows are the buckets with telemetry, i.e. exactly the observation times of
    `telemetry_features`; `telemetry` must reach back `fleet.telemetry_reach_hours` before
    `start`. Each window is a range of bucket numbers ending at t's own, so no row after t is
    read.
    """
    tel = fleet.telemetry
    every = fleet.observation_hours
    buckets = _bucket_sums(telemetry, start, fleet)
    sums: list[Column] = []
    features: list[Column] = []
    if tel.trends:
        for window in tel.trend_windows_hours:
            frame = _buckets_back(0, window // every - 1)
            for sensor in fleet.sensors:
                name = f"{sensor}_{window}"
                sums += _window_sums(sensor, name, frame, ("n", "x", "u", "uu", "xu"))
                features += [
                    _mean(name).alias(f"{sensor}_mean_{window}h"),
                    _slope(name).alias(f"{sensor}_slope_{window}h"),
                ]
    if tel.deviations:
        baseline = _buckets_back(
            tel.baseline_to_hours // every, tel.baseline_from_hours // every - 1
        )
        for sensor in fleet.sensors:
            sums += _window_sums(sensor, f"{sensor}_base", baseline)
        for window in tel.deviation_windows_hours:
            frame = _buckets_back(0, window // every - 1)
            for sensor in fleet.sensors:
                name = f"{sensor}_recent{window}"
                sums += _window_sums(sensor, name, frame)
                features.append(
                    (_mean(name) - _mean(f"{sensor}_base")).alias(f"{sensor}_dev_{window}h")
                )
    period = every * SECONDS_PER_HOUR
    at = F.timestamp_seconds(F.col("_bucket") * F.lit(period)).alias("datetime")
    windowed = buckets.select("machine_id", at, *sums)
    names = [*fleet.trend_features, *fleet.deviation_features]
    return (
        windowed.where(TimeWindow(start, end).contains("datetime"))
        .select("machine_id", "datetime", *features)
        .select("machine_id", "datetime", *names)
    )


def extra_error_counts(
    errors: DataFrame, start: datetime, end: datetime, fleet: Fleet = DEFAULT_FLEET
) -> DataFrame:
    """Count of each error code in (t - W, t] for each extra error window W
    (`errors.extra_windows_hours`), for observation times that had an error within the longest.

    Error logs are sparse (a few errors per machine and week), so pairing each error with the
    observation times it reaches costs little even for long windows.
    """
    reach = max(fleet.errors.extra_windows_hours)
    paired = _in_range(_candidate_times(errors, reach, fleet.observation_hours), start, end)
    codes = range(1, len(fleet.errors.codes) + 1)
    counts = [
        F.count(
            F.when(
                (F.col("error_id") == F.lit(code)) & (F.col("lag_hours") < F.lit(window)),
                F.lit(1),
            )
        ).alias(f"{fleet.errors.codes[code - 1]}_count_{window}h")
        for window in fleet.errors.extra_windows_hours
        for code in codes
    ]
    return (
        paired.groupBy("machine_id", "obs_time")
        .agg(*counts)
        .withColumnRenamed("obs_time", "datetime")
        .select("machine_id", "datetime", *fleet.extra_error_count_features)
    )


def hours_since_last_error(
    observations: DataFrame, errors: DataFrame, fleet: Fleet = DEFAULT_FLEET
) -> DataFrame:
    """Hours from the last error of each code in (t - L, t] to t, L = `errors.since_lookback_hours`;
    null when the code has no error within the lookback.

    The latest error so far of each code comes from one timeline per machine (`latest_so_far`).
    The lookback bounds the answer, so it does not depend on how much error history was read
    (`errors` must reach back L before the first observation).
    """
    codes = range(1, len(fleet.errors.codes) + 1)
    lookback = fleet.errors.since_lookback_hours * SECONDS_PER_HOUR
    timeline = latest_so_far(observations, errors, "error_id", len(codes))
    hours = []
    for code, name in zip(codes, fleet.hours_since_features, strict=True):
        since = _epoch_seconds(F.col("datetime")) - _epoch_seconds(F.col(f"_last{code}"))
        hours.append(F.when(since < F.lit(lookback), since / F.lit(SECONDS_PER_HOUR)).alias(name))
    return timeline.select("machine_id", "datetime", *hours)


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

    `telemetry` must reach back `fleet.telemetry_reach_hours` before `start` (36 h by default),
    `errors` `fleet.errors_reach_hours`, and `maintenance` and `failures` must hold the whole
    history up to `end`; rows after t are never used for t. A fleet without error codes has no
    error features, one without a maintenance log counts its failures as its only replacements.
    The extra feature families are computed only when the description switches them on.
    """
    keys = ["machine_id", "datetime"]
    rows = telemetry_features(telemetry, start, end, fleet)
    # The observation times alone, for the timelines below (cheaper than `rows`' keys, whose
    # plan pairs readings with observation times again).
    observed = observation_times(telemetry, start, end, fleet)
    if fleet.trend_features or fleet.deviation_features:
        rows = rows.join(extra_telemetry_features(telemetry, start, end, fleet), keys, "left")
    if fleet.base_error_features:
        error_counts = error_features(errors, start, end, fleet)
        rows = rows.join(error_counts, keys, "left").fillna(0, subset=fleet.base_error_features)
    if fleet.extra_error_count_features:
        extra_counts = extra_error_counts(errors, start, end, fleet)
        rows = rows.join(extra_counts, keys, "left").fillna(
            0, subset=fleet.extra_error_count_features
        )
    if fleet.hours_since_features:
        since_error = hours_since_last_error(observed, errors, fleet)
        rows = rows.join(since_error, keys, "left")
    since_replacement = maintenance_features(observed, replacements(maintenance, failures), fleet)
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
