"""Labels: which component fails first in (t, t + H], for each observation time t.

Fixes two flaws of the original notebooks: the horizon is H hours of time (not H rows of 12 h),
and two components failing at the same hour stay two components (one boolean each, and the
lowest-numbered one as the class), instead of their numbers being added into a third class.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from pdm_assets.core.fleet import DEFAULT_FLEET, Fleet
from pdm_assets.core.timewindow import timestamp_literal


def compute(
    observations: DataFrame,
    failures: DataFrame,
    horizon_hours: int,
    failures_known_until: datetime,
    fleet: Fleet = DEFAULT_FLEET,
) -> DataFrame:
    """Label every observation (machine_id, datetime) with the failures in (t, t + H].

    The class is the position of the first failing component among the fleet's declared
    components (0 = none), with one `fails_<component>` boolean each; a one-component fleet is
    a binary problem.

    `failures` must cover (start, end + H]. Rows with t + H > `failures_known_until` are
    `censored`: a failure might still arrive for them, so training must not use them yet.
    """
    horizon_seconds = horizon_hours * 3600
    events = failures.select(
        F.col("machine_id").alias("_machine"),
        F.col("datetime").alias("_failed_at"),
        F.col("component").alias("_component"),
    )
    t = F.unix_timestamp(F.col("datetime"))
    failed = F.unix_timestamp(F.col("_failed_at"))
    inside = (
        (F.col("machine_id") == F.col("_machine"))
        & (F.col("_failed_at") > F.col("datetime"))
        & (failed <= t + F.lit(horizon_seconds))
    )
    joined = observations.select("machine_id", "datetime").join(events, inside, "left")
    first_failure = F.min("_failed_at")
    grouped = joined.groupBy("machine_id", "datetime").agg(
        first_failure.alias("_first_failure"),
        # collect_list skips nulls: observations with no failure get an empty list.
        F.collect_list(
            F.when(F.col("_failed_at").isNotNull(), F.struct("_failed_at", "_component"))
        ).alias("_failures"),
    )
    first_components = F.filter(
        F.col("_failures"), lambda event: event["_failed_at"] == F.col("_first_failure")
    )
    label = F.coalesce(
        F.array_min(F.transform(first_components, lambda e: e["_component"])), F.lit(0)
    )
    fails = [
        F.array_contains(F.col("_failures._component"), F.lit(component)).alias(name)
        for component, name in enumerate(fleet.fails_columns, start=1)
    ]
    hours_to_failure = (
        (F.unix_timestamp("_first_failure") - F.unix_timestamp("datetime")) / F.lit(3600.0)
    ).alias("hours_to_failure")
    last_uncensored = failures_known_until - timedelta(hours=horizon_hours)
    censored = (F.col("datetime") > timestamp_literal(last_uncensored)).alias("censored")
    return grouped.select(
        "machine_id",
        "datetime",
        label.cast("int").alias("label"),
        *fails,
        hours_to_failure,
        censored,
        F.to_date("datetime").alias("date"),
    )
