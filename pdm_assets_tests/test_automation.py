"""The landing sensor and the monthly training schedule, evaluated like the daemon does."""

import json
from datetime import UTC, date, datetime
from pathlib import Path

import dagster as dg
import pytest

from pdm_assets import landing
from pdm_assets.automation import LANDING_SENSOR, TRAIN_SCHEDULE, LandingCursor
from pdm_assets.definitions import build_definitions
from pdm_assets.jobs import LANDED_DAY_JOB, OUTCOMES_JOB
from pdm_assets.simulator import FleetSpec, simulate, write_landing

START = date(2015, 1, 1)


@pytest.fixture(scope="module")
def fleet():  # type: ignore[no-untyped-def]
    return simulate(FleetSpec(machines=3, start=START, days=12, seed=7))


@pytest.fixture
def defs(pdm_home: Path, monkeypatch: pytest.MonkeyPatch) -> dg.Definitions:
    monkeypatch.setenv("PDM_PARTITIONS_END", "2015-02-01")
    return build_definitions()


def _land(fleet, home: Path, *days: int) -> None:  # type: ignore[no-untyped-def]
    write_landing(fleet, home / "landing", [date(2015, 1, day) for day in days])


def _tick(  # type: ignore[no-untyped-def]
    defs: dg.Definitions,
    cursor: str | None = None,
    materialized: dict[str, list[int]] | None = None,
):
    """One sensor tick on an instance where `materialized` {asset: [January days]} exist."""
    sensor = defs.get_sensor_def(LANDING_SENSOR)
    # In memory: evaluating a tick registers the instance's storage in a context variable that
    # outlives the tick, and a temp-folder instance would leave it pointing at a deleted folder.
    with dg.DagsterInstance.ephemeral() as instance:
        for asset, days in (materialized or {}).items():
            for day in days:
                instance.report_runless_asset_event(
                    dg.AssetMaterialization(asset, partition=date(2015, 1, day).isoformat())
                )
        context = dg.build_sensor_context(instance=instance, cursor=cursor, definitions=defs)
        return sensor.evaluate_tick(context)


def _scoring_keys(result) -> list[str]:  # type: ignore[no-untyped-def]
    return [r.run_key for r in result.run_requests if r.job_name == LANDED_DAY_JOB]


def test_nothing_landed_skips_with_a_reason(defs: dg.Definitions) -> None:
    result = _tick(defs)
    assert result.run_requests == []
    assert "no new complete day" in result.skip_message


def test_one_complete_day_requests_one_run_for_that_partition(
    defs: dg.Definitions, fleet, pdm_home: Path
) -> None:
    _land(fleet, pdm_home, 1)
    result = _tick(defs)
    assert [(r.run_key, r.partition_key, r.job_name) for r in result.run_requests] == [
        ("2015-01-01", "2015-01-01", LANDED_DAY_JOB)
    ]
    assert json.loads(result.cursor) == {"watermark": "2015-01-01", "requested": []}


def test_a_partial_day_waits_for_its_marker(defs: dg.Definitions, fleet, pdm_home: Path) -> None:
    _land(fleet, pdm_home, 1, 2)
    Path(landing.complete_marker(pdm_home / "landing", date(2015, 1, 2))).unlink()
    result = _tick(defs)
    assert _scoring_keys(result) == ["2015-01-01"]
    # Once the marker lands, the next tick picks the day up.
    _land(fleet, pdm_home, 2)
    assert _scoring_keys(_tick(defs, result.cursor)) == ["2015-01-02"]


def test_several_days_are_requested_in_date_order_with_their_outcomes(
    defs: dg.Definitions, fleet, pdm_home: Path
) -> None:
    _land(fleet, pdm_home, 9, 3, 1, 2, 8)
    # Days 1 and 2 were scored by earlier runs; days 8 and 9 settle their labels.
    result = _tick(defs, LandingCursor(date(2014, 12, 31)).serialize(), {"machine_scores": [1, 2]})
    assert _scoring_keys(result) == [
        "2015-01-01",
        "2015-01-02",
        "2015-01-03",
        "2015-01-08",
        "2015-01-09",
    ]
    # Day 8 settles the labels of day 1, day 9 those of day 2 (horizon 7 days); no outcomes
    # for day 3 yet, nor for the day 9 - 7 of a day never scored.
    outcomes = [
        (r.run_key, r.partition_key) for r in result.run_requests if r.job_name == OUTCOMES_JOB
    ]
    assert outcomes == [
        ("outcomes:2015-01-01", "2015-01-01"),
        ("outcomes:2015-01-02", "2015-01-02"),
    ]
    # Days 4..7 are missing, so the watermark stops at day 3 and remembers 8 and 9.
    assert json.loads(result.cursor) == {
        "watermark": "2015-01-03",
        "requested": ["2015-01-08", "2015-01-09"],
    }
    _land(fleet, pdm_home, 4, 5, 6, 7)
    later = _tick(defs, result.cursor)
    assert _scoring_keys(later) == ["2015-01-04", "2015-01-05", "2015-01-06", "2015-01-07"]
    assert json.loads(later.cursor) == {"watermark": "2015-01-09", "requested": []}


def test_a_re_dropped_day_never_runs_twice(defs: dg.Definitions, fleet, pdm_home: Path) -> None:
    _land(fleet, pdm_home, 1)
    first = _tick(defs)
    _land(fleet, pdm_home, 1)  # the same day written again
    again = _tick(defs, first.cursor)
    assert again.run_requests == []
    assert again.cursor in (None, first.cursor)


def test_a_corrupt_cursor_restarts_from_the_first_day_with_a_warning(
    defs: dg.Definitions, fleet, pdm_home: Path
) -> None:
    _land(fleet, pdm_home, 1, 2)
    result = _tick(defs, "{not json")
    # Requests carry run keys, so Dagster drops the ones already launched.
    assert _scoring_keys(result) == ["2015-01-01", "2015-01-02"]
    assert json.loads(result.cursor)["watermark"] == "2015-01-02"
    cursor, warning = LandingCursor.parse("{not json", START)
    assert warning is not None and "unreadable cursor" in warning
    assert cursor.watermark == date(2014, 12, 31)


def test_days_outside_the_partitions_are_ignored(defs: dg.Definitions, pdm_home: Path) -> None:
    late = simulate(FleetSpec(machines=2, start=date(2015, 2, 1), days=2, seed=1))
    write_landing(late, pdm_home / "landing")
    result = _tick(defs)
    assert result.run_requests == []
    # Said, not silent: the days are there and PDM_PARTITIONS_END keeps them out.
    assert "2 landed days after the last partition 2015-01-31 (2015-02-01 ..)" in str(
        result.skip_message
    )


def test_monthly_schedule_trains_the_month_that_begins(defs: dg.Definitions) -> None:
    schedule = defs.get_schedule_def(TRAIN_SCHEDULE)
    with dg.DagsterInstance.ephemeral() as instance:
        tick = dg.build_schedule_context(
            instance=instance,
            scheduled_execution_time=datetime(2015, 1, 1, 2, tzinfo=UTC),
            repository_def=defs.get_repository_def(),
        )
        result = schedule.evaluate_tick(tick)
        assert [(r.partition_key, r.run_key) for r in result.run_requests] == [
            ("2015-01-01", "2015-01-01")
        ]
        outside = dg.build_schedule_context(
            instance=instance,
            scheduled_execution_time=datetime(2016, 3, 1, 2, tzinfo=UTC),
            repository_def=defs.get_repository_def(),
        )
        skipped = schedule.evaluate_tick(outside)
        assert (
            skipped.run_requests == [] and "not a failure_model partition" in skipped.skip_message
        )


def test_a_first_tick_skips_days_a_backfill_already_ingested(
    defs: dg.Definitions, fleet, pdm_home: Path
) -> None:
    _land(fleet, pdm_home, 1, 2, 3, 4)
    result = _tick(defs, None, {"raw_telemetry": [1, 2, 3]})
    assert _scoring_keys(result) == ["2015-01-04"]


def test_outcomes_wait_until_the_settled_day_was_scored(
    defs: dg.Definitions, fleet, pdm_home: Path
) -> None:
    _land(fleet, pdm_home, 8)
    result = _tick(defs, LandingCursor(date(2015, 1, 7)).serialize())
    assert [r.job_name for r in result.run_requests] == [LANDED_DAY_JOB]
