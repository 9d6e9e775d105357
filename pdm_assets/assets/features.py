"""Features and labels: daily, with lookbacks read from earlier raw partitions."""

from collections.abc import Iterator
from datetime import datetime, timedelta

import dagster as dg
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from pdm_assets import features, labels
from pdm_assets.partitions import GraphPartitions, partition_window
from pdm_assets.spark import StepLauncherParam
from pdm_assets.timewindow import Window, midnight, timestamp_literal
from pdm_assets.warehouse import ALLOW_MISSING_PARTITIONS, WarehouseResource

FEATURES_GROUP = "features"


def build_feature_assets(partitions: GraphPartitions) -> list[dg.AssetsDefinition]:
    horizon_hours = partitions.horizon_days * 24

    @dg.asset(
        group_name=FEATURES_GROUP,
        description=(
            "One row per machine and observation time t (00:00 and 12:00 UTC) with telemetry in "
            "(t-12h, t]: sensor mean/sd over 12/24/36 h, error counts over 24 h, days since "
            "each component's last replacement (whole history), machine model and age. "
            "Refuses to run while a day of its lookback (telemetry 2 days, errors 1 day, "
            "maintenance and failures since the partitions start) is not materialised."
        ),
        partitions_def=partitions.daily,
        backfill_policy=dg.BackfillPolicy.single_run(),
        io_manager_key="warehouse_io_manager",
        kinds={"spark", "parquet"},
        ins={
            "raw_telemetry": dg.AssetIn(partition_mapping=partitions.telemetry_lookback),
            "raw_errors": dg.AssetIn(partition_mapping=partitions.errors_lookback),
            "raw_maintenance": dg.AssetIn(partition_mapping=partitions.whole_history),
            "raw_failures": dg.AssetIn(partition_mapping=partitions.whole_history),
            "raw_machines": dg.AssetIn(),
        },
        check_specs=[
            dg.AssetCheckSpec(
                "null_rates",
                asset="machine_features",
                description=(
                    "Share of nulls per feature under its threshold: none for means, counts and "
                    "machine columns; some for standard deviations (one reading in a window) "
                    "and days since replacement (never replaced yet). Observations in the first "
                    "36 h after the partitions start have short windows by definition: their "
                    "null rates are reported apart, not judged."
                ),
            )
        ],
    )
    def machine_features(
        context: dg.AssetExecutionContext,
        step_launcher: StepLauncherParam,
        raw_telemetry: DataFrame,
        raw_errors: DataFrame,
        raw_maintenance: DataFrame,
        raw_failures: DataFrame,
        raw_machines: DataFrame,
    ) -> Iterator[dg.Output[DataFrame] | dg.AssetCheckResult]:
        window = partition_window(context.partition_time_window)
        rows = features.compute(
            raw_telemetry,
            raw_errors,
            raw_maintenance,
            raw_failures,
            raw_machines,
            window.start,
            window.end,
        ).localCheckpoint(eager=True)
        # The first observations after PDM_PARTITIONS_START have short windows by definition
        # (no telemetry before it); their nulls are reported, not judged.
        warm_up_end = partitions.daily.start + timedelta(hours=features.WARM_UP_HOURS)
        judged = rows.where(F.col("datetime") >= timestamp_literal(warm_up_end))
        null_rates = features.null_rates(judged)
        over = {
            name: rate
            for name, rate in null_rates.items()
            if rate > features.MAX_NULL_RATE.get(name, 0.0)
        }
        warm_up_rates = (
            features.null_rates(rows.where(F.col("datetime") < timestamp_literal(warm_up_end)))
            if window.start < warm_up_end
            else {}
        )
        yield dg.Output(
            rows,
            metadata={
                "time_range": f"{window.start.isoformat()} .. {window.end.isoformat()}",
                "rows": rows.count(),
            },
        )
        yield dg.AssetCheckResult(
            check_name="null_rates",
            passed=not over,
            metadata={
                "over_threshold": dg.MetadataValue.json(over),
                "null_rates": dg.MetadataValue.json(
                    {name: round(rate, 4) for name, rate in null_rates.items() if rate}
                ),
                "warm_up_null_rates_not_judged": dg.MetadataValue.json(
                    {name: round(rate, 4) for name, rate in warm_up_rates.items() if rate}
                ),
            },
        )

    @dg.asset(
        group_name=FEATURES_GROUP,
        description=(
            f"For each feature row at t: the component whose failure comes first in "
            f"(t, t+{partitions.horizon_days} days] (0 = none), one boolean per component, and "
            "`censored` when failures up to t+H are not all ingested yet."
        ),
        partitions_def=partitions.daily,
        backfill_policy=dg.BackfillPolicy.single_run(),
        io_manager_key="warehouse_io_manager",
        kinds={"spark", "parquet"},
        ins={
            "machine_features": dg.AssetIn(),
            "raw_failures": dg.AssetIn(
                partition_mapping=partitions.failures_ahead,
                metadata={ALLOW_MISSING_PARTITIONS: True},
            ),
        },
    )
    def failure_labels(
        context: dg.AssetExecutionContext,
        step_launcher: StepLauncherParam,
        machine_features: DataFrame,
        raw_failures: DataFrame,
        warehouse: WarehouseResource,
    ) -> dg.Output[DataFrame]:
        window = partition_window(context.partition_time_window)
        known_until = failures_known_until(
            warehouse, window, partitions.horizon_days, partitions.daily
        )
        rows = labels.compute(
            machine_features.select("machine_id", "datetime"),
            raw_failures,
            horizon_hours,
            known_until,
        )
        return dg.Output(
            rows,
            metadata={
                "time_range": f"{window.start.isoformat()} .. {window.end.isoformat()}",
                "failures_known_until": known_until.isoformat(),
                "horizon_hours": horizon_hours,
            },
        )

    return [machine_features, failure_labels]


def failures_known_until(
    warehouse: WarehouseResource,
    window: Window,
    horizon_days: int,
    daily: dg.DailyPartitionsDefinition,
) -> datetime:
    """The end of the unbroken run of ingested failure days from the window's first day on.

    A failures partition that is missing, or lies beyond the last partition, is unknown.
    """
    ingested = set(warehouse.store.partition_dates("raw_failures"))
    last_partition = datetime.fromisoformat(daily.get_last_partition_key() or "1970-01-01").date()
    day = window.start.date()
    wanted_end = window.end.date() + timedelta(days=horizon_days)
    while day < wanted_end and day in ingested and day <= last_partition:
        day += timedelta(days=1)
    return midnight(day)
