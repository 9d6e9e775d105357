"""The feature definitions in docs/model.md on hand-built frames, with hand-computed expectations.

Hour numbers count from 2015-01-01 00:00 UTC; t = 48 is 2015-01-03 00:00.
"""

from __future__ import annotations

import math

import pytest
from pyspark.sql import SparkSession

from pdm_assets.core import features
from pdm_assets.core.fleet import DEFAULT_FLEET
from pdm_assets.core.timewindow import from_spark
from pdm_assets_tests.support.frames import components, errors, hour, machines, telemetry

T = 48  # 2015-01-03 00:00, an observation time


def _row(frame, machine: int, h: float):
    rows = frame.where(f"machine_id = {machine}").collect()
    matching = [row for row in rows if from_spark(row["datetime"]) == hour(h)]
    assert len(matching) == 1, f"expected one row at hour {h}, got {len(matching)}"
    return matching[0]


@pytest.fixture
def ramp(spark: SparkSession):
    """Machine 1: volt = h for every hour 0..60."""
    return telemetry(spark, [(1, h, float(h)) for h in range(0, 61)])


def test_telemetry_windows_are_by_time_with_hand_computed_values(spark, ramp) -> None:
    result = features.telemetry_features(ramp, hour(T), hour(T + 12))
    row = _row(result, 1, T)
    # (t-12, t] = hours 37..48: mean 42.5, sample sd of 12 consecutive integers = sqrt(13).
    assert row["volt_mean_12h"] == pytest.approx(42.5)
    assert row["volt_sd_12h"] == pytest.approx(math.sqrt(13))
    # (t-24, t] = hours 25..48: mean 36.5, sd sqrt(50); (t-36, t] = 13..48: mean 30.5, sd sqrt(111).
    assert row["volt_mean_24h"] == pytest.approx(36.5)
    assert row["volt_sd_24h"] == pytest.approx(math.sqrt(50))
    assert row["volt_mean_36h"] == pytest.approx(30.5)
    assert row["volt_sd_36h"] == pytest.approx(math.sqrt(111))
    # rotate = 2 * volt, pressure = volt + 1, vibration constant.
    assert row["rotate_mean_12h"] == pytest.approx(85.0)
    assert row["pressure_mean_12h"] == pytest.approx(43.5)
    assert row["vibration_sd_36h"] == pytest.approx(0.0)


def test_a_missing_hour_shortens_the_window_instead_of_stretching_it(spark) -> None:
    rows = [(1, h, float(h)) for h in range(0, 61) if h != 40]
    result = features.telemetry_features(telemetry(spark, rows), hour(T), hour(T + 12))
    row = _row(result, 1, T)
    # Hours 37..48 without 40: 11 values summing to 510 - 40; hour 36 must not slip in.
    assert row["volt_mean_12h"] == pytest.approx(470 / 11)


def test_no_feature_reads_rows_after_t(spark, ramp) -> None:
    later = telemetry(spark, [(1, T + 1, 1e6), (1, T + 11, 1e6)])
    later_errors = errors(spark, [(1, T + 0.5, 1)])
    later_replacement = components(spark, [(1, T + 3, 1)])
    empty_errors = errors(spark, [])
    empty_components = components(spark, [])
    fleet = machines(spark, [(1, "model3", 18)])
    with_future = features.compute(
        ramp.unionByName(later),
        later_errors,
        later_replacement,
        empty_components,
        fleet,
        hour(T),
        hour(T + 12),
    )
    without_future = features.compute(
        ramp, empty_errors, empty_components, empty_components, fleet, hour(T), hour(T + 12)
    )
    assert _row(with_future, 1, T).asDict() == _row(without_future, 1, T).asDict()


def test_observation_times_need_telemetry_in_the_last_cadence(spark) -> None:
    # Machine 2 reports hours 0..30 only: observed at 12 (2015-01-01 12:00), 24 and 36
    # (hours 25..30 fall in (24, 36]), not at 48.
    frame = telemetry(spark, [(2, h, 1.0) for h in range(0, 31)])
    result = features.telemetry_features(frame, hour(0), hour(60))
    times = sorted(from_spark(row["datetime"]) for row in result.collect())
    assert times == [hour(0), hour(12), hour(24), hour(36)]
    # The timelines of compute take the same times without computing the features.
    alone = features.observation_times(frame, hour(0), hour(60))
    assert sorted(from_spark(row["datetime"]) for row in alone.collect()) == times
    assert alone.columns == ["machine_id", "datetime"]


def test_window_edges_select_the_start_inclusive_and_end_exclusive_observations(
    spark, ramp
) -> None:
    result = features.telemetry_features(ramp, hour(24), hour(48))
    assert sorted(from_spark(row["datetime"]) for row in result.collect()) == [hour(24), hour(36)]


def test_error_counts_cover_t_minus_24h_exclusive_to_t_inclusive(spark) -> None:
    events = errors(
        spark,
        [
            (1, T - 24, 1),  # exactly t - 24h: outside (t-24h, t]
            (1, T - 23, 1),  # inside
            (1, T, 1),  # at t: inside
            (1, T - 5, 3),
            (1, T - 5, 3),  # two errors of the same type at the same hour both count
            (1, T + 1, 2),  # after t: outside
        ],
    )
    result = features.error_features(events, hour(T), hour(T + 1))
    row = _row(result, 1, T)
    assert [row[name] for name in DEFAULT_FLEET.error_features] == [2, 0, 2, 0, 0]


def test_days_since_replacement_uses_the_last_replacement_over_the_whole_history(spark) -> None:
    observed = telemetry(spark, [(1, T, 1.0), (2, T, 1.0)]).select("machine_id", "datetime")
    maintenance = components(
        spark,
        [
            (1, -24 * 200, 1),  # before the range start (history), superseded by the next one
            (1, -24 * 100, 1),  # comp1: last replacement 100 days + 48 h before t
            (1, T, 2),  # comp2 replaced exactly at t: "at or before t" gives 0 days
            (1, T + 6, 3),  # comp3 after t: not seen, so comp3 has no replacement yet
        ],
    )
    # A failure is a replacement even without a maintenance row (18 such rows in the public data).
    failure_only = components(spark, [(1, T - 30, 4)])
    replaced = features.replacements(maintenance, failure_only)
    result = features.maintenance_features(observed, replaced)
    machine1 = _row(result, 1, T)
    assert machine1["comp1_days_since_replacement"] == pytest.approx(102.0)
    assert machine1["comp2_days_since_replacement"] == pytest.approx(0.0)
    assert machine1["comp3_days_since_replacement"] is None
    assert machine1["comp4_days_since_replacement"] == pytest.approx(30 / 24)
    machine2 = _row(result, 2, T)
    assert all(machine2[name] is None for name in DEFAULT_FLEET.maintenance_features)


def test_compute_assembles_one_row_per_observation_with_machine_columns(spark, ramp) -> None:
    result = features.compute(
        ramp,
        errors(spark, [(1, T - 1, 5)]),
        components(spark, [(1, 0, 1)]),
        components(spark, []),
        machines(spark, [(1, "model3", 18), (9, "model1", 2)]),
        hour(T),
        hour(T + 24),
    )
    rows = result.orderBy("datetime").collect()
    assert [from_spark(row["datetime"]) for row in rows] == [hour(T), hour(T + 12)]
    first = rows[0]
    assert (first["model"], first["age"]) == ("model3", 18)
    assert first["error5_count_24h"] == 1
    assert first["error1_count_24h"] == 0
    assert first["comp1_days_since_replacement"] == pytest.approx(2.0)
    assert str(first["date"]) == "2015-01-03"
    assert result.columns == [
        "machine_id",
        "datetime",
        *DEFAULT_FLEET.numeric_features,
        *DEFAULT_FLEET.categorical_features,
        "date",
    ]
