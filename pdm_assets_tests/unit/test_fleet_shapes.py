"""Features, labels and validation of fleets of other shapes, on hand-built frames with
hand-computed expectations: a one-component fleet without error or maintenance log, and a
two-component fleet with its own error codes and column names."""

from __future__ import annotations

import math

import pytest
from pyspark.sql import DataFrame, SparkSession

from pdm_assets.core import features, labels
from pdm_assets.core.fleet import Fleet, parse_fleet
from pdm_assets.core.timewindow import Window, from_spark
from pdm_assets_tests.support.frames import ORIGIN, components, errors, hour, observations

# One component, two sensors, 2 h observations, windows of 2 and 4 h, a 2 h horizon; no error
# log, no maintenance log, no machine attributes.
SEALS = parse_fleet(
    """
    horizon_hours = 2
    observation_hours = 2
    [telemetry]
    windows_hours = [2, 4]
    sensors = [{ name = "flow", min = 0 }, { name = "temp" }]
    [components]
    names = ["seal"]
    """
)
# Two components with a maintenance log, two error codes, its own column names.
PUMPS = parse_fleet(
    """
    [columns]
    machine = "pump"
    time = "ts"
    error = "code"
    maintenance = "part"
    failure = "failed_part"
    timezone = "Europe/Berlin"
    [telemetry]
    windows_hours = [12]
    sensors = [{ name = "flow" }]
    [errors]
    window_hours = 24
    codes = ["E7", "E9"]
    [maintenance]
    present = true
    [components]
    names = ["impeller", "seal"]
    [machines]
    categorical = ["maker"]
    numeric = [{ name = "kw", min = 1, max = 500 }]
    """
)


def _telemetry(
    spark: SparkSession, fleet: Fleet, rows: list[tuple[int, float, float]]
) -> DataFrame:
    """(machine, hour, value) rows: every sensor of `fleet` reads the value, the second + 10."""
    columns = ", ".join(f"{name} double" for name in fleet.sensors)
    data = [(m, hour(h), *[v + 10 * k for k in range(len(fleet.sensors))]) for m, h, v in rows]
    return spark.createDataFrame(data, f"machine_id int, datetime timestamp, {columns}")


def _machines(spark: SparkSession, ids: list[int]) -> DataFrame:
    return spark.createDataFrame([(i,) for i in ids], "machine_id int")


def test_a_one_component_fleet_without_error_or_maintenance_log(spark: SparkSession) -> None:
    telemetry = _telemetry(spark, SEALS, [(1, h, float(h)) for h in range(6)])
    failures = components(spark, [(1, 3, 1)])
    no_rows = components(spark, [])
    rows = features.compute(
        telemetry,
        errors(spark, []),
        no_rows,
        failures,
        _machines(spark, [1]),
        hour(0),
        hour(6),
        SEALS,
    )
    assert rows.columns == ["machine_id", "datetime", *SEALS.feature_columns, "date"]
    by_hour = {from_spark(r["datetime"]).hour: r for r in rows.collect()}
    assert sorted(by_hour) == [0, 2, 4]
    # t = 2: (0, 2] holds hours 1 and 2; (t - 4, 2] holds 0, 1, 2.
    assert by_hour[2]["flow_mean_2h"] == pytest.approx(1.5)
    assert by_hour[2]["flow_sd_2h"] == pytest.approx(math.sqrt(0.5))
    assert by_hour[2]["temp_mean_4h"] == pytest.approx(11.0)
    # t = 4: (0, 4] holds hours 1..4: mean 2.5, sample sd sqrt(5/3).
    assert by_hour[4]["flow_mean_4h"] == pytest.approx(2.5)
    assert by_hour[4]["flow_sd_4h"] == pytest.approx(math.sqrt(5 / 3))
    # One reading in the window: no deviation.
    assert by_hour[0]["flow_sd_2h"] is None
    # The failure at 03:00 is the only replacement: 1 h = 1/24 day before t = 4.
    assert by_hour[4]["seal_days_since_replacement"] == pytest.approx(1 / 24)
    assert by_hour[2]["seal_days_since_replacement"] is None

    labelled = labels.compute(
        observations(spark, [(1, 0), (1, 2), (1, 4)]), failures, 2, hour(48), SEALS
    )
    assert labelled.columns == [
        "machine_id",
        "datetime",
        "label",
        "fails_seal",
        "hours_to_failure",
        "censored",
        "date",
    ]
    got = {
        from_spark(r["datetime"]).hour: (r["label"], r["fails_seal"], r["hours_to_failure"])
        for r in labelled.collect()
    }
    # The failure at 03:00 lies in (2, 4]: the row at 02:00 is the binary problem's positive.
    assert got == {0: (0, False, None), 2: (1, True, 1.0), 4: (0, False, None)}


def test_error_counts_are_per_declared_code_and_both_logs_are_replacements(
    spark: SparkSession,
) -> None:
    telemetry = _telemetry(spark, PUMPS, [(1, h, 100.0) for h in range(13)])
    # E9 (code 2) twice and E7 once in (0, 12]; E7 at hour 0 is 12 h before t = 12: outside.
    error_rows = errors(spark, [(1, 0, 1), (1, 3, 2), (1, 5, 2), (1, 11, 1)])
    maintenance = components(spark, [(1, -24, 2)])  # seal replaced a day before the start
    failures = components(spark, [(1, 6, 1)])  # impeller failed (and was replaced) at 06:00
    machines = spark.createDataFrame([(1, "acme", 7.5)], "machine_id int, maker string, kw double")
    rows = features.compute(
        telemetry, error_rows, maintenance, failures, machines, hour(12), hour(24), PUMPS
    )
    [row] = [r for r in rows.collect() if from_spark(r["datetime"]) == hour(12)]
    assert (row["E7_count_24h"], row["E9_count_24h"]) == (2, 2)
    assert row["impeller_days_since_replacement"] == pytest.approx(6 / 24)
    assert row["seal_days_since_replacement"] == pytest.approx(36 / 24)
    assert (row["maker"], row["kw"]) == ("acme", 7.5)
    assert rows.columns[-4:] == ["seal_days_since_replacement", "kw", "maker", "date"]


def test_validation_reads_the_fleets_columns_codes_zone_and_ranges(
    spark: SparkSession, tmp_path
) -> None:
    from pdm_assets.core.csv_lines import read_rows
    from pdm_assets.core.validation import validate_events, validate_machines

    day = Window.of_days(ORIGIN.date(), ORIGIN.date().replace(day=2))
    path = tmp_path / "errors.csv"
    # Berlin is UTC+1 in January: 01:30 on Jan 1 is 00:30 UTC; 00:30 on Jan 1 is Dec 31 UTC.
    path.write_text(
        "pump,ts,code\n1,2015-01-01 01:30:00,e9\n1,2015-01-01 00:30:00,E7\n"
        "1,2015-01-01 02:00:00,E8\n"
    )
    result = validate_events(
        read_rows(spark, [path], PUMPS.source_columns("errors")), "errors", day, fleet=PUMPS
    )
    [kept] = result.valid.collect()
    assert (kept["error_id"], from_spark(kept["datetime"])) == (2, hour(0.5))
    reasons = sorted(row["reason"] for row in result.quarantine.collect())
    assert reasons == ["code is not E7, E9", "ts outside the day being ingested"]

    register = tmp_path / "machines.csv"
    register.write_text("pump,maker,kw\n1, Acme ,7.5\n2,acme,0.5\n3,,10\n")
    machines = validate_machines(
        read_rows(spark, [register], PUMPS.source_columns("machines")), PUMPS
    )
    assert [(r["machine_id"], r["maker"], r["kw"]) for r in machines.valid.collect()] == [
        (1, "acme", 7.5)
    ]
    assert sorted(row["reason"] for row in machines.quarantine.collect()) == [
        "kw outside [1, 500] (the fleet description)",
        "maker is missing",
    ]


def test_readings_on_the_hour_of_a_half_hour_zone_are_on_the_cadence(
    spark: SparkSession, tmp_path
) -> None:
    from pdm_assets.core.csv_lines import read_rows
    from pdm_assets.core.validation import validate_events

    kolkata = parse_fleet(
        "[columns]\ntimezone = 'Asia/Kolkata'\n[telemetry]\nsensors = [{ name = 'flow' }]\n"
        "[components]\nnames = ['seal']\n"
    )
    path = tmp_path / "telemetry.csv"
    # 06:00 and 07:00 in Kolkata (UTC+5:30) are 00:30 and 01:30 UTC; 07:30 is off the hour.
    path.write_text(
        "datetime,machineID,flow\n2015-01-01 06:00:00,1,1\n2015-01-01 07:00:00,1,2\n"
        "2015-01-01 07:30:00,1,3\n"
    )
    day = Window.of_days(ORIGIN.date(), ORIGIN.date().replace(day=2))
    frame = read_rows(spark, [path], kolkata.source_columns("telemetry"))
    result = validate_events(frame, "telemetry", day, fleet=kolkata)
    assert sorted(from_spark(r["datetime"]) for r in result.valid.collect()) == [
        hour(0.5),
        hour(1.5),
    ]
    assert [r["reason"] for r in result.quarantine.collect()] == ["datetime is not on the hour"]
