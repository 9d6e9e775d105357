"""Typing and validation of raw rows: every row is either typed and kept, or quarantined.

A quarantined row keeps its original text and the first reason it failed, so nothing is lost
and nothing is silently repaired. Exact duplicates keep one copy; rows that disagree about the
same key (two different readings for one machine and hour) are all quarantined, since there is no
way to tell which one is right.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from pdm_assets.partitions import Window as TimeWindow

DATETIME_FORMAT = "yyyy-MM-dd HH:mm:ss"
SENSORS = ("volt", "rotate", "pressure", "vibration")
ERROR_TYPES = 5
COMPONENTS = 4


@dataclass
class Validated:
    """The typed rows and the quarantined ones of one table."""

    valid: DataFrame
    quarantine: DataFrame


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
    return F.to_json(F.struct(*[F.col(name) for name in frame.columns]))


def _first_failed(checks: list[tuple[Column, str]]) -> Column:
    reason: Column | None = None
    for failed, message in checks:
        reason = F.when(failed, message) if reason is None else reason.when(failed, message)
    assert reason is not None
    return reason.otherwise(F.lit(None).cast("string"))


def _split(
    frame: DataFrame,
    table: str,
    typed: dict[str, Column],
    checks: list[tuple[Column, str]],
    key: tuple[str, ...],
    partition_date: Column | None,
) -> Validated:
    """Type the columns, give each row its first failed check, and handle duplicates by key.

    `typed` expressions read the source columns; `checks` and `partition_date` read the typed ones.
    """
    staged = frame.select(
        _raw_text(frame).alias("raw"),
        *[expression.alias(name) for name, expression in typed.items()],
    )
    staged = staged.withColumn("reason", _first_failed(checks))
    staged = staged.withColumn(
        "date", partition_date if partition_date is not None else F.lit(None).cast("date")
    )
    value_columns = [name for name in typed if name not in key]
    signature = F.to_json(F.struct(*[F.col(name) for name in value_columns]))
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
    # Computed once: the quarantine and the typed rows are both written from this result, and
    # reading and checking the source files twice would double the cost of ingest.
    every_row = (
        staged.where(F.col("reason").isNotNull()).unionByName(checked).localCheckpoint(eager=True)
    )
    kept_columns = [*typed.keys()] + (["date"] if partition_date is not None else [])
    return Validated(
        valid=every_row.where(F.col("reason").isNull()).select(*kept_columns),
        quarantine=every_row.where(F.col("reason").isNotNull()).select(
            F.lit(table).alias("table"), "reason", "raw", "date"
        ),
    )


def _event_time_checks(
    moment: Column, window: TimeWindow, history_before: date | None, whole_hour: bool
) -> list[tuple[Column, str]]:
    in_window = (moment >= F.lit(window.start)) & (moment < F.lit(window.end))
    if history_before is not None:
        in_window = in_window | (moment < F.lit(history_before))
    checks = [
        (moment.isNull(), "datetime is missing or not 'YYYY-MM-DD HH:MM:SS'"),
        (~in_window, "datetime outside the day being ingested"),
    ]
    if whole_hour:
        checks.append(
            ((F.minute(moment) != 0) | (F.second(moment) != 0), "datetime is not on the hour")
        )
    return checks


def _partition_date(moment: Column, window: TimeWindow) -> Column:
    """The ingest day of a row: its own day, or the window's first day for history and bad rows."""
    inside = (moment >= F.lit(window.start)) & (moment < F.lit(window.end))
    return F.when(inside, F.to_date(moment)).otherwise(F.lit(window.start.date()))


def _value_columns(table: str) -> tuple[dict[str, Column], list[tuple[Column, str]]]:
    """The typed value columns of an event table and the checks on them."""
    if table == "telemetry":
        typed = {sensor: _finite_double(sensor) for sensor in SENSORS}
        checks = [
            (F.col(sensor).isNull(), f"{sensor} is missing or not a finite number")
            for sensor in SENSORS
        ]
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


def validate_events(
    frame: DataFrame, table: str, window: TimeWindow, history_before: date | None = None
) -> Validated:
    """Type and check the rows of one event table read for `window`.

    With `history_before`, rows earlier than that day are history (the maintenance log reaches
    back before the first partition) and are kept in the window's first day.
    """
    moment = F.try_to_timestamp(F.trim(F.col("datetime")), F.lit(DATETIME_FORMAT))
    values, value_checks = _value_columns(table)
    typed = {"machine_id": _positive_int("machineID"), "datetime": moment, **values}
    checks = [
        *_event_time_checks(
            F.col("datetime"), window, history_before, whole_hour=table == "telemetry"
        ),
        (F.col("machine_id").isNull(), "machineID is not a positive integer"),
        *value_checks,
    ]
    partition_date = _partition_date(F.col("datetime"), window)
    return _split(frame, table, typed, checks, EVENT_KEYS[table], partition_date)


def validate_machines(frame: DataFrame) -> Validated:
    age_text = F.trim(F.col("age"))
    typed = {
        "machine_id": _positive_int("machineID"),
        "model": F.lower(F.trim(F.col("model"))),
        "age": F.when(age_text.rlike(r"^\d+$"), age_text.try_cast("int")),
    }
    checks = [
        (F.col("machine_id").isNull(), "machineID is not a positive integer"),
        (F.col("model").isNull() | (F.col("model") == ""), "model is missing"),
        (F.col("age").isNull(), "age is not a non-negative integer"),
    ]
    return _split(frame, "machines", typed, checks, ("machine_id",), None)
