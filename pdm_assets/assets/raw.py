"""Raw tables: the source's rows of each day, typed and validated; bad rows quarantined."""

from collections import Counter

import dagster as dg
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from pdm_assets.io_manager import WarehouseResource
from pdm_assets.partitions import GraphPartitions, Window
from pdm_assets.sources import RawSource
from pdm_assets.spark import SparkResource
from pdm_assets.validation import Validated, validate_events, validate_machines

RAW_GROUP = "raw"

# Asset name -> the source's table name.
RAW_EVENT_TABLES = {
    "raw_telemetry": "telemetry",
    "raw_errors": "errors",
    "raw_maintenance": "maint",
    "raw_failures": "failures",
}
DESCRIPTIONS = {
    "raw_telemetry": "Hourly sensor means (volt, rotate, pressure, vibration) per machine, typed.",
    "raw_errors": "Error events (error_id 1..5) per machine, typed.",
    "raw_maintenance": (
        "Component replacements (component 1..4) from the maintenance log; the first partition "
        "also holds the log's history before the partitions start."
    ),
    "raw_failures": "Component failures (component 1..4); each is also a replacement.",
}


def quarantine_dataset(table: str) -> str:
    return f"quarantine_{table}"


def _reason_counts(validated: Validated) -> dict[str, int]:
    rows = validated.quarantine.groupBy("reason").count().collect()
    return dict(Counter({row["reason"]: int(row["count"]) for row in rows}).most_common())


def _quarantine_metadata(reasons: dict[str, int], path: str) -> dict[str, dg.MetadataValue]:
    table = "\n".join(f"| {reason} | {count} |" for reason, count in reasons.items())
    return {
        "quarantined_rows": dg.MetadataValue.int(sum(reasons.values())),
        "quarantine_reasons": dg.MetadataValue.md(
            "| reason | rows |\n|---|---|\n" + table if reasons else "no rows quarantined"
        ),
        "quarantine_path": dg.MetadataValue.path(path),
    }


def build_raw_event_asset(name: str, partitions: GraphPartitions) -> dg.AssetsDefinition:
    table = RAW_EVENT_TABLES[name]

    @dg.asset(
        name=name,
        group_name=RAW_GROUP,
        description=DESCRIPTIONS[name],
        partitions_def=partitions.daily,
        backfill_policy=dg.BackfillPolicy.single_run(),
        io_manager_key="warehouse_io_manager",
        kinds={"spark", "parquet"},
    )
    def raw_event_table(
        context: dg.AssetExecutionContext,
        spark: SparkResource,
        source: RawSource,
        warehouse: WarehouseResource,
    ) -> dg.Output[DataFrame]:
        window = Window.from_dagster(context.partition_time_window)
        first_partition = window.start.date() == partitions.daily.start.date()
        session = spark.get_session()
        rows = source.read_events(session, table, window, include_history=first_partition)
        validated = validate_events(
            rows, table, window, history_before=window.start.date() if first_partition else None
        )
        quarantine = quarantine_dataset(table)
        warehouse.store.write_partitions(quarantine, validated.quarantine, window)
        reasons = _reason_counts(validated)
        return dg.Output(
            validated.valid,
            metadata={
                "time_range": f"{window.start.isoformat()} .. {window.end.isoformat()}",
                **_quarantine_metadata(reasons, str(warehouse.store.dataset_path(quarantine))),
            },
        )

    return raw_event_table


@dg.asset(
    group_name=RAW_GROUP,
    description="One row per machine: model (model1..model4) and age in years.",
    io_manager_key="warehouse_io_manager",
    kinds={"spark", "parquet"},
)
def raw_machines(
    spark: SparkResource, source: RawSource, warehouse: WarehouseResource
) -> dg.Output[DataFrame]:
    validated = validate_machines(source.read_machines(spark.get_session()))
    quarantine = quarantine_dataset("machines")
    warehouse.store.write_table(quarantine, validated.quarantine.drop("date"))
    machines = validated.valid
    return dg.Output(
        machines,
        metadata={
            "models": dg.MetadataValue.json(
                {
                    row["model"]: int(row["count"])
                    for row in machines.groupBy("model").count().orderBy("model").collect()
                }
            ),
            "max_age": int(machines.agg(F.max("age")).first()[0] or 0),  # type: ignore[index]
            **_quarantine_metadata(
                _reason_counts(validated), str(warehouse.store.dataset_path(quarantine))
            ),
        },
    )


def build_raw_assets(partitions: GraphPartitions) -> list[dg.AssetsDefinition]:
    return [raw_machines, *[build_raw_event_asset(name, partitions) for name in RAW_EVENT_TABLES]]
