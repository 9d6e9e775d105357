"""The work list and the planner's feedback on tiny frames, against lists written by hand."""

from __future__ import annotations

from datetime import date

import pytest
from pyspark.sql import DataFrame, SparkSession

from pdm_assets.core import feedback, monitoring, worklist
from pdm_assets.core.explain import REASONS_TYPE
from pdm_assets.core.timewindow import from_spark
from pdm_assets_tests.support.frames import hour

DAY = date(2015, 1, 3)
SCORE_SCHEMA = (
    "machine_id int, datetime timestamp, prob_none double, prob_comp1 double, "
    "prob_comp2 double, prob_comp3 double, prob_comp4 double, alert boolean, "
    f"alert_component int, alert_component_name string, alert_threshold double, "
    f"alert_reasons {REASONS_TYPE}, days_since_replacement double, model_name string, "
    "model_version int, date date"
)
REASON = [("vibration_mean_24h", "52.1", "40.3", 0.214), ("age", "18", "10", 0.05)]


def _score(machine: int, hours: int, component: int, probability: float) -> tuple:
    """A score row `hours` after 2015-01-01 00:00 UTC alerting for `component` (0: none) with
    `probability` for it; component 1's cut is 0.4, component 2's 0.5."""
    at = hour(hours)
    probabilities = [0.0, 0.0, 0.0, 0.0]
    if component:
        probabilities[component - 1] = probability
    threshold = {1: 0.4, 2: 0.5}.get(component)
    return (
        machine,
        at,
        1.0 - sum(probabilities),
        *probabilities,
        component > 0,
        component,
        {1: "comp1", 2: "comp2"}.get(component),
        threshold,
        REASON if component else None,
        12.5 if component else None,
        "pdm",
        3,
        at.date(),
    )


@pytest.fixture(scope="module")
def scores(spark: SparkSession) -> DataFrame:
    rows = [
        # Machine 1 alerts comp1 at 01-02 12:00, 01-03 00:00 and 12:00 (held 3 at 12:00); at
        # 01-02 00:00 it did not alert.
        _score(1, 24, 0, 0.0),
        _score(1, 36, 1, 0.5),
        _score(1, 48, 1, 0.6),
        _score(1, 60, 1, 0.8),  # 0.8 / 0.4 = urgency 2.0
        # Machine 2 alerts comp2 at 01-03 00:00 only: listed at 00:00, held 1.
        _score(2, 36, 0, 0.0),
        _score(2, 48, 2, 0.75),  # 0.75 / 0.5 = 1.5
        _score(2, 60, 0, 0.0),
        # Machine 3 alerts comp1 on 01-03, but the planner inspected it on 01-01.
        _score(3, 48, 1, 0.9),
        # Machine 4 alerts comp1 on 01-03 at 12:00; feedback on comp2 does not acknowledge it,
        # nor does feedback recorded after the alert, nor feedback 10 days old.
        _score(4, 60, 1, 0.44),  # 1.1
        # Machine 5 alerted on 01-02 only: not on the list of 01-03.
        _score(5, 36, 1, 0.9),
    ]
    return spark.createDataFrame(rows, SCORE_SCHEMA)


def _feedback(spark: SparkSession, rows: list[tuple[str, str, str, str]]) -> feedback.Feedback:
    raw = spark.createDataFrame(
        rows, "machine_id string, component string, recorded_at string, action string"
    )
    return feedback.validate(raw)


def test_the_list_holds_each_open_alert_at_its_latest_observation_most_urgent_first(
    spark: SparkSession, scores: DataFrame
) -> None:
    planner = _feedback(
        spark,
        [
            ("3", "comp1", "2015-01-01 09:00:00", "inspected"),
            ("4", "comp2", "2015-01-03 08:00:00", "false_alarm"),
            ("4", "COMP1", "2015-01-03 13:00:00", "inspected"),  # after the alert: not yet
            ("4", "comp1", "2014-12-20 00:00:00", "replaced"),  # older than 7 days
        ],
    )
    listed = worklist.worklists(scores, [DAY], planner.valid, 7, 7).collect()
    got = [
        (
            row["rank"],
            row["machine_id"],
            row["component"],
            from_spark(row["datetime"]),
            row["held_observations"],
            round(row["urgency"], 3),
        )
        for row in listed
    ]
    assert sorted(got) == [
        (1, 1, "comp1", hour(60), 3, 2.0),
        (2, 2, "comp2", hour(48), 1, 1.5),
        (3, 4, "comp1", hour(60), 1, 1.1),
    ]
    first = next(row for row in listed if row["rank"] == 1)
    assert first["reason_1"] == "vibration_mean_24h = 52.1 (typical 40.3), +0.214"
    assert first["reason_2"] == "age = 18 (typical 10), +0.050"
    assert first["reason_3"] is None
    assert (first["probability"], first["threshold"]) == (0.8, 0.4)
    assert (first["days_since_replacement"], first["model_version"]) == (12.5, 3)


def test_a_short_acknowledgement_lets_the_alert_back_on_the_list(
    spark: SparkSession, scores: DataFrame
) -> None:
    planner = _feedback(spark, [("3", "comp1", "2015-01-01 09:00:00", "inspected")])
    machines = {
        row["machine_id"]
        for row in worklist.worklists(scores, [DAY], planner.valid, 1, 7).collect()
    }
    assert machines == {1, 2, 3, 4}  # one day of acknowledgement ended on 01-02 09:00


def test_the_held_count_stops_at_the_history_read(spark: SparkSession, scores: DataFrame) -> None:
    # Only the day itself read: machine 1's run is counted from 01-03 00:00.
    today = scores.where(f"date = '{DAY}'")
    listed = worklist.worklists(today, [DAY], feedback.empty(spark), 7, 7).collect()
    assert {row["machine_id"]: row["held_observations"] for row in listed}[1] == 2


def test_a_day_without_alerts_has_an_empty_list(spark: SparkSession, scores: DataFrame) -> None:
    assert worklist.worklists(scores, [date(2015, 1, 1)], feedback.empty(spark), 7, 7).count() == 0
    assert worklist.to_csv([]) == ",".join(worklist.COLUMNS) + "\n"
    assert worklist.markdown([]) == "No open alerts on this day."


def test_the_csv_has_utc_times_and_the_reasons_as_text(
    spark: SparkSession, scores: DataFrame
) -> None:
    rows = worklist.worklists(scores, [DAY], feedback.empty(spark), 7, 7).orderBy("rank").collect()
    lines = worklist.to_csv(rows).splitlines()
    assert lines[0].split(",")[:5] == ["rank", "date", "machine_id", "component", "datetime"]
    # Without feedback machine 3 (0.9 / 0.4 = 2.25) heads the list, then machine 1.
    assert lines[1].startswith("1,2015-01-03,3,comp1,2015-01-03 00:00:00,0.9000,0.4,2.25,1,")
    assert lines[2].startswith("2,2015-01-03,1,comp1,2015-01-03 12:00:00,0.8000,0.4,2,3,")
    assert lines[2].endswith(
        ',"vibration_mean_24h = 52.1 (typical 40.3), +0.214","age = 18 (typical 10), +0.050",'
        ",12.5,pdm,3"
    )
    table = worklist.markdown(rows, limit=2)
    assert "| 2 | 1 | comp1 | 0.800 | 0.400 | 3 |" in table
    assert "2 more in the CSV." in table


def test_feedback_rows_that_cannot_be_read_are_set_aside_with_a_reason(
    spark: SparkSession,
) -> None:
    planner = _feedback(
        spark,
        [
            (" 7 ", "Comp2", "2015-03-01 08:00:00", "False_Alarm"),
            ("seven", "comp2", "2015-03-01 08:00:00", "inspected"),
            ("7", "comp9", "2015-03-01 08:00:00", "inspected"),
            ("7", "comp2", "01/03/2015", "inspected"),
            ("7", "comp2", "2015-03-01 08:00:00", "fixed"),
        ],
    )
    [good] = planner.valid.collect()
    assert (good["machine_id"], good["component"], good["action"]) == (7, "comp2", "false_alarm")
    assert from_spark(good["recorded_at"]).isoformat() == "2015-03-01T08:00:00+00:00"
    reasons = [
        row["reason"]
        for row in planner.rejected.orderBy("machine_id", "component", "recorded_at").collect()
    ]
    assert sorted(reasons) == sorted(
        [
            "machine_id is not an integer",
            "component is not one of comp1, comp2, comp3, comp4",
            "recorded_at is not 'YYYY-MM-DD HH:MM:SS' (UTC)",
            "action is not one of inspected, replaced, false_alarm",
        ]
    )


def test_outcomes_count_false_alarms_as_measured_and_as_recorded(
    spark: SparkSession, scores: DataFrame
) -> None:
    day = scores.where(f"date = '{DAY}'")
    # Machine 1 comp1 alerts at 00:00 (a comp1 failure follows: right) and 12:00 (label 0);
    # machine 2 comp2 at 00:00 (label 0); machine 3 comp1 at 00:00 (right); machine 4 comp1
    # at 12:00 is still censored, so it is not judged.
    labels = spark.createDataFrame(
        [
            (1, hour(48), 1, False),
            (1, hour(60), 0, False),
            (2, hour(48), 0, False),
            (2, hour(60), 0, False),
            (3, hour(48), 1, False),
            (4, hour(60), 0, True),
        ],
        "machine_id int, datetime timestamp, label int, censored boolean",
    )
    planner = _feedback(
        spark,
        [
            ("2", "comp2", "2015-01-03 10:00:00", "false_alarm"),  # after its alert: counted
            ("3", "comp1", "2015-01-02 10:00:00", "false_alarm"),  # before its alert: not
            ("1", "comp1", "2015-02-01 00:00:00", "false_alarm"),  # beyond the horizon: not
        ],
    )
    outcome = monitoring.alert_outcome(day, labels, planner.valid, 168)
    assert outcome.alerts == 4  # rows 1 @ 00:00, 1 @ 12:00, 2 @ 00:00, 3 @ 00:00
    assert outcome.pooled_precision == pytest.approx(2 / 4)
    assert (outcome.alerted_pairs, outcome.false_alarms_measured) == (3, 1)  # machine 2
    assert outcome.false_alarms_recorded == 1
