"""Raw validation: good rows typed and kept, bad rows quarantined with a reason, none lost.

Every input here is a tiny file in the public format with one defect, read by the real reader
(raw_text.read_rows), so the field splitting, line numbers and header checks are under test too.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from pyspark.sql import DataFrame, SparkSession

from pdm_assets.core.csv_lines import SourceFormatError, column_positions, read_rows
from pdm_assets.core.fleet import DEFAULT_FLEET, DEFAULT_FLEET_FILE, parse_fleet
from pdm_assets.core.timewindow import Window, from_spark, midnight
from pdm_assets.core.validation import unknown_machine, validate_events, validate_machines

DEFAULT_FLEET_TOML = Path(DEFAULT_FLEET_FILE).read_text()
DAY = Window.of_days(date(2015, 1, 2), date(2015, 1, 3))
GOOD = "2015-01-02 06:00:00,1,170.5,450,100,40"


def write(folder: Path, table: str, lines: list[str], newline: str = "\n") -> Path:
    path = folder / f"{table}-{len(list(folder.iterdir()))}.csv"
    header = ",".join(DEFAULT_FLEET.source_columns(table))
    path.write_bytes(newline.join([header, *lines, ""]).encode())
    return path


def read(spark: SparkSession, folder: Path, table: str, lines: list[str]) -> DataFrame:
    return read_rows(spark, [write(folder, table, lines)], DEFAULT_FLEET.source_columns(table))


TELEMETRY = DEFAULT_FLEET.source_columns("telemetry")


def reasons(frame: DataFrame) -> dict[str, str]:
    return {row["raw"]: row["reason"] for row in frame.collect()}


def test_telemetry_rows_are_typed_or_quarantined_with_their_reason(spark, tmp_path) -> None:
    lines = [
        GOOD,
        "2015-01-02 07:00:00,1,abc,450,100,40",
        "2015-01-02 08:00:00,x,170,450,100,40",
        "2015-01-03 00:00:00,1,170,450,100,40",
        "2015-01-02 09:30:00,1,170,450,100,40",
        "02/01/2015 10:00,1,170,450,100,40",
        "2015-01-02 11:00:00,1,NaN,450,100,40",
        "2015-01-02 12:00:00,1,170,inf,100,40",
        "2015-01-02 13:00:00+01:00,1,170,450,100,40",
    ]
    result = validate_events(read(spark, tmp_path, "telemetry", lines), "telemetry", DAY)
    valid = result.valid.collect()
    assert len(valid) == 1
    assert from_spark(valid[0]["datetime"]) == datetime(2015, 1, 2, 6, tzinfo=UTC)
    assert valid[0]["volt"] == 170.5 and valid[0]["machine_id"] == 1
    assert str(valid[0]["date"]) == "2015-01-02"
    assert reasons(result.quarantine) == {
        lines[1]: "volt is missing or not a finite number",
        lines[2]: "machineID is not a positive integer",
        lines[3]: "datetime outside the day being ingested",
        lines[4]: "datetime is not on the hour",
        lines[5]: "datetime is missing or not 'YYYY-MM-DD HH:MM:SS'",
        lines[6]: "volt is missing or not a finite number",
        lines[7]: "rotate is missing or not a finite number",
        lines[8]: "datetime is missing or not 'YYYY-MM-DD HH:MM:SS'",
    }
    # Every quarantined row keeps its text and lands in the ingested day's partition.
    assert {str(row["date"]) for row in result.quarantine.collect()} == {"2015-01-02"}
    assert result.valid.count() + result.quarantine.count() == len(lines)


def test_quarantined_rows_name_their_file_and_line(spark, tmp_path) -> None:
    path = write(tmp_path, "telemetry", [GOOD, "2015-01-02 07:00:00,1,abc,450,100,40"])
    result = validate_events(read_rows(spark, [path], TELEMETRY), "telemetry", DAY)
    [row] = result.quarantine.collect()
    # Line 1 is the header, line 2 the good row.
    assert (row["source_file"], row["line"]) == (str(path), 3)


@pytest.mark.parametrize(
    ("line", "fields"),
    [
        ("2015-01-02 07:00:00,1,160,89,450,100,40", 7),  # a decimal comma: never reshaped
        ("2015-01-02 07:00:00,1,160,450,100,40,extra", 7),  # an extra field
        ("2015-01-02 07:00:00,1,160,450", 4),  # a short row
        ("2015-01-02 07:00:00,1,16", 3),  # a file cut in the middle of a row
    ],
)
def test_a_row_with_the_wrong_field_count_is_quarantined_not_reshaped(
    spark, tmp_path, line: str, fields: int
) -> None:
    result = validate_events(read(spark, tmp_path, "telemetry", [GOOD, line]), "telemetry", DAY)
    assert [row["volt"] for row in result.valid.collect()] == [170.5]
    assert reasons(result.quarantine) == {
        line: f"{fields} fields where the header has 6 "
        "(a decimal comma or a stray or missing separator)"
    }


def test_crlf_lines_and_quoted_fields_are_read_as_the_values_they_hold(spark, tmp_path) -> None:
    lines = [
        '"2015-01-02 06:00:00","1","170.5","450","100","40"',
        '2015-01-02 07:00:00,2,"1,5",1,1,1',
    ]
    path = write(tmp_path, "telemetry", lines, newline="\r\n")
    result = validate_events(read_rows(spark, [path], TELEMETRY), "telemetry", DAY)
    assert [(row["machine_id"], row["volt"]) for row in result.valid.collect()] == [(1, 170.5)]
    # A quoted comma stays inside its field: six fields, and "1,5" is not a number.
    assert reasons(result.quarantine) == {lines[1]: "volt is missing or not a finite number"}


@pytest.mark.any_zone
def test_a_file_with_cr_only_line_endings_is_refused_not_read_as_no_rows(spark, tmp_path) -> None:
    """Finding 8 of issue 19: Python's header read split such a file at CR, Spark's row split
    did not, and the landing path ingested 0 rows without a word."""
    path = write(tmp_path, "telemetry", [GOOD, GOOD.replace("06:", "07:")], newline="\r")
    with pytest.raises(SourceFormatError, match="end in CR alone"):
        read_rows(spark, [path], TELEMETRY)


def test_a_leading_space_or_a_one_digit_hour_is_read_not_lost(spark, tmp_path) -> None:
    lines = [" 2015-01-02 06:00:00,1,170,450,100,40", "2015-01-02 7:00:00,1,171,450,100,40"]
    result = validate_events(read(spark, tmp_path, "telemetry", lines), "telemetry", DAY)
    kept = sorted(from_spark(row["datetime"]).hour for row in result.valid.collect())
    assert kept == [6, 7]
    assert result.quarantine.count() == 0


def test_impossible_sensor_values_are_quarantined_by_physical_range(spark, tmp_path) -> None:
    lines = [
        GOOD,
        "2015-01-02 07:00:00,1,-99999,450,100,40",
        "2015-01-02 08:00:00,1,170,450,100,250",
    ]
    frame = read(spark, tmp_path, "telemetry", lines)
    result = validate_events(frame, "telemetry", DAY)
    assert reasons(result.quarantine) == {
        lines[1]: "volt outside its physical range [0, 500] (the fleet description)",
        lines[2]: "vibration outside its physical range [0, 200] (the fleet description)",
    }
    # The ranges are the fleet description's: a wider vibration range keeps the third row, and
    # a sensor without bounds is only checked to be finite.
    text = DEFAULT_FLEET_TOML.replace(
        '{ name = "vibration", min = 0, max = 200 }', '{ name = "vibration", max = 300 }'
    ).replace('{ name = "volt", min = 0, max = 500 }', '{ name = "volt" }')
    wider = validate_events(frame, "telemetry", DAY, fleet=parse_fleet(text))
    assert sorted(row["vibration"] for row in wider.valid.collect()) == [40.0, 40.0, 250.0]


def test_rows_of_a_machine_not_in_the_machines_table_are_quarantined(spark, tmp_path) -> None:
    machines = validate_machines(read(spark, tmp_path, "machines", ["1,model3,18"])).valid
    lines = [GOOD, "2015-01-02 06:00:00,7,170,450,100,40"]
    frame = read(spark, tmp_path, "telemetry", lines)
    result = validate_events(frame, "telemetry", DAY, machines=machines)
    assert [row["machine_id"] for row in result.valid.collect()] == [1]
    assert reasons(result.quarantine) == {lines[1]: unknown_machine()}


@pytest.mark.any_zone
def test_a_missing_or_renamed_column_is_one_line_naming_file_and_column(tmp_path) -> None:
    path = tmp_path / "PdM_telemetry.csv"
    path.write_text("datetime,machineID,voltage,rotate,pressure,vibration\n" + GOOD + "\n")
    # Checked from the header alone, before Spark reads a row (no session needed).
    with pytest.raises(SourceFormatError) as error:
        column_positions(path, TELEMETRY)
    message = str(error.value)
    assert "\n" not in message
    assert str(path) in message and "column 'volt' missing" in message


def test_columns_in_another_order_are_read_by_name(spark, tmp_path) -> None:
    path = tmp_path / "reordered.csv"
    path.write_text(
        "machineID,datetime,vibration,pressure,rotate,volt\n1,2015-01-02 06:00:00,40,100,450,170\n"
    )
    result = validate_events(read_rows(spark, [path], TELEMETRY), "telemetry", DAY)
    [row] = result.valid.collect()
    assert (row["volt"], row["rotate"], row["pressure"], row["vibration"]) == (170, 450, 100, 40)


def test_duplicates_keep_one_exact_copy_and_quarantine_conflicts(spark, tmp_path) -> None:
    lines = [
        "2015-01-02 06:00:00,1,170,450,100,40",
        "2015-01-02 06:00:00,1,170,450,100,40",  # exact duplicate
        "2015-01-02 07:00:00,2,170,450,100,40",
        "2015-01-02 07:00:00,2,171,450,100,40",  # disagrees: both out
    ]
    result = validate_events(read(spark, tmp_path, "telemetry", lines), "telemetry", DAY)
    assert [(row["machine_id"], row["volt"]) for row in result.valid.collect()] == [(1, 170.0)]
    assert sorted(row["reason"] for row in result.quarantine.collect()) == [
        "conflicting rows for the same machine_id, datetime",
        "conflicting rows for the same machine_id, datetime",
        "exact duplicate of another row",
    ]


def test_event_codes_become_numbers_and_unknown_codes_are_quarantined(spark, tmp_path) -> None:
    errors = read(
        spark, tmp_path, "errors", ["2015-01-02 06:00:00,1,error3", "2015-01-02 06:00:00,1,error9"]
    )
    result = validate_events(errors, "errors", DAY)
    assert [row["error_id"] for row in result.valid.collect()] == [3]
    assert list(reasons(result.quarantine).values()) == ["errorID is not error1..error5"]

    failures = read(
        spark, tmp_path, "failures", ["2015-01-02 06:00:00,4,comp2", "2015-01-02 06:00:00,4,comp7"]
    )
    result = validate_events(failures, "failures", DAY)
    assert [(row["machine_id"], row["component"]) for row in result.valid.collect()] == [(4, 2)]
    assert list(reasons(result.quarantine).values()) == ["failure is not comp1..comp4"]


def test_an_empty_event_table_gives_no_rows_and_no_error(spark, tmp_path) -> None:
    result = validate_events(read(spark, tmp_path, "errors", []), "errors", DAY)
    assert result.valid.count() == 0 and result.quarantine.count() == 0


def test_history_before_the_first_partition_is_kept_in_that_partition(spark, tmp_path) -> None:
    maintenance = read(
        spark, tmp_path, "maint", ["2014-06-01 06:00:00,1,comp2", "2015-01-02 06:00:00,1,comp1"]
    )
    with_history = validate_events(
        maintenance, "maint", DAY, history_before=midnight(date(2015, 1, 2))
    )
    kept = sorted(
        (from_spark(row["datetime"]).isoformat(), str(row["date"]))
        for row in with_history.valid.collect()
    )
    assert kept == [
        ("2014-06-01T06:00:00+00:00", "2015-01-02"),
        ("2015-01-02T06:00:00+00:00", "2015-01-02"),
    ]
    # Outside the first partition the same old row is a misplaced row.
    without = validate_events(maintenance, "maint", DAY)
    assert list(reasons(without.quarantine).values()) == ["datetime outside the day being ingested"]


def test_rows_after_the_last_partition_are_quarantined_with_that_reason(spark, tmp_path) -> None:
    lines = [GOOD, "2015-01-03 01:00:00,1,170,450,100,40"]
    result = validate_events(
        read(spark, tmp_path, "telemetry", lines), "telemetry", DAY, rows_after_end=True
    )
    [row] = result.quarantine.collect()
    assert row["raw"] == lines[1] and str(row["date"]) == "2015-01-02"
    assert row["reason"].startswith("datetime after the last daily partition (PDM_PARTITIONS_END)")


@pytest.mark.any_zone
def test_machines_are_typed_and_bad_ages_quarantined(spark, tmp_path) -> None:
    result = validate_machines(read(spark, tmp_path, "machines", ["1,model3,18", "2,model4,-1"]))
    assert [(r["machine_id"], r["model"], r["age"]) for r in result.valid.collect()] == [
        (1, "model3", 18)
    ]
    assert list(reasons(result.quarantine).values()) == ["age is not a non-negative integer"]


def test_counts_give_kept_rows_and_quarantined_rows_per_reason_in_one_pass(spark, tmp_path) -> None:
    lines = [
        GOOD,
        "2015-01-02 07:00:00,1,170,450,100,40",
        "2015-01-02 08:00:00,1,abc,450,100,40",
        "2015-01-02 09:00:00,1,xyz,450,100,40",
        "2015-01-02 10:30:00,1,170,450,100,40",
    ]
    result = validate_events(read(spark, tmp_path, "telemetry", lines), "telemetry", DAY)
    kept, per_reason = result.counts()
    assert kept == 2
    # Most frequent first.
    assert list(per_reason.items()) == [
        ("volt is missing or not a finite number", 2),
        ("datetime is not on the hour", 1),
    ]
