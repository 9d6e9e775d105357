"""Raw validation: good rows typed and kept, bad rows quarantined with a reason, none lost."""

from __future__ import annotations

from datetime import date, datetime

from pyspark.sql import DataFrame, SparkSession

from pdm_assets.partitions import Window
from pdm_assets.sources import string_schema
from pdm_assets.validation import validate_events, validate_machines

DAY = Window.of_days(date(2015, 1, 2), date(2015, 1, 3))


def _text(spark: SparkSession, table: str, rows: list[tuple[str | None, ...]]) -> DataFrame:
    return spark.createDataFrame(rows, string_schema(table))


def _reasons(frame: DataFrame) -> dict[str, str]:
    return {row["raw"]: row["reason"] for row in frame.collect()}


def test_telemetry_rows_are_typed_or_quarantined_with_their_reason(spark) -> None:
    rows = [
        ("2015-01-02 06:00:00", "1", "170.5", "450", "100", "40"),  # good
        ("2015-01-02 07:00:00", "1", "abc", "450", "100", "40"),  # volt not a number
        ("2015-01-02 08:00:00", "x", "170", "450", "100", "40"),  # machine id
        ("2015-01-03 00:00:00", "1", "170", "450", "100", "40"),  # next day
        ("2015-01-02 09:30:00", "1", "170", "450", "100", "40"),  # not on the hour
        ("02/01/2015 10:00", "1", "170", "450", "100", "40"),  # unparseable datetime
        ("2015-01-02 11:00:00", "1", "NaN", "450", "100", "40"),  # not finite
    ]
    result = validate_events(_text(spark, "telemetry", rows), "telemetry", DAY)
    valid = result.valid.collect()
    assert len(valid) == 1
    assert valid[0]["datetime"] == datetime(2015, 1, 2, 6)
    assert valid[0]["volt"] == 170.5 and valid[0]["machine_id"] == 1
    assert str(valid[0]["date"]) == "2015-01-02"
    reasons = sorted(_reasons(result.quarantine).values())
    assert reasons == sorted(
        [
            "volt is missing or not a finite number",
            "machineID is not a positive integer",
            "datetime outside the day being ingested",
            "datetime is not on the hour",
            "datetime is missing or not 'YYYY-MM-DD HH:MM:SS'",
            "volt is missing or not a finite number",
        ]
    )
    # Every quarantined row keeps its text and lands in the ingested day's partition.
    assert {str(row["date"]) for row in result.quarantine.collect()} == {"2015-01-02"}
    assert result.valid.count() + result.quarantine.count() == len(rows)


def test_duplicates_keep_one_exact_copy_and_quarantine_conflicts(spark) -> None:
    rows = [
        ("2015-01-02 06:00:00", "1", "170", "450", "100", "40"),
        ("2015-01-02 06:00:00", "1", "170", "450", "100", "40"),  # exact duplicate
        ("2015-01-02 07:00:00", "2", "170", "450", "100", "40"),
        ("2015-01-02 07:00:00", "2", "171", "450", "100", "40"),  # disagrees: both out
    ]
    result = validate_events(_text(spark, "telemetry", rows), "telemetry", DAY)
    assert [(row["machine_id"], row["volt"]) for row in result.valid.collect()] == [(1, 170.0)]
    reasons = sorted(row["reason"] for row in result.quarantine.collect())
    assert reasons == [
        "conflicting rows for the same machine_id, datetime",
        "conflicting rows for the same machine_id, datetime",
        "exact duplicate of another row",
    ]


def test_event_codes_become_numbers_and_unknown_codes_are_quarantined(spark) -> None:
    errors = _text(
        spark,
        "errors",
        [("2015-01-02 06:00:00", "1", "error3"), ("2015-01-02 06:00:00", "1", "error9")],
    )
    result = validate_events(errors, "errors", DAY)
    assert [row["error_id"] for row in result.valid.collect()] == [3]
    assert list(_reasons(result.quarantine).values()) == ["errorID is not error1..error5"]

    failures = _text(spark, "failures", [("2015-01-02 06:00:00", "4", "comp2")])
    typed = validate_events(failures, "failures", DAY).valid.collect()
    assert [(row["machine_id"], row["component"]) for row in typed] == [(4, 2)]


def test_history_before_the_first_partition_is_kept_in_that_partition(spark) -> None:
    maintenance = _text(
        spark,
        "maint",
        [("2014-06-01 06:00:00", "1", "comp2"), ("2015-01-02 06:00:00", "1", "comp1")],
    )
    with_history = validate_events(maintenance, "maint", DAY, history_before=date(2015, 1, 2))
    kept = sorted((str(row["datetime"]), str(row["date"])) for row in with_history.valid.collect())
    assert kept == [
        ("2014-06-01 06:00:00", "2015-01-02"),
        ("2015-01-02 06:00:00", "2015-01-02"),
    ]
    # Outside the first partition the same old row is a misplaced row.
    without = validate_events(maintenance, "maint", DAY)
    assert list(_reasons(without.quarantine).values()) == [
        "datetime outside the day being ingested"
    ]


def test_machines_are_typed_and_bad_ages_quarantined(spark) -> None:
    machines = _text(spark, "machines", [("1", "model3", "18"), ("2", "model4", "-1")])
    result = validate_machines(machines)
    assert [(r["machine_id"], r["model"], r["age"]) for r in result.valid.collect()] == [
        (1, "model3", 18)
    ]
    assert list(_reasons(result.quarantine).values()) == ["age is not a non-negative integer"]
