"""The raw tables' checks: schema, unique keys, the quarantined share, and (telemetry) every
known machine reporting every day."""

import dagster as dg
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from pdm_assets.core.timewindow import Window
from pdm_assets.core.validation import EVENT_KEYS
from pdm_assets.defs.thresholds import DEFAULT_THRESHOLDS, CheckThresholds


def raw_check_specs(name: str, table: str) -> list[dg.AssetCheckSpec]:
    specs = [
        dg.AssetCheckSpec("schema", asset=name, description="Columns and types as documented."),
        dg.AssetCheckSpec(
            "no_duplicate_keys",
            asset=name,
            description=f"No two kept rows share {', '.join(EVENT_KEYS[table])}.",
        ),
        dg.AssetCheckSpec(
            "quarantine_share",
            asset=name,
            description=(
                "At most max_quarantine_share (the config's CheckThresholds, "
                f"{DEFAULT_THRESHOLDS.max_quarantine_share:.0%} by default) of the rows read "
                "were quarantined."
            ),
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


def event_checks(
    name: str,
    table: str,
    valid: DataFrame,
    kept: int,
    reasons: dict[str, int],
    expected_types: dict[str, str],
    thresholds: CheckThresholds,
) -> list[dg.AssetCheckResult]:
    """The checks of a raw event table on the rows it kept (`valid`, `kept` of them) and the
    counts it quarantined per reason."""
    asset = dg.AssetKey(name)
    expected_schema = list(expected_types.items())
    actual_schema = [(f.name, f.dataType.simpleString()) for f in valid.schema]
    key = list(EVENT_KEYS[table])
    duplicates = valid.groupBy(*key).count().where(F.col("count") > 1).count()
    quarantined = sum(reasons.values())
    share = quarantined / (kept + quarantined) if kept + quarantined else 0.0
    limit = thresholds.max_quarantine_share
    return [
        dg.AssetCheckResult(
            asset_key=asset,
            check_name="schema",
            passed=actual_schema == expected_schema,
            metadata={"columns": dg.MetadataValue.json(dict(actual_schema))},
        ),
        dg.AssetCheckResult(
            asset_key=asset,
            check_name="no_duplicate_keys",
            passed=duplicates == 0,
            metadata={"duplicate_keys": duplicates},
        ),
        dg.AssetCheckResult(
            asset_key=asset,
            check_name="quarantine_share",
            passed=share <= limit,
            severity=dg.AssetCheckSeverity.WARN,
            metadata={"quarantined_share": share, "threshold": limit},
        ),
    ]


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
