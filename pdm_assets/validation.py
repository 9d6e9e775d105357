"""Typing and validation of raw rows: every row is either typed and kept, or quarantined.

A quarantined row keeps its original text, its file and line, and the first reason it failed,
so nothing is lost and nothing is silently repaired. Exact duplicates keep one copy; rows that
disagree about the same key (two different readings for one machine and hour) are all
quarantined, since there is no way to tell which one is right.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from pdm_assets.raw_text import PROVENANCE_TYPES
from pdm_assets.timewindow import Window as TimeWindow
from pdm_assets.timewindow import timestamp_literal

DATETIME_FORMAT = "yyyy-MM-dd HH:mm:ss"
SENSORS = ("volt", "rotate", "pressure", "vibration")
ERROR_TYPES = 5
COMPONENTS = 4

# Physical ranges of the hourly sensor means, far outside anything the public data (volt 97-255,
# rotate 138-695, pressure 51-186, vibration 14-76) or the simulator produce, so that only
# impossible values (a -99999 "no reading" code, a unit mix-up) are quarantined.
# PDM_SENSOR_RANGES overrides them.
SENSOR_RANGES: dict[str, tuple[float, float]] = {
    "volt": (0.0, 500.0),
    "rotate": (0.0, 2000.0),
    "pressure": (0.0, 500.0),
    "vibration": (0.0, 200.0),
}

Check = tuple[Column, str | Column]


def parse_datetime(text: Column) -> Column:
    """'YYYY-MM-DD HH:MM:SS' in UTC, surrounding spaces and a one-digit hour allowed; else null.

    A time-zone suffix or any other layout stays null, so the row is quarantined, not guessed.
    """
    trimmed = F.trim(text)
    return F.coalesce(
        F.try_to_timestamp(trimmed, F.lit(DATETIME_FORMAT)),
        F.try_to_timestamp(trimmed, F.lit("yyyy-MM-dd H:mm:ss")),
    )


@dataclass
class Validated:
    """The typed rows and the quarantined ones of one table."""

    valid: DataFrame
    quarantine: DataFrame
    # Both of the above are views of this one computed frame; a row's `reason` is null if kept.
    every_row: DataFrame

    def counts(self) -> tuple[int, dict[str, int]]:
        """Rows kept, and rows quarantined per reason (most frequent first), in one Spark job."""
        per_reason = self.every_row.groupBy("reason").count().collect()
        kept = sum(int(row["count"]) for row in per_reason if row["reason"] is None)
        reasons = sorted(
            ((row["reason"], int(row["count"])) for row in per_reason if row["reason"] is not None),
            key=lambda item: (-item[1], item[0]),
        )
        return kept, dict(reasons)


def _positive_int(column: str) -> Column:
    text = F.trim(F.col(column))
    parsed = text.try_cast("int")
    return F.when(text.rlike(r"^\d+$") & (parsed > 0), parsed)


def _finite_double(column: str) -> Column:
    parsed = F.trim(F.col(column)).try_cast("double")
    return F.when(~F.isnan(parsed) & (F.abs(parsed) < F.lit(float("inf"))), parsed)


def _code(column: str, prefix: str, count: int) -> Column:
    """'comp3' -> 3 for prefix 'comp'; anything else -> null."""
    text = F.lower(F.trim(F.col(column)))
    number = F.regexp_extract(text, rf"^{prefix}(\d+)$", 1).try_cast("int")
    return F.when((number >= 1) & (number <= count), number)


def _raw_text(frame: DataFrame) -> Column:
    if "raw" in frame.columns:
        return F.col("raw")
    return F.to_json(F.struct(*[F.col(name) for name in frame.columns]))


def _provenance(frame: DataFrame) -> list[Column]:
    """File and line of each row, field counts; null for frames not read from files."""
    return [
        (F.col(name) if name in frame.columns else F.lit(None)).cast(kind).alias(f"_{name}")
        for name, kind in PROVENANCE_TYPES.items()
    ]


def _field_count_check() -> Check:
    """Columns need a live session, so the check is built when a frame is validated."""
    return (
        F.col("_field_count") != F.col("_header_fields"),
        F.format_string(
            "%d fields where the header has %d (a decimal comma or a stray or missing separator)",
            F.col("_field_count"),
            F.col("_header_fields"),
        ),
    )


def _first_failed(checks: list[Check]) -> Column:
    reason: Column | None = None
    for failed, message in checks:
        reason = F.when(failed, message) if reason is None else reason.when(failed, message)
    assert reason is not None
    return reason.otherwise(F.lit(None).cast("string"))


def _split(
    frame: DataFrame,
    table: str,
    typed: dict[str, Column],
    checks: list[Check],
    key: tuple[str, ...],
    partition_date: Column | None,
    known_machines: DataFrame | None = None,
) -> Validated:
    """Type the columns, give each row its first failed check, and handle duplicates by key.

    `typed` expressions read the source columns; `checks` and `partition_date` read the typed ones.
    With `known_machines`, `_known_machine` is true for rows whose machine_id is among them.
    """
    staged = frame.select(
        _raw_text(frame).alias("raw"),
        *_provenance(frame),
        *[expression.alias(name) for name, expression in typed.items()],
    )
    if known_machines is not None:
        known = known_machines.select("machine_id", F.lit(True).alias("_known_machine"))
        staged = staged.join(F.broadcast(known.distinct()), "machine_id", "left")
    staged = staged.withColumn("reason", _first_failed([_field_count_check(), *checks]))
    staged = staged.withColumn(
        "date", partition_date if partition_date is not None else F.lit(None).cast("date")
    )
    value_columns = [name for name in typed if name not in key]
    # A struct compares and hashes by value, like its JSON text, without writing the text.
    signature = F.struct(*[F.col(name) for name in value_columns])
    by_key = Window.partitionBy(*key)
    # Only rows that passed the checks compete for a key.
    checked = staged.where(F.col("reason").isNull()).withColumn("_signature", signature)
    checked = checked.withColumn("_variants", F.size(F.collect_set("_signature").over(by_key)))
    checked = checked.withColumn("_copy", F.row_number().over(by_key.orderBy("_signature", "raw")))
    duplicate_reason = F.when(
        F.col("_variants") > 1, F.lit(f"conflicting rows for the same {', '.join(key)}")
    ).when(F.col("_copy") > 1, F.lit("exact duplicate of another row"))
    checked = checked.withColumn("reason", duplicate_reason).drop(
        "_signature", "_variants", "_copy"
    )
    staged = staged.drop("_known_machine")
    checked = checked.drop("_known_machine")
    # Computed once: the quarantine and the typed rows are both written from this result, and
    # reading and checking the source files twice would double the cost of ingest.
    every_row = (
        staged.where(F.col("reason").isNotNull()).unionByName(checked).localCheckpoint(eager=True)
    )
    kept_columns = [*typed.keys()] + (["date"] if partition_date is not None else [])
    return Validated(
        valid=every_row.where(F.col("reason").isNull()).select(*kept_columns),
        quarantine=every_row.where(F.col("reason").isNotNull()).select(
            F.lit(table).alias("table"),
            "reason",
            "raw",
            F.col("_source_file").alias("source_file"),
            F.col("_line").alias("line"),
            "date",
        ),
        every_row=every_row,
    )


AFTER_LAST_PARTITION = (
    "datetime after the last daily partition (PDM_PARTITIONS_END); extend the partitions to "
    "ingest it"
)


def _event_time_checks(
    moment: Column,
    window: TimeWindow,
    history_before: datetime | None,
    rows_after_end: bool,
    whole_hour: bool,
) -> list[Check]:
    in_window = window.contains(moment)
    if history_before is not None:
        in_window = in_window | (moment < timestamp_literal(history_before))
    checks: list[Check] = [(moment.isNull(), "datetime is missing or not 'YYYY-MM-DD HH:MM:SS'")]
    if rows_after_end:
        checks.append((moment >= timestamp_literal(window.end), AFTER_LAST_PARTITION))
    checks.append((~in_window, "datetime outside the day being ingested"))
    if whole_hour:
        checks.append(
            ((F.minute(moment) != 0) | (F.second(moment) != 0), "datetime is not on the hour")
        )
    return checks


def _partition_date(moment: Column, window: TimeWindow) -> Column:
    """The ingest day of a row: its own day; the window's last day for rows after it, the first
    day for history and bad rows."""
    after = moment >= timestamp_literal(window.end)
    return (
        F.when(window.contains(moment), F.to_date(moment))
        .when(after, F.lit(window.days[-1]))
        .otherwise(F.lit(window.first_day))
    )


def _value_columns(
    table: str, sensor_ranges: Mapping[str, tuple[float, float]]
) -> tuple[dict[str, Column], list[Check]]:
    """The typed value columns of an event table and the checks on them."""
    if table == "telemetry":
        typed = {sensor: _finite_double(sensor) for sensor in SENSORS}
        checks: list[Check] = [
            (F.col(sensor).isNull(), f"{sensor} is missing or not a finite number")
            for sensor in SENSORS
        ]
        for sensor in SENSORS:
            low, high = sensor_ranges[sensor]
            checks.append(
                (
                    (F.col(sensor) < F.lit(low)) | (F.col(sensor) > F.lit(high)),
                    f"{sensor} outside its physical range [{low:g}, {high:g}] (PDM_SENSOR_RANGES)",
                )
            )
        return typed, checks
    if table == "errors":
        return (
            {"error_id": _code("errorID", "error", ERROR_TYPES)},
            [(F.col("error_id").isNull(), f"errorID is not error1..error{ERROR_TYPES}")],
        )
    source = {"maint": "comp", "failures": "failure"}[table]
    return (
        {"component": _code(source, "comp", COMPONENTS)},
        [(F.col("component").isNull(), f"{source} is not comp1..comp{COMPONENTS}")],
    )


# The typed columns of each raw table, as Spark's simpleString names them.
EXPECTED_TYPES = {
    "telemetry": {
        "machine_id": "int",
        "datetime": "timestamp",
        **{sensor: "double" for sensor in SENSORS},
        "date": "date",
    },
    "errors": {"machine_id": "int", "datetime": "timestamp", "error_id": "int", "date": "date"},
    "maint": {"machine_id": "int", "datetime": "timestamp", "component": "int", "date": "date"},
    "failures": {"machine_id": "int", "datetime": "timestamp", "component": "int", "date": "date"},
}

EVENT_KEYS = {
    "telemetry": ("machine_id", "datetime"),
    "errors": ("machine_id", "datetime", "error_id"),
    "maint": ("machine_id", "datetime", "component"),
    "failures": ("machine_id", "datetime", "component"),
}


UNKNOWN_MACHINE = "machineID is not in the machines table (raw_machines)"


def validate_events(
    frame: DataFrame,
    table: str,
    window: TimeWindow,
    history_before: datetime | None = None,
    *,
    rows_after_end: bool = False,
    machines: DataFrame | None = None,
    sensor_ranges: Mapping[str, tuple[float, float]] | None = None,
) -> Validated:
    """Type and check the rows of one event table read for `window`.

    With `history_before`, rows earlier than that moment are history (the maintenance log reaches
    back before the first partition) and are kept in the window's first day. With
    `rows_after_end` (the window ends at the last partition), rows after the window are
    quarantined with that reason instead of being lost. With `machines`, rows of a machine that
    is not in it are quarantined.
    """
    moment = parse_datetime(F.col("datetime"))
    values, value_checks = _value_columns(table, {**SENSOR_RANGES, **(sensor_ranges or {})})
    typed = {"machine_id": _positive_int("machineID"), "datetime": moment, **values}
    checks = [
        *_event_time_checks(
            F.col("datetime"),
            window,
            history_before,
            rows_after_end,
            whole_hour=table == "telemetry",
        ),
        (F.col("machine_id").isNull(), "machineID is not a positive integer"),
    ]
    if machines is not None:
        checks.append((F.col("_known_machine").isNull(), UNKNOWN_MACHINE))
    checks.extend(value_checks)
    partition_date = _partition_date(F.col("datetime"), window)
    return _split(
        frame, table, typed, checks, EVENT_KEYS[table], partition_date, known_machines=machines
    )


def validate_machines(frame: DataFrame) -> Validated:
    age_text = F.trim(F.col("age"))
    typed = {
        "machine_id": _positive_int("machineID"),
        "model": F.lower(F.trim(F.col("model"))),
        "age": F.when(age_text.rlike(r"^\d+$"), age_text.try_cast("int")),
    }
    checks: list[Check] = [
        (F.col("machine_id").isNull(), "machineID is not a positive integer"),
        (F.col("model").isNull() | (F.col("model") == ""), "model is missing"),
        (F.col("age").isNull(), "age is not a non-negative integer"),
    ]
    return _split(frame, "machines", typed, checks, ("machine_id",), None)
