"""Features and labels: daily, with lookbacks read from earlier raw partitions."""

from collections.abc import Iterator
from datetime import datetime, timedelta

import dagster as dg
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from pdm_assets.adapters.spark import StepLauncherParam
from pdm_assets.core import features, labels
from pdm_assets.core.fleet import Fleet, names_text
from pdm_assets.core.timewindow import Window, midnight, timestamp_literal
from pdm_assets.defs.instance_config import WAREHOUSE_POOL
from pdm_assets.defs.io_manager import ALLOW_MISSING_PARTITIONS, WarehouseReader
from pdm_assets.defs.metadata import column_schema
from pdm_assets.defs.partitions import GraphPartitions, partition_window

FEATURES_GROUP = "features"


def describe_features(fleet: Fleet) -> str:
    """machine_features' description, in the fleet's own terms."""
    every = fleet.observation_hours
    windows = "/".join(str(w) for w in fleet.telemetry.windows_hours)
    errors = (
        f"counts of {names_text(fleet.errors.codes)} over {fleet.errors.window_hours} h, "
        if fleet.has_errors
        else ""
    )
    attributes = [*fleet.machines.categorical, *fleet.machine_numeric]
    machine = f", machine {' and '.join(attributes)}" if attributes else ""
    extras = [
        name
        for name, features in (
            ("trends (means and slopes)", fleet.trend_features),
            ("deviations from each machine's baseline", fleet.deviation_features),
            ("longer error counts", fleet.extra_error_count_features),
            ("hours since each error", fleet.hours_since_features),
        )
        if features
    ]
    extra = f" Extra families (docs/model.md): {', '.join(extras)}." if extras else ""
    return (
        f"One row per machine and observation time t (every {every} h from 00:00 UTC) with "
        f"telemetry in (t-{every}h, t]: mean/sd of {', '.join(fleet.sensors)} over {windows} h, "
        f"{errors}days since each component's last replacement (whole history){machine}.{extra} "
        f"Refuses to run while a day of its lookback (telemetry {fleet.telemetry_lookback_days} "
        f"days, errors {fleet.errors_lookback_days} days, maintenance and failures since the "
        "partitions start) is not materialised."
    )


def feature_schema(fleet: Fleet) -> dg.TableSchema:
    types = {
        "machine_id": "int",
        "datetime": "timestamp",
        **{name: "double" for name in fleet.telemetry_features},
        **{name: "bigint" for name in fleet.error_count_features},
        **{name: "double" for name in fleet.hours_since_features},
        **{name: "double" for name in fleet.maintenance_features},
        **{a.name: "int" if a.integer else "double" for a in fleet.machines.numeric},
        **{name: "string" for name in fleet.categorical_features},
        "date": "date",
    }
    return column_schema(types)


def label_schema(fleet: Fleet) -> dg.TableSchema:
    types = {
        "machine_id": "int",
        "datetime": "timestamp",
        "label": "int",
        **{name: "boolean" for name in fleet.fails_columns},
        "hours_to_failure": "double",
        "censored": "boolean",
        "date": "date",
    }
    return column_schema(types)


def build_feature_assets(partitions: GraphPartitions) -> list[dg.AssetsDefinition]:
    fleet = partitions.fleet
    horizon_hours = fleet.horizon_hours

    @dg.asset(
        pool=WAREHOUSE_POOL,
        group_name=FEATURES_GROUP,
        description=describe_features(fleet),
        metadata={"dagster/column_schema": feature_schema(fleet)},
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
                    f"{fleet.warm_up_hours} h after the partitions start have short windows by "
                    "definition: their null rates are reported apart, not judged."
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
            fleet,
        ).localCheckpoint(eager=True)
        # The first observations after PDM_PARTITIONS_START have short windows by definition
        # (no telemetry before it); their nulls are reported, not judged.
        warm_up_end = partitions.daily.start + timedelta(hours=fleet.warm_up_hours)
        judged = rows.where(F.col("datetime") >= timestamp_literal(warm_up_end))
        null_rates = features.null_rates(judged, fleet)
        over = {name: rate for name, rate in null_rates.items() if rate > fleet.max_null_rate(name)}
        warm_up = rows.where(F.col("datetime") < timestamp_literal(warm_up_end))
        warm_up_rates = features.null_rates(warm_up, fleet) if window.start < warm_up_end else {}
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
        pool=WAREHOUSE_POOL,
        group_name=FEATURES_GROUP,
        description=(
            f"For each feature row at t: the component ({names_text(fleet.component_names)}) "
            f"whose failure comes first in (t, t+{fleet.horizon_hours} h] (0 = none), one "
            "boolean per component, and `censored` when failures up to t+H are not all "
            "ingested yet."
        ),
        metadata={"dagster/column_schema": label_schema(fleet)},
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
        warehouse: WarehouseReader,
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
            fleet,
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
    warehouse: WarehouseReader,
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
