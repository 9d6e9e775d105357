"""The checks and pages the asset bodies call, on tiny frames and hand-made summaries."""

from __future__ import annotations

from datetime import date

import dagster as dg
import pytest
from pyspark.sql import SparkSession

from pdm_assets.core.scoring import ScoreSummary
from pdm_assets.core.timewindow import Window
from pdm_assets.defs.raw.checks import event_checks, machines_reporting_check
from pdm_assets.defs.scoring.checks import score_results, scores_page, skipped_results
from pdm_assets.defs.scoring.months import MonthsScored, skip_reason, unscored_note
from pdm_assets.defs.thresholds import CheckThresholds
from pdm_assets_tests.support.frames import hour

pytestmark = pytest.mark.any_zone

TYPES = {"machine_id": "int", "datetime": "timestamp", "error_id": "int"}
ERRORS = "machine_id int, datetime timestamp, error_id int"


def _by_name(results: list[dg.AssetCheckResult]) -> dict[str, dg.AssetCheckResult]:
    return {str(result.check_name): result for result in results}


def test_event_checks_judge_schema_keys_and_the_quarantined_share(spark: SparkSession) -> None:
    # Machine 1 logs error 1 twice at hour 6: one key (machine_id, datetime, error_id) twice.
    valid = spark.createDataFrame([(1, hour(6), 1), (1, hour(6), 1), (2, hour(6), 3)], ERRORS)
    # 99 kept, 1 quarantined: a share of exactly 1%, at the default threshold.
    results = _by_name(
        event_checks("raw_errors", "errors", valid, 99, {"bad": 1}, TYPES, CheckThresholds())
    )
    assert results["schema"].passed
    assert not results["no_duplicate_keys"].passed
    assert results["no_duplicate_keys"].metadata["duplicate_keys"].value == 1
    assert results["quarantine_share"].passed
    assert results["quarantine_share"].metadata["quarantined_share"].value == pytest.approx(0.01)
    assert results["quarantine_share"].severity == dg.AssetCheckSeverity.WARN
    stricter = CheckThresholds(max_quarantine_share=0.005)
    judged = _by_name(event_checks("raw_errors", "errors", valid, 99, {"bad": 1}, TYPES, stricter))
    assert not judged["quarantine_share"].passed
    assert judged["quarantine_share"].metadata["threshold"].value == 0.005


def test_a_column_of_another_type_fails_the_schema_check(spark: SparkSession) -> None:
    valid = spark.createDataFrame(
        [(1, hour(6), "1")], "machine_id int, datetime timestamp, error_id string"
    )
    results = _by_name(event_checks("raw_errors", "errors", valid, 1, {}, TYPES, CheckThresholds()))
    assert not results["schema"].passed
    assert results["no_duplicate_keys"].passed
    assert results["quarantine_share"].metadata["quarantined_share"].value == 0.0


def test_machines_silent_on_a_day_are_counted_with_examples(spark: SparkSession) -> None:
    machines = spark.createDataFrame([(1,), (2,)], "machine_id int")
    telemetry = spark.createDataFrame(
        [(1, date(2015, 1, 1)), (1, date(2015, 1, 2)), (2, date(2015, 1, 1))],
        "machine_id int, date date",
    )
    window = Window.of_days(date(2015, 1, 1), date(2015, 1, 3))
    result = machines_reporting_check(machines, telemetry, window)
    assert not result.passed
    assert result.metadata["silent_machine_days"].value == 1
    assert result.metadata["examples"].value == "2@2015-01-02"


SUMMARY = ScoreSummary(
    rows=10,
    machines=2,
    alerts=3,
    alerts_by_component={"comp1": 3},
    invalid_rows=0,
    inconsistent_alerts=0,
    unscored_rows=0,
    alerts_without_reasons=1,
    failure_probabilities=[0.1, 0.9],
)


def _scored(spark: SparkSession, explainers: dict[str, object]) -> MonthsScored:
    return MonthsScored(
        scores=spark.createDataFrame([(1,)], "machine_id int"),
        policies={},
        explainers=explainers,  # type: ignore[arg-type]
        earlier={"2015-03-01": "v1 (cutoff 2015-02-01)"},
    )


def test_an_alert_without_reasons_fails_unless_its_learner_has_none(spark: SparkSession) -> None:
    exact = _by_name(score_results(SUMMARY, _scored(spark, {"1": object()}), "none", False))
    assert exact["probabilities_valid"].passed
    assert exact["every_active_machine_scored"].passed
    assert not exact["every_alert_explained"].passed
    assert exact["every_alert_explained"].severity == dg.AssetCheckSeverity.ERROR
    boosted = _by_name(score_results(SUMMARY, _scored(spark, {"2": None}), "none", False))
    assert boosted["every_alert_explained"].severity == dg.AssetCheckSeverity.WARN
    assert boosted["every_alert_explained"].metadata["versions_without_exact_reasons"].value == (
        "v2"
    )


def test_unscored_rows_warn_only_where_a_month_has_no_model(spark: SparkSession) -> None:
    gap = ScoreSummary(**{**SUMMARY.__dict__, "unscored_rows": 4})
    known = _by_name(score_results(gap, _scored(spark, {}), "2015-03-01: ...", True))
    assert not known["every_active_machine_scored"].passed
    assert known["every_active_machine_scored"].severity == dg.AssetCheckSeverity.WARN
    fault = _by_name(score_results(gap, _scored(spark, {}), "none", False))
    assert fault["every_active_machine_scored"].severity == dg.AssetCheckSeverity.ERROR


def test_a_skipped_range_reports_every_check_and_says_what_to_do() -> None:
    window = Window.of_days(date(2015, 3, 1), date(2015, 3, 3))
    reason = skip_reason(["2015-03-01"], "m", window)
    assert reason == (
        "skipped: no registered m version for cutoff 2015-03-01 (or earlier) that passed its "
        "quality gate; materialise failure_model partition 2015-03-01, then score "
        "2015-03-01..2015-03-02 again"
    )
    results = _by_name(skipped_results(reason))
    assert set(results) == {
        "probabilities_valid",
        "every_active_machine_scored",
        "every_alert_explained",
    }
    assert not results["every_active_machine_scored"].passed
    assert results["every_active_machine_scored"].metadata["skip_reason"].value == reason
    assert unscored_note([], "m") == "none"
    assert unscored_note(["2015-03-01"], "m").startswith("2015-03-01: no m version")


def test_the_scores_page_counts_from_the_summary(spark: SparkSession) -> None:
    window = Window.of_days(date(2015, 3, 1), date(2015, 3, 2))
    page = scores_page(window, SUMMARY, _scored(spark, {}), {"2015-03-01": 1}, "none")
    assert page["alert_rate"] == 0.3
    assert page["rows"] == 10
    assert page["time_range"] == "2015-03-01T00:00:00+00:00 .. 2015-03-02T00:00:00+00:00"
    assert page["scored_with_an_earlier_months_model"].value == {
        "2015-03-01": "v1 (cutoff 2015-02-01)"
    }
