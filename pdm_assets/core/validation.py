"""Typing and validation of raw rows: every row is either typed and kept, or quarantined.

A quarantined row keeps its original text, its file and line, and the first reason it failed,
so nothing is lost and nothing is silently repaired. Exact duplicates keep one copy; rows that
disagree about the same key (two different readings for one machine and hour) are all
quarantined, since there is no way to tell which one is right.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from pdm_assets.core.csv_lines import PROVENANCE_TYPES
from pdm_assets.core.fleet import DEFAULT_FLEET, Bounded, Fleet, names_text
from pdm_assets.core.timewindow import Window as TimeWindow
from pdm_assets.core.timewindow import timestamp_literal

DATETIME_FORMAT = "yyyy-MM-dd HH:mm:ss"
RANGES_HOME = "the fleet description"

Check = tuple[Column, str | Column]


def parse_datetime(text: Column, timezone: str = "UTC") -> Column:
    """'YYYY-MM-DD HH:MM:SS', surrounding spaces and a one-digit hour allowed, as UTC; else null.

    The text is a wall-clock time in `timezone` (the fleet description's `columns.timezone`),
    converted to UTC (Spark resolves summer-time gaps and overlaps). A time-zone suffix or any
    other layout stays null, so the row is quarantined, not guessed.
    """
    trimmed = F.trim(text)
    parsed = F.coalesce(
        F.try_to_timestamp(trimmed, F.lit(DATETIME_FORMAT)),
        F.try_to_timestamp(trimmed, F.lit("yyyy-MM-dd H:mm:ss")),
    )
    # The session runs in UTC (spark.py), so the parsed value is the wall clock read as UTC.
    return parsed if timezone == "UTC" else F.to_utc_timestamp(parsed, timezone)


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


def _code(column: str, names: list[str]) -> Column:
    """The 1-based position of the column's value among `names` (case and surrounding spaces
    ignored): 'comp3' -> 3 of comp1..comp4; anything else -> null."""
    if not names:
        # A fleet without error codes has no error log: there are no rows to type.
        return F.lit(None).cast("int")
    text = F.lower(F.trim(F.col(column)))
    position: Column | None = None
    for number, name in enumerate(names, start=1):
        matches = text == F.lit(name.lower())
        position = (
            F.when(matches, F.lit(number)) if position is None else position.when(matches, number)
        )
    assert position is not None
    return position.otherwise(F.lit(None).cast("int"))


def _outside(column: Column, bounds: Bounded) -> Column | None:
    """True where a value lies outside its declared range; None for an unbounded column."""
    conditions = []
    if bounds.min is not None:
        conditions.append(column < F.lit(bounds.min))
    if bounds.max is not None:
        conditions.append(column > F.lit(bounds.max))
    if not conditions:
        return None
    return conditions[0] if len(conditions) == 1 else conditions[0] | conditions[1]


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
    time_column: str,
    window: TimeWindow,
    history_before: datetime | None,
    rows_after_end: bool,
    cadence_minutes: int | None,
    timezone: str = "UTC",
) -> list[Check]:
    in_window = window.contains(moment)
    if history_before is not None:
        in_window = in_window | (moment < timestamp_literal(history_before))
    checks: list[Check] = [
        (moment.isNull(), f"{time_column} is missing or not 'YYYY-MM-DD HH:MM:SS'")
    ]
    if rows_after_end:
        checks.append((moment >= timestamp_literal(window.end), AFTER_LAST_PARTITION))
    checks.append((~in_window, f"{time_column} outside the day being ingested"))
    if cadence_minutes is not None:
        # Readings sit on the cadence's grid from midnight of the source's own clock (a zone
        # half an hour off UTC reads hourly at hh:30 UTC); the windows count them by time.
        wall_clock = moment if timezone == "UTC" else F.from_utc_timestamp(moment, timezone)
        minutes = F.hour(wall_clock) * 60 + F.minute(wall_clock)
        off_grid = (minutes % F.lit(cadence_minutes) != 0) | (F.second(moment) != 0)
        where = (
            "on the hour" if cadence_minutes == 60 else f"on the {cadence_minutes}-minute cadence"
        )
        checks.append((off_grid, f"{time_column} is not {where}"))
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


def _value_columns(table: str, fleet: Fleet) -> tuple[dict[str, Column], list[Check]]:
    """The typed value columns of an event table and the checks on them."""
    columns = fleet.columns
    if table == "telemetry":
        typed = {sensor: _finite_double(sensor) for sensor in fleet.sensors}
        checks: list[Check] = [
            (F.col(sensor).isNull(), f"{sensor} is missing or not a finite number")
            for sensor in fleet.sensors
        ]
        for sensor in fleet.telemetry.sensors:
            outside = _outside(F.col(sensor.name), sensor)
            if outside is not None:
                checks.append(
                    (
                        outside,
                        f"{sensor.name} outside its physical range {sensor.range_text()} "
                        f"({RANGES_HOME})",
                    )
                )
        return typed, checks
    if table == "errors":
        codes = fleet.errors.codes
        return (
            {"error_id": _code(columns.error, codes)},
            [(F.col("error_id").isNull(), f"{columns.error} is not {names_text(codes)}")],
        )
    source = {"maint": columns.maintenance, "failures": columns.failure}[table]
    names = fleet.component_names
    return (
        {"component": _code(source, names)},
        [(F.col("component").isNull(), f"{source} is not {names_text(names)}")],
    )


def expected_types(table: str, fleet: Fleet = DEFAULT_FLEET) -> dict[str, str]:
    """The typed columns of a raw table, as Spark's simpleString names them."""
    if table == "telemetry":
        values = {sensor: "double" for sensor in fleet.sensors}
    elif table == "errors":
        values = {"error_id": "int"}
    else:
        values = {"component": "int"}
    return {"machine_id": "int", "datetime": "timestamp", **values, "date": "date"}


EVENT_KEYS = {
    "telemetry": ("machine_id", "datetime"),
    "errors": ("machine_id", "datetime", "error_id"),
    "maint": ("machine_id", "datetime", "component"),
    "failures": ("machine_id", "datetime", "component"),
}


def unknown_machine(fleet: Fleet = DEFAULT_FLEET) -> str:
    return f"{fleet.columns.machine} is not in the machines table (raw_machines)"


def validate_events(
    frame: DataFrame,
    table: str,
    window: TimeWindow,
    history_before: datetime | None = None,
    *,
    rows_after_end: bool = False,
    machines: DataFrame | None = None,
    fleet: Fleet = DEFAULT_FLEET,
) -> Validated:
    """Type and check the rows of one event table read for `window`, with the columns, codes,
    ranges and cadence of `fleet`.

    With `history_before`, rows earlier than that moment are history (the maintenance log reaches
    back before the first partition) and are kept in the window's first day. With
    `rows_after_end` (the window ends at the last partition), rows after the window are
    quarantined with that reason instead of being lost. With `machines`, rows of a machine that
    is not in it are quarantined.
    """
    columns = fleet.columns
    moment = parse_datetime(F.col(columns.time), columns.timezone)
    values, value_checks = _value_columns(table, fleet)
    typed = {"machine_id": _positive_int(columns.machine), "datetime": moment, **values}
    checks = [
        *_event_time_checks(
            F.col("datetime"),
            columns.time,
            window,
            history_before,
            rows_after_end,
            cadence_minutes=fleet.telemetry.cadence_minutes if table == "telemetry" else None,
            timezone=columns.timezone,
        ),
        (F.col("machine_id").isNull(), f"{columns.machine} is not a positive integer"),
    ]
    if machines is not None:
        checks.append((F.col("_known_machine").isNull(), unknown_machine(fleet)))
    checks.extend(value_checks)
    partition_date = _partition_date(F.col("datetime"), window)
    return _split(
        frame, table, typed, checks, EVENT_KEYS[table], partition_date, known_machines=machines
    )


def _machine_attribute(name: str, integer: bool) -> Column:
    text = F.trim(F.col(name))
    if integer:
        return F.when(text.rlike(r"^[+-]?\d+$"), text.try_cast("int"))
    return _finite_double(name)


def validate_machines(frame: DataFrame, fleet: Fleet = DEFAULT_FLEET) -> Validated:
    """Type and check the machine register: the id, the categorical and numeric attributes."""
    machine = fleet.columns.machine
    typed = {"machine_id": _positive_int(machine)}
    checks: list[Check] = [(F.col("machine_id").isNull(), f"{machine} is not a positive integer")]
    for name in fleet.machines.categorical:
        typed[name] = F.lower(F.trim(F.col(name)))
        checks.append((F.col(name).isNull() | (F.col(name) == ""), f"{name} is missing"))
    for attribute in fleet.machines.numeric:
        name = attribute.name
        typed[name] = _machine_attribute(name, attribute.integer)
        outside = _outside(F.col(name), attribute)
        if attribute.integer and attribute.min == 0 and attribute.max is None:
            # The common case (an age, a count) in one reason, as the register has always said.
            checks.append(
                (F.col(name).isNull() | (F.col(name) < 0), f"{name} is not a non-negative integer")
            )
            continue
        kind = "an integer" if attribute.integer else "a finite number"
        checks.append((F.col(name).isNull(), f"{name} is missing or not {kind}"))
        if outside is not None:
            checks.append((outside, f"{name} outside {attribute.range_text()} ({RANGES_HOME})"))
    return _split(frame, "machines", typed, checks, ("machine_id",), None)
