"""Raw tables: the source's rows of each day, typed and validated; each beside its quarantine
asset, the rows it did not keep with their reasons (same partitions, group raw)."""

from collections import Counter
from collections.abc import Iterator
from typing import Any

import dagster as dg
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from pdm_assets.assets.schemas import column_schema
from pdm_assets.fleet import Fleet, names_text
from pdm_assets.instance_config import WAREHOUSE_POOL
from pdm_assets.landing import LandingError
from pdm_assets.partitions import GraphPartitions, partition_window
from pdm_assets.raw_text import SourceFormatError
from pdm_assets.retries import fail_without_retry
from pdm_assets.sources import MissingSourceDataError, RawSource
from pdm_assets.spark import SparkResource, StepLauncherParam
from pdm_assets.timewindow import Window
from pdm_assets.validation import (
    EVENT_KEYS,
    expected_types,
    validate_events,
    validate_machines,
)

RAW_GROUP = "raw"

# Asset name -> the source's table name.
RAW_EVENT_TABLES = {
    "raw_telemetry": "telemetry",
    "raw_errors": "errors",
    "raw_maintenance": "maint",
    "raw_failures": "failures",
}


def describe(name: str, fleet: Fleet) -> str:
    """The asset description of a raw table, in the fleet's own words."""
    components = names_text(fleet.component_names)
    count = len(fleet.component_names)
    if name == "raw_telemetry":
        every = f"{fleet.telemetry.cadence_minutes}-minute"
        return f"{every} sensor values ({', '.join(fleet.sensors)}) per machine, typed."
    if name == "raw_errors":
        if not fleet.has_errors:
            return "Always empty: the fleet description declares no error codes (no error log)."
        codes = fleet.errors.codes
        return f"Error events (error_id 1..{len(codes)}: {names_text(codes)}) per machine, typed."
    if name == "raw_maintenance":
        if not fleet.has_maintenance:
            return (
                "Always empty: the fleet description declares no maintenance log; the failures "
                "are the only replacements."
            )
        return (
            f"Component replacements (component 1..{count}: {components}) from the maintenance "
            "log; the first partition also holds the log's history before the partitions start."
        )
    return f"Component failures (component 1..{count}: {components}); each is also a replacement."


def quarantine_dataset(table: str) -> str:
    return f"quarantine_{table}"


def _quarantine_metadata(reasons: dict[str, int]) -> dict[str, dg.MetadataValue]:
    table = "\n".join(f"| {reason} | {count} |" for reason, count in reasons.items())
    return {
        "quarantined_rows": dg.MetadataValue.int(sum(reasons.values())),
        "quarantine_reasons": dg.MetadataValue.md(
            "| reason | rows |\n|---|---|\n" + table if reasons else "no rows quarantined"
        ),
    }


MAX_QUARANTINE_SHARE = 0.01


def _check_specs(name: str) -> list[dg.AssetCheckSpec]:
    specs = [
        dg.AssetCheckSpec("schema", asset=name, description="Columns and types as documented."),
        dg.AssetCheckSpec(
            "no_duplicate_keys",
            asset=name,
            description=f"No two kept rows share {', '.join(EVENT_KEYS[RAW_EVENT_TABLES[name]])}.",
        ),
        dg.AssetCheckSpec(
            "quarantine_share",
            asset=name,
            description=f"At most {MAX_QUARANTINE_SHARE:.0%} of the rows read were quarantined.",
        ),
    ]
    if name == "raw_telemetry":
        specs.append(
            dg.AssetCheckSpec(
                "every_machine_reporting",
                asset=name,
                description="Every machine of raw_machines reports telemetry every day.",
            )
        )
    return specs


def _quarantine_out(table: str, raw_asset: str) -> dg.AssetOut:
    return dg.AssetOut(
        io_manager_key="warehouse_io_manager",
        description=(
            f"Rows of the source's {table} table that {raw_asset} did not keep, each with its "
            "reason, source file and line: unparseable or out-of-range values, unknown machines, "
            "conflicting duplicates, rows outside the partitions."
        ),
        kinds={"spark", "parquet"},
    )


def build_raw_event_asset(name: str, partitions: GraphPartitions) -> dg.AssetsDefinition:
    table = RAW_EVENT_TABLES[name]
    quarantine = quarantine_dataset(table)
    fleet = partitions.fleet
    types = expected_types(table, fleet)

    @dg.multi_asset(
        pool=WAREHOUSE_POOL,
        name=name,
        group_name=RAW_GROUP,
        outs={
            name: dg.AssetOut(
                io_manager_key="warehouse_io_manager",
                description=describe(name, fleet),
                kinds={"spark", "parquet"},
                metadata={"dagster/column_schema": column_schema(types)},
            ),
            quarantine: _quarantine_out(table, name),
        },
        partitions_def=partitions.daily,
        backfill_policy=dg.BackfillPolicy.single_run(),
        check_specs=_check_specs(name),
        # Rows of a machine that is not in the machines table are quarantined.
        ins={"raw_machines": dg.AssetIn()},
    )
    def raw_event_table(
        context: dg.AssetExecutionContext,
        step_launcher: StepLauncherParam,
        spark: SparkResource,
        source: RawSource,
        raw_machines: DataFrame,
    ) -> Iterator[dg.Output[DataFrame] | dg.AssetCheckResult]:
        window = partition_window(context.partition_time_window)
        first_partition = window.first_day == partitions.daily.start.date()
        last_partition = partitions.daily.end is not None and window.end >= partitions.daily.end
        session = spark.get_session()
        try:
            rows = source.read_events(
                session,
                fleet,
                table,
                window,
                include_history=first_partition,
                include_after=last_partition,
            )
        except (MissingSourceDataError, SourceFormatError, LandingError) as error:
            # The same files would fail the same way: land them again (a new marker) instead.
            failure = dg.Failure(description=str(error))
            raise fail_without_retry(context.instance, context.run_id, failure) from error
        validated = validate_events(
            rows,
            table,
            window,
            history_before=window.start if first_partition else None,
            rows_after_end=last_partition,
            machines=raw_machines,
            fleet=fleet,
        )
        kept, reasons = validated.counts()
        quarantined = sum(reasons.values())
        time_range = f"{window.start.isoformat()} .. {window.end.isoformat()}"
        yield dg.Output(
            validated.quarantine,
            output_name=quarantine,
            metadata={"time_range": time_range, **_quarantine_metadata(reasons)},
        )
        yield dg.Output(
            validated.valid,
            output_name=name,
            metadata={"time_range": time_range, "rows": kept, **_quarantine_metadata(reasons)},
        )
        asset = dg.AssetKey(name)
        expected_schema = list(types.items())
        actual_schema = [(f.name, f.dataType.simpleString()) for f in validated.valid.schema]
        yield dg.AssetCheckResult(
            asset_key=asset,
            check_name="schema",
            passed=actual_schema == expected_schema,
            metadata={"columns": dg.MetadataValue.json(dict(actual_schema))},
        )
        key = list(EVENT_KEYS[table])
        duplicates = validated.valid.groupBy(*key).count().where(F.col("count") > 1).count()
        yield dg.AssetCheckResult(
            asset_key=asset,
            check_name="no_duplicate_keys",
            passed=duplicates == 0,
            metadata={"duplicate_keys": duplicates},
        )
        share = quarantined / (kept + quarantined) if kept + quarantined else 0.0
        yield dg.AssetCheckResult(
            asset_key=asset,
            check_name="quarantine_share",
            passed=share <= MAX_QUARANTINE_SHARE,
            severity=dg.AssetCheckSeverity.WARN,
            metadata={"quarantined_share": share, "threshold": MAX_QUARANTINE_SHARE},
        )
        if name == "raw_telemetry":
            yield machines_reporting_check(raw_machines, validated.valid, window)

    return raw_event_table


def machines_reporting_check(
    machines: DataFrame, telemetry: DataFrame, window: Window
) -> dg.AssetCheckResult:
    """Known machines without a single telemetry row on some day of the window."""
    machines = machines.select("machine_id")
    days = telemetry.sparkSession.createDataFrame([(day,) for day in window.days], "date date")
    reporting = telemetry.select("machine_id", "date").distinct()
    silent = machines.crossJoin(days).join(reporting, ["machine_id", "date"], "left_anti")
    # One job for the count and the examples.
    found = silent.agg(
        F.count(F.lit(1)).alias("count"),
        F.slice(F.sort_array(F.collect_list(F.struct("machine_id", "date"))), 1, 20).alias("some"),
    ).first()
    assert found is not None
    count = int(found["count"])
    examples = [f"{pair['machine_id']}@{pair['date']}" for pair in found["some"]]
    return dg.AssetCheckResult(
        asset_key=dg.AssetKey("raw_telemetry"),
        check_name="every_machine_reporting",
        passed=count == 0,
        metadata={"silent_machine_days": count, "examples": ", ".join(examples) or "none"},
    )


def build_raw_machines(partitions: GraphPartitions) -> dg.AssetsDefinition:
    fleet = partitions.fleet
    attributes = [*fleet.machines.categorical, *fleet.machine_numeric]
    types = {
        "machine_id": "int",
        **{name: "string" for name in fleet.machines.categorical},
        **{a.name: "int" if a.integer else "double" for a in fleet.machines.numeric},
    }

    @dg.multi_asset(
        pool=WAREHOUSE_POOL,
        name="raw_machines",
        group_name=RAW_GROUP,
        outs={
            "raw_machines": dg.AssetOut(
                io_manager_key="warehouse_io_manager",
                description="One row per machine"
                + (f": {', '.join(attributes)}." if attributes else " (no attributes declared)."),
                kinds={"spark", "parquet"},
                metadata={"dagster/column_schema": column_schema(types)},
            ),
            quarantine_dataset("machines"): _quarantine_out("machines", "raw_machines"),
        },
    )
    def raw_machines(
        step_launcher: StepLauncherParam,
        spark: SparkResource,
        source: RawSource,
    ) -> Iterator[dg.Output[DataFrame]]:
        try:
            validated = validate_machines(source.read_machines(spark.get_session(), fleet), fleet)
        except SourceFormatError as error:
            raise dg.Failure(description=str(error)) from error
        # A register of machines is small: its summary comes from one collect.
        register = validated.valid.select(*attributes).collect() if attributes else []
        _, reasons = validated.counts()
        yield dg.Output(
            validated.quarantine.drop("date"),
            output_name=quarantine_dataset("machines"),
            metadata=_quarantine_metadata(reasons),
        )
        yield dg.Output(
            validated.valid,
            output_name="raw_machines",
            metadata={**register_summary(register, fleet), **_quarantine_metadata(reasons)},
        )

    return raw_machines


def register_summary(register: list[Any], fleet: Fleet) -> dict[str, Any]:
    """Machines per value of each categorical attribute, the largest of each numeric one."""
    summary: dict[str, Any] = {"dagster/row_count": len(register)} if register else {}
    for name in fleet.machines.categorical:
        counts = Counter(row[name] for row in register)
        # "models" for the Azure fleet's `model`, as the page has always said.
        summary[f"{name}s"] = dg.MetadataValue.json(dict(sorted(counts.items())))
    for name in fleet.machine_numeric:
        values = [row[name] for row in register if row[name] is not None]
        summary[f"max_{name}"] = max(values, default=0)
    return summary


def build_raw_assets(partitions: GraphPartitions) -> list[dg.AssetsDefinition]:
    return [
        build_raw_machines(partitions),
        *[build_raw_event_asset(name, partitions) for name in RAW_EVENT_TABLES],
    ]
