"""The label and training-row definitions in docs/model.md on hand-built frames.

Hour numbers count from 2015-01-01 00:00 UTC; the horizon is 7 days = 168 h.
"""

from __future__ import annotations

import pytest
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from pdm_assets.core import labels, training
from pdm_assets.core.fleet import DEFAULT_FLEET
from pdm_assets.core.timewindow import from_spark
from pdm_assets_tests.support.frames import components, hour, observations

H = 168
T = 48


def _by_machine(frame):
    return {row["machine_id"]: row for row in frame.collect()}


@pytest.fixture
def labelled(spark: SparkSession):
    obs = observations(spark, [(machine, T) for machine in range(1, 7)])
    failures = components(
        spark,
        [
            (1, T + H, 3),  # exactly t + H: inside (t, t + H]
            (2, T + H + 1, 3),  # one hour past the horizon: outside
            (3, T, 2),  # at t: label data at or before t is never used
            (4, T + 30, 2),
            (4, T + 30, 1),  # two components at the same hour: class 1, both flags
            (5, T + 100, 4),
            (5, T + 20, 2),  # the first failure decides the class
        ],
    )
    return _by_machine(labels.compute(obs, failures, H, failures_known_until=hour(T + H)))


def test_failure_at_exactly_the_horizon_is_inside(labelled) -> None:
    assert labelled[1]["label"] == 3
    assert labelled[1]["fails_comp3"] is True
    assert labelled[1]["hours_to_failure"] == pytest.approx(H)


def test_failure_just_outside_the_horizon_is_not_a_label(labelled) -> None:
    assert labelled[2]["label"] == 0
    assert not any(labelled[2][name] for name in DEFAULT_FLEET.fails_columns)
    assert labelled[2]["hours_to_failure"] is None


def test_failure_at_t_is_not_a_label(labelled) -> None:
    assert labelled[3]["label"] == 0


def test_two_components_at_the_same_hour_never_become_a_third_class(labelled) -> None:
    row = labelled[4]
    assert row["label"] == 1  # the lower-numbered of the two, not 1 + 2 = 3
    assert [row[name] for name in DEFAULT_FLEET.fails_columns] == [True, True, False, False]


def test_the_first_failure_in_the_horizon_decides_the_class(labelled) -> None:
    row = labelled[5]
    assert row["label"] == 2
    assert [row[name] for name in DEFAULT_FLEET.fails_columns] == [False, True, False, True]
    assert row["hours_to_failure"] == pytest.approx(20)


def test_no_failure_gives_class_zero(labelled) -> None:
    assert labelled[6]["label"] == 0
    assert labelled[6]["censored"] is False


def test_rows_whose_horizon_reaches_past_the_known_failures_are_censored(spark) -> None:
    obs = observations(spark, [(1, T), (1, T + 12)])
    result = labels.compute(obs, components(spark, []), H, failures_known_until=hour(T + H + 6))
    censored = {from_spark(row["datetime"]): row["censored"] for row in result.collect()}
    assert censored == {hour(T): False, hour(T + 12): True}


def test_training_rows_need_t_plus_h_before_the_cutoff_and_no_censoring(spark) -> None:
    cutoff = hour(T + H + 12)
    obs = observations(spark, [(1, T), (1, T + 12), (1, T + 24), (2, T)])
    feature_rows = obs.withColumn("volt_mean_12h", F.lit(1.0)).withColumn(
        "date", F.to_date("datetime")
    )
    label_rows = labels.compute(
        obs, components(spark, []), H, failures_known_until=hour(T + H + 100)
    )
    # Machine 2's label is censored by hand: it must be dropped although t + H <= cutoff.
    label_rows = label_rows.withColumn("censored", F.col("censored") | (F.col("machine_id") == 2))
    rows = training.training_rows(feature_rows, label_rows, cutoff, H)
    kept = sorted((row["machine_id"], from_spark(row["datetime"])) for row in rows.collect())
    # t = T + 24 has t + H = cutoff + 12 h > cutoff.
    assert kept == [(1, hour(T)), (1, hour(T + 12))]


def test_temporal_split_leaves_a_horizon_gap_between_train_and_validation(spark) -> None:
    cutoff = hour(24 * 40)
    obs = observations(spark, [(1, h) for h in range(0, 24 * 40, 12)])
    rows = obs.withColumn("label", F.lit(0))
    train, validation = training.temporal_split(rows, cutoff, H, validation_days=10)
    validation_times = [from_spark(row["datetime"]) for row in validation.collect()]
    train_times = [from_spark(row["datetime"]) for row in train.collect()]
    # Validation: t in (cutoff - H - 10 d, cutoff - H] = (hour 552, hour 792].
    assert min(validation_times) == hour(564) and max(validation_times) == hour(792)
    # Training labels end before validation starts: t + H <= hour 552, so t <= hour 384.
    assert max(train_times) == hour(384)
