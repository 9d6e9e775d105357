"""The extra feature families (docs/model.md, "Extra features"): off in the shipped description,
switched on by its own keys; each family pinned on hand-built frames with hand-computed values.

Hour numbers count from 2015-01-01 00:00 UTC; t = 336 is 2015-01-15 00:00, 14 days in, so the
longest extra window (the 336 h baseline) starts exactly at hour 0.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from pyspark.sql import Row, SparkSession

from pdm_assets.core import features
from pdm_assets.core.fleet import (
    DEFAULT_FLEET,
    DEFAULT_FLEET_FILE,
    FleetDescriptionError,
    load_fleet,
    parse_fleet,
)
from pdm_assets.core.timewindow import from_spark
from pdm_assets_tests.support.frames import (
    components,
    errors,
    hour,
    machines,
    observations,
    telemetry,
)

EXTRAS_FILE = Path(__file__).parents[1] / "data" / "azure_pdm_extras.toml"
EXTRAS = load_fleet(EXTRAS_FILE)
T = 336
SENSORS = ("volt", "rotate", "pressure", "vibration")
CODES = tuple(f"error{n}" for n in range(1, 6))


def _rows(frame) -> dict[tuple[int, float], Row]:
    """Every row by (machine, hour), collected once; each (machine, time) at most once."""
    rows = frame.collect()
    by_key = {
        (row["machine_id"], (from_spark(row["datetime"]) - hour(0)).total_seconds() / 3600): row
        for row in rows
    }
    assert len(by_key) == len(rows)
    return by_key


def _least_squares_slope(points: list[tuple[float, float]]) -> float:
    """Slope of value against time by the textbook formula, on centred sums."""
    times = [time for time, _ in points]
    values = [value for _, value in points]
    mean_time = sum(times) / len(times)
    mean_value = sum(values) / len(values)
    covariance = sum((a - mean_time) * (b - mean_value) for a, b in points)
    return covariance / sum((a - mean_time) ** 2 for a in times)


# -- the description --------------------------------------------------------------------------


def test_the_default_description_has_no_extra_and_is_unchanged() -> None:
    """Names and fingerprint of the shipped description as they were before the extras."""
    assert DEFAULT_FLEET.fingerprint == "f93f0ab43f5a9a5e"
    assert DEFAULT_FLEET.feature_columns == [
        *[
            f"{sensor}_{stat}_{window}h"
            for window in (12, 24, 36)
            for sensor in SENSORS
            for stat in ("mean", "sd")
        ],
        *[f"{code}_count_24h" for code in CODES],
        *[f"comp{n}_days_since_replacement" for n in range(1, 5)],
        "age",
        "model",
    ]
    for family in (
        DEFAULT_FLEET.trend_features,
        DEFAULT_FLEET.deviation_features,
        DEFAULT_FLEET.extra_error_count_features,
        DEFAULT_FLEET.hours_since_features,
    ):
        assert family == []
    assert (DEFAULT_FLEET.telemetry_lookback_days, DEFAULT_FLEET.errors_lookback_days) == (2, 1)
    assert DEFAULT_FLEET.warm_up_hours == 36


def test_the_extras_description_is_the_default_with_every_family_on() -> None:
    assert EXTRAS.fingerprint != DEFAULT_FLEET.fingerprint
    assert EXTRAS.telemetry.trend_windows_hours == [72, 120]
    assert EXTRAS.telemetry.deviation_windows_hours == [24, 72]
    assert (EXTRAS.telemetry.baseline_from_hours, EXTRAS.telemetry.baseline_to_hours) == (336, 120)
    assert EXTRAS.errors.extra_windows_hours == [72]
    assert EXTRAS.errors.since_lookback_hours == 336
    # The same description otherwise: every base feature, in its order, and the extras beside.
    assert EXTRAS.base_telemetry_features == DEFAULT_FLEET.telemetry_features
    assert EXTRAS.base_error_features == DEFAULT_FLEET.error_features
    assert EXTRAS.trend_features == [
        f"{sensor}_{stat}_{window}h"
        for window in (72, 120)
        for sensor in SENSORS
        for stat in ("mean", "slope")
    ]
    assert EXTRAS.deviation_features == [
        f"{sensor}_dev_{window}h" for window in (24, 72) for sensor in SENSORS
    ]
    assert EXTRAS.extra_error_count_features == [f"{code}_count_72h" for code in CODES]
    assert EXTRAS.hours_since_features == [f"{code}_hours_since_last" for code in CODES]
    assert EXTRAS.telemetry_features == [
        *DEFAULT_FLEET.telemetry_features,
        *EXTRAS.trend_features,
        *EXTRAS.deviation_features,
    ]
    assert EXTRAS.error_features == [
        *DEFAULT_FLEET.error_features,
        *EXTRAS.extra_error_count_features,
        *EXTRAS.hours_since_features,
    ]
    assert EXTRAS.feature_columns[-6:] == DEFAULT_FLEET.feature_columns[-6:]
    assert len(EXTRAS.feature_columns) == len(DEFAULT_FLEET.feature_columns) + 34


def test_the_lookbacks_grow_to_the_longest_extra_window() -> None:
    # A 336 h baseline and a 336 h error lookback: 14 days of both before the day.
    assert (EXTRAS.telemetry_lookback_days, EXTRAS.errors_lookback_days) == (14, 14)
    assert EXTRAS.warm_up_hours == 336
    base = DEFAULT_FLEET_FILE.read_text()
    # Trends alone: the 120 h window, 5 days.
    trends = parse_fleet(
        base.replace("cadence_minutes = 60", "cadence_minutes = 60\ntrends = true")
    )
    assert (trends.telemetry_lookback_days, trends.errors_lookback_days) == (5, 1)
    counts = parse_fleet(
        base.replace('"error5"]', '"error5"]\nextra_counts = true\nextra_windows_hours = [96]')
    )
    assert (counts.telemetry_lookback_days, counts.errors_lookback_days) == (2, 4)


def test_each_family_switched_on_changes_the_fingerprint() -> None:
    base = DEFAULT_FLEET_FILE.read_text()
    switches = {
        "trends": ("cadence_minutes = 60", "cadence_minutes = 60\ntrends = true"),
        "deviations": ("cadence_minutes = 60", "cadence_minutes = 60\ndeviations = true"),
        "extra_counts": ('"error5"]', '"error5"]\nextra_counts = true'),
        "hours_since_last": ('"error5"]', '"error5"]\nhours_since_last = true'),
    }
    prints = {DEFAULT_FLEET.fingerprint}
    for old, new in switches.values():
        fleet = parse_fleet(base.replace(old, new))
        prints.add(fleet.fingerprint)
    assert len(prints) == 5
    # Another window of a family that is on is another shape.
    on = base.replace("cadence_minutes = 60", "cadence_minutes = 60\ntrends = true")
    other = on.replace("trends = true", "trends = true\ntrend_windows_hours = [48]")
    assert parse_fleet(other).fingerprint != parse_fleet(on).fingerprint


_ON = """
observation_hours = 12
[telemetry]
sensors = [{ name = "flow" }]
{telemetry}
[errors]
codes = ["e1"]
{errors}
[components]
names = ["seal"]
"""


def _description(telemetry: str = "", errors: str = "") -> str:
    return _ON.replace("{telemetry}", telemetry).replace("{errors}", errors)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            _description("trends = true\ntrend_windows_hours = [50]"),
            "telemetry.trend_windows_hours: [50] not a multiple of observation_hours (12)",
        ),
        (
            _description("trends = true\ntrend_windows_hours = [0, 72]"),
            "telemetry.trend_windows_hours: windows must be positive hours",
        ),
        (
            _description("trends = true\ntrend_windows_hours = []"),
            "telemetry.trend_windows_hours: at least one window is needed",
        ),
        (
            _description("trends = true\ntrend_windows_hours = [24, 72]"),
            "telemetry.trend_windows_hours: [24] already in windows_hours",
        ),
        (
            _description("trend_windows_hours = [48]"),
            "telemetry.trend_windows_hours: set while trends is off (trends = true turns",
        ),
        (_description("trends = 'maybe'"), "telemetry.trends: Input should be a valid boolean"),
        (_description("trend_window_hours = [72]"), "telemetry.trend_window_hours: unknown key"),
        (
            _description("deviations = true\nbaseline_from_hours = 96"),
            "telemetry.baseline_from_hours: baseline_from_hours 96 must be greater than "
            "baseline_to_hours 120",
        ),
        (
            _description("deviations = true\nbaseline_to_hours = 130"),
            "telemetry.baseline_to_hours: [130] not a multiple of observation_hours (12)",
        ),
        (
            _description("deviations = true\ndeviation_windows_hours = [30]"),
            "telemetry.deviation_windows_hours: [30] not a multiple",
        ),
        (
            _description("deviations = true\nbaseline_to_hours = -12"),
            "telemetry.baseline_to_hours: Input should be greater than or equal to 0",
        ),
        (
            _description("baseline_from_hours = 240"),
            "telemetry.baseline_from_hours: set while deviations is off",
        ),
        (
            _description(errors="extra_counts = true\nextra_windows_hours = [24]"),
            "errors.extra_windows_hours: 24 is window_hours",
        ),
        (
            _description(errors="extra_counts = true\nextra_windows_hours = [66]"),
            "errors.extra_windows_hours: [66] not a multiple of observation_hours (12)",
        ),
        (
            _description(errors="extra_windows_hours = [96]"),
            "errors.extra_windows_hours: set while extra_counts is off",
        ),
        (
            _description(errors="hours_since_last = true\nsince_lookback_hours = 0"),
            "errors.since_lookback_hours: Input should be greater than 0",
        ),
        (
            _description(errors="since_lookback_hours = 168"),
            "errors.since_lookback_hours: set while hours_since_last is off",
        ),
        (
            _description(errors="hours_since_last = true").replace('codes = ["e1"]', ""),
            "errors.hours_since_last: the fleet has no error codes",
        ),
    ],
)
def test_a_bad_extra_key_is_refused_naming_the_key(text: str, message: str) -> None:
    with pytest.raises(FleetDescriptionError) as error:
        parse_fleet(text, "pumps.toml")
    assert str(error.value).startswith("fleet description pumps.toml: ")
    assert message in str(error.value)


def test_a_machine_attribute_named_like_an_extra_feature_is_refused() -> None:
    text = _description("trends = true") + "\n[machines]\nnumeric = ['flow_slope_72h']\n"
    with pytest.raises(FleetDescriptionError, match="duplicate feature column 'flow_slope_72h'"):
        parse_fleet(text, "pumps.toml")


def test_a_description_with_extras_round_trips_through_json() -> None:
    from pdm_assets.core.fleet import fleet_from_json

    again = fleet_from_json(EXTRAS.model_dump_json())
    assert again == EXTRAS
    assert again.fingerprint == EXTRAS.fingerprint
    assert fleet_from_json(DEFAULT_FLEET.model_dump_json()).fingerprint == "f93f0ab43f5a9a5e"


# -- trends -----------------------------------------------------------------------------------


def test_trend_means_and_slopes_by_least_squares_over_time(spark: SparkSession) -> None:
    rows = [
        (1, T - 100, 50.0),  # inside (t-120h, t] only
        (1, T - 72, 1000.0),  # exactly t - 72h: outside (t-72h, t], inside (t-120h, t]
        (1, T - 3, 1.0),
        (1, T - 2, 3.0),
        (1, T - 1, 2.0),
        (1, T, 6.0),  # at t: inside
        (1, T + 1, 1e6),  # after t: never read for t
        (2, T, 7.0),  # machine 2: one reading only
    ]
    result = features.extra_telemetry_features(telemetry(spark, rows), hour(T), hour(T + 1), EXTRAS)
    assert result.columns == [
        "machine_id",
        "datetime",
        *EXTRAS.trend_features,
        *EXTRAS.deviation_features,
    ]
    rows = _rows(result)
    row = rows[1, T]
    # (t-72h, t] holds hours -3..0 with 1, 3, 2, 6: mean 3; centred times -1.5, -.5, .5, 1.5
    # against 2, 0, -1, 3 give a covariance sum 7 over a time sum of squares 5: 1.4 per hour.
    assert row["volt_mean_72h"] == pytest.approx(3.0)
    assert row["volt_slope_72h"] == pytest.approx(1.4)
    # rotate = 2 * volt, pressure = volt + 1, vibration constant 40.
    assert row["rotate_slope_72h"] == pytest.approx(2.8)
    assert row["pressure_mean_72h"] == pytest.approx(4.0)
    assert row["pressure_slope_72h"] == pytest.approx(1.4)
    assert row["vibration_slope_72h"] == pytest.approx(0.0)
    # (t-120h, t] adds hours -100 and -72: mean (50 + 1000 + 12) / 6 = 177.
    assert row["volt_mean_120h"] == pytest.approx(177.0)
    points = [(-100, 50.0), (-72, 1000.0), (-3, 1.0), (-2, 3.0), (-1, 2.0), (0, 6.0)]
    assert row["volt_slope_120h"] == pytest.approx(_least_squares_slope(points), rel=1e-9)
    assert row["volt_slope_120h"] < 0  # the high reading is the older one: falling
    # Fewer than 2 readings: a mean and no slope.
    lonely = rows[2, T]
    assert lonely["volt_mean_72h"] == pytest.approx(7.0)
    assert lonely["volt_slope_72h"] is None
    assert lonely["volt_slope_120h"] is None


def test_a_slope_is_the_same_whenever_the_window_starts(spark: SparkSession) -> None:
    """A ramp of 0.5 per hour with a missing hour has slope 0.5 at every observation time, over
    a month: sums of hours since the window start keep their precision."""
    ramp = [(1, h, 100 + 0.5 * h) for h in range(0, 24 * 31 + 1) if h % 24 != 7]
    result = features.extra_telemetry_features(
        telemetry(spark, ramp), hour(120), hour(24 * 31), EXTRAS
    )
    slopes = [row["volt_slope_120h"] for row in result.collect()]
    assert len(slopes) == 2 * (31 - 5)
    assert slopes == pytest.approx([0.5] * len(slopes), rel=1e-9)


# -- deviations -------------------------------------------------------------------------------


def test_deviations_from_the_machines_own_baseline(spark: SparkSession) -> None:
    rows = [
        (1, T - 336, 1000.0),  # exactly t - 14 d: outside the baseline (t-336h, t-120h]
        (1, T - 300, 10.0),  # baseline, then a gap of four days
        (1, T - 200, 10.0),
        (1, T - 120, 40.0),  # exactly t - 5 d: the baseline's near edge is inside
        (1, T - 60, 20.0),  # (t-72h, t] only
        (1, T - 23, 30.0),
        (1, T, 50.0),
        # Machine 2: nothing in its baseline window (t - 119 h is after its near edge).
        (2, T - 119, 5.0),
        (2, T, 9.0),
    ]
    result = features.extra_telemetry_features(telemetry(spark, rows), hour(T), hour(T + 1), EXTRAS)
    rows = _rows(result)
    row = rows[1, T]
    # Baseline mean (10 + 10 + 40) / 3 = 20; (t-24h, t] mean (30 + 50) / 2 = 40;
    # (t-72h, t] mean (20 + 30 + 50) / 3.
    assert row["volt_dev_24h"] == pytest.approx(40 - 20)
    assert row["volt_dev_72h"] == pytest.approx(100 / 3 - 20)
    # pressure = volt + 1: the same deviations; vibration is constant: none.
    assert row["pressure_dev_24h"] == pytest.approx(20.0)
    assert row["rotate_dev_24h"] == pytest.approx(40.0)
    assert row["vibration_dev_72h"] == pytest.approx(0.0)
    no_baseline = rows[2, T]
    assert all(no_baseline[name] is None for name in EXTRAS.deviation_features)


def test_the_baseline_edges_follow_the_description(spark: SparkSession) -> None:
    fleet = parse_fleet(
        EXTRAS_FILE.read_text()
        .replace("baseline_from_hours = 336", "baseline_from_hours = 48")
        .replace("baseline_to_hours = 120", "baseline_to_hours = 0")
    )
    assert fleet.telemetry_lookback_days == 5  # the 120 h trend window is now the longest
    rows = [(1, T - 48, 100.0), (1, T - 47, 2.0), (1, T - 1, 4.0), (1, T, 6.0)]
    result = features.extra_telemetry_features(telemetry(spark, rows), hour(T), hour(T + 1), fleet)
    row = _rows(result)[1, T]
    # Baseline (t-48h, t]: 2, 4, 6, mean 4; (t-24h, t]: 4, 6, mean 5.
    assert row["volt_dev_24h"] == pytest.approx(1.0)


# -- errors -----------------------------------------------------------------------------------


ERROR_ROWS = [
    (1, T - 5, 1),
    (1, T - 30, 1),  # inside (t-72h, t], outside (t-24h, t]
    (1, T - 80, 1),  # outside (t-72h, t]
    (1, T - 72, 3),  # exactly t - 72h: not counted in 72 h; 72 hours since
    (1, T - 336, 2),  # exactly t - 336h: outside the lookback (t-336h, t]
    (1, T - 400, 2),
    (1, T, 4),  # at t: counted, 0 hours since
    (1, T + 1, 5),  # after t: never read for t
]


def test_extra_error_counts_over_their_own_windows(spark: SparkSession) -> None:
    result = features.extra_error_counts(errors(spark, ERROR_ROWS), hour(T), hour(T + 1), EXTRAS)
    assert result.columns == ["machine_id", "datetime", *EXTRAS.extra_error_count_features]
    row = _rows(result)[1, T]
    assert [row[f"{code}_count_72h"] for code in CODES] == [2, 0, 0, 1, 0]


def test_hours_since_the_last_error_within_the_lookback(spark: SparkSession) -> None:
    observed = observations(spark, [(1, T), (2, T)])
    result = features.hours_since_last_error(observed, errors(spark, ERROR_ROWS), EXTRAS)
    rows = _rows(result)
    row = rows[1, T]
    assert [row[f"{code}_hours_since_last"] for code in CODES] == [5.0, None, 72.0, 0.0, None]
    # A machine without errors: null for every code.
    assert all(rows[2, T][name] is None for name in EXTRAS.hours_since_features)


def test_hours_since_count_fractions_of_an_hour(spark: SparkSession) -> None:
    observed = observations(spark, [(1, T)])
    late = errors(spark, [(1, T - 335.5, 1), (1, T - 0.25, 2)])
    row = _rows(features.hours_since_last_error(observed, late, EXTRAS))[1, T]
    assert (row["error1_hours_since_last"], row["error2_hours_since_last"]) == (335.5, 0.25)


# -- compute ----------------------------------------------------------------------------------


def _compute(spark: SparkSession, readings, error_rows, fleet, start: float, end: float):
    return features.compute(
        telemetry(spark, readings),
        errors(spark, error_rows),
        components(spark, [(1, 0, 1)]),
        components(spark, []),
        machines(spark, [(1, "model3", 18)]),
        hour(start),
        hour(end),
        fleet,
    )


def test_compute_joins_every_family_when_on_and_none_when_off(spark: SparkSession) -> None:
    readings = [(1, h, float(h % 24)) for h in range(0, T + 25)]
    with_extras = _compute(spark, readings, ERROR_ROWS, EXTRAS, T, T + 24)
    assert with_extras.columns == ["machine_id", "datetime", *EXTRAS.feature_columns, "date"]
    base = _compute(spark, readings, ERROR_ROWS, DEFAULT_FLEET, T, T + 24)
    assert base.columns == ["machine_id", "datetime", *DEFAULT_FLEET.feature_columns, "date"]
    # The same observation times, and the base features equal with or without extras.
    extra_rows, base_rows = _rows(with_extras), _rows(base)
    assert sorted(extra_rows) == sorted(base_rows) == [(1, T), (1, T + 12)]
    for key, base_row in base_rows.items():
        assert {name: extra_rows[key][name] for name in base.columns} == base_row.asDict()
    row = extra_rows[1, T]
    assert [row[f"{code}_count_72h"] for code in CODES] == [2, 0, 0, 1, 0]
    assert row["error2_hours_since_last"] is None
    assert row["error1_hours_since_last"] == pytest.approx(5.0)
    # A day of a 0..23 saw-tooth: each 24 h mean is 11.5, the baseline's too.
    assert row["volt_dev_24h"] == pytest.approx(0.0)
    # Observed at t + 12 with no error of code 2 anywhere near: a count of 0, not null.
    later = extra_rows[1, T + 12]
    assert later["error2_count_72h"] == 0
    assert later["error4_hours_since_last"] == pytest.approx(12.0)


def test_no_extra_feature_reads_rows_after_t(spark: SparkSession) -> None:
    readings = [(1, h, float(h)) for h in range(0, T + 1)]
    future = [(1, h, 1e6) for h in range(T + 1, T + 12)]
    without = _compute(spark, readings, ERROR_ROWS[:-1], EXTRAS, T, T + 1)
    with_future = _compute(
        spark, readings + future, [*ERROR_ROWS, (1, T + 0.5, 2)], EXTRAS, T, T + 1
    )
    assert _rows(with_future)[1, T].asDict() == _rows(without)[1, T].asDict()


def test_null_rate_thresholds_of_the_extras() -> None:
    assert EXTRAS.max_null_rate("error1_hours_since_last") == 1.0
    assert EXTRAS.max_null_rate("volt_slope_72h") == 0.05
    assert EXTRAS.max_null_rate("volt_dev_24h") == 0.05
    assert EXTRAS.max_null_rate("volt_mean_72h") == 0.0
    assert EXTRAS.max_null_rate("error1_count_72h") == 0.0
