"""Raw tables: the source's rows of each day, typed and validated; each beside its quarantine
asset, the rows it did not keep with their reasons (same partitions, group raw)."""

from collections import Counter
from collections.abc import Iterator
from typing import Any

import dagster as dg
from pyspark.sql import DataFrame

from pdm_assets.adapters.sources import MissingSourceDataError, RawSource
from pdm_assets.adapters.spark import SparkResource, StepLauncherParam
from pdm_assets.core.csv_lines import SourceFormatError
from pdm_assets.core.fleet import Fleet, names_text
from pdm_assets.core.landing import LandingError
from pdm_assets.core.validation import (
    expected_types,
    validate_events,
    validate_machines,
)
from pdm_assets.defs.instance_config import WAREHOUSE_POOL
from pdm_assets.defs.metadata import column_schema
from pdm_assets.defs.partitions import GraphPartitions, partition_window
from pdm_assets.defs.raw.checks import event_checks, machines_reporting_check, raw_check_specs
from pdm_assets.defs.retries import fail_without_retry
from pdm_assets.defs.thresholds import CheckThresholds

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
        check_specs=raw_check_specs(name, table),
        # Rows of a machine that is not in the machines table are quarantined.
        ins={"raw_machines": dg.AssetIn()},
    )
    def raw_event_table(
        context: dg.AssetExecutionContext,
        step_launcher: StepLauncherParam,
        spark: SparkResource,
        source: RawSource,
        config: CheckThresholds,
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
        time_range = f"{window.start.isoformat()} .. {window.end.isoformat()}"
        page: dict[str, Any] = {"time_range": time_range, **_quarantine_metadata(reasons)}
        yield dg.Output(validated.quarantine, output_name=quarantine, metadata=page)
        yield dg.Output(validated.valid, output_name=name, metadata={**page, "rows": kept})
        yield from event_checks(name, table, validated.valid, kept, reasons, types, config)
        if name == "raw_telemetry":
            yield machines_reporting_check(raw_machines, validated.valid, window)

    return raw_event_table


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
