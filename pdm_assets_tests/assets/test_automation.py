"""The landing sensor and the monthly training schedule, evaluated like the daemon does.

The sensor plans from the instance's materializations; a test reports them in the order the
story needs (their storage ids grow in that order), so each case is a few lines and no Spark."""

import json
from datetime import UTC, date, datetime
from pathlib import Path

import dagster as dg
import pytest

from pdm_assets.core import landing
from pdm_assets.definitions import build_definitions
from pdm_assets.defs.automation import LANDING_SENSOR, TRAIN_SCHEDULE, LandingCursor, busy_days
from pdm_assets.defs.jobs import LANDED_DAY_JOB, OUTCOMES_JOB
from pdm_assets.simulator.fleet_simulator import FleetSpec, simulate, write_landing

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


RAW = ("raw_telemetry", "raw_errors", "raw_maintenance", "raw_failures")
DAY_JOB_ASSETS = (
    *RAW,
    "machine_features",
    "failure_labels",
    "machine_scores",
    "maintenance_worklist",
)


def _day(day: int) -> str:
    return date(2015, 1, day).isoformat()


def _report(instance: dg.DagsterInstance, events: list[tuple[str, int]]) -> None:
    for asset, day in events:
        instance.report_runless_asset_event(dg.AssetMaterialization(asset, partition=_day(day)))


def _landed_run(*days: int, scored: bool = False) -> list[tuple[str, int]]:
    """What a landed-day run writes, day by day: raw tables, features, labels (and scores)."""
    assets = DAY_JOB_ASSETS if scored else DAY_JOB_ASSETS[:-2]
    return [(asset, day) for day in days for asset in assets]


class Sensor:
    """Ticks of the landing sensor on one in-memory instance, carrying the cursor along.

    In memory: evaluating a tick registers the instance's storage in a context variable that
    outlives the tick, and a temp-folder instance would leave it pointing at a deleted folder."""

    def __init__(self, defs: dg.Definitions) -> None:
        self.defs = defs
        self.instance = dg.DagsterInstance.ephemeral()
        self.cursor: str | None = None

    def tick(self, *events: tuple[str, int]):  # type: ignore[no-untyped-def]
        _report(self.instance, list(events))
        sensor = self.defs.get_sensor_def(LANDING_SENSOR)
        context = dg.build_sensor_context(
            instance=self.instance, cursor=self.cursor, definitions=self.defs
        )
        result = sensor.evaluate_tick(context)
        self.cursor = result.cursor or self.cursor
        return result


def _runs(result) -> list[tuple[str, str, tuple[str, ...]]]:  # type: ignore[no-untyped-def]
    """(job, day or "first..last" of a range run, selected assets) of each request; () selects
    the whole job."""
    return [
        (
            r.job_name,
            r.partition_key
            or "..".join(
                r.tags[f"dagster/asset_partition_range_{end}"] for end in ("start", "end")
            ),
            tuple(key.to_user_string() for key in r.asset_selection or []),
        )
        for r in result.run_requests
    ]


def _land_job(*days: int) -> list[tuple[str, str, tuple[str, ...]]]:
    return [(LANDED_DAY_JOB, _day(day), ()) for day in days]


def test_nothing_landed_skips_with_a_reason(defs: dg.Definitions) -> None:
    result = Sensor(defs).tick()
    assert result.run_requests == []
    assert "no new complete day" in result.skip_message


def test_one_complete_day_requests_one_run_for_that_partition(
    defs: dg.Definitions, fleet, pdm_home: Path
) -> None:
    _land(fleet, pdm_home, 1)
    sensor = Sensor(defs)
    result = sensor.tick()
    assert _runs(result) == _land_job(1)
    assert result.run_requests[0].run_key.startswith("land:2015-01-01:")
    assert list(json.loads(result.cursor)["landed"]) == ["2015-01-01"]
    # The same files on the next tick: nothing new.
    assert sensor.tick(*_landed_run(1)).run_requests == []


def test_a_partial_day_waits_for_its_marker(defs: dg.Definitions, fleet, pdm_home: Path) -> None:
    _land(fleet, pdm_home, 1, 2)
    Path(landing.complete_marker(pdm_home / "landing", date(2015, 1, 2))).unlink()
    sensor = Sensor(defs)
    assert _runs(sensor.tick()) == _land_job(1)
    # Once the marker lands, the next tick picks the day up.
    _land(fleet, pdm_home, 2)
    assert _runs(sensor.tick(*_landed_run(1))) == _land_job(2)


def test_days_landing_out_of_order_are_each_requested_once(
    defs: dg.Definitions, fleet, pdm_home: Path
) -> None:
    _land(fleet, pdm_home, 9, 3, 1, 2)
    sensor = Sensor(defs)
    assert _runs(sensor.tick()) == _land_job(1, 2, 3, 9)
    _land(fleet, pdm_home, 4, 5)
    assert _runs(sensor.tick(*_landed_run(1, 2, 3))) == _land_job(4, 5)


def test_a_day_whose_lookback_had_a_hole_runs_again_once_the_hole_is_filled(
    defs: dg.Definitions, fleet, pdm_home: Path
) -> None:
    """Finding 2: day 8 landed before 4..7; its run wrote the raw tables and failed on its
    lookback. When 4..7 have landed and run, day 8 gets its features, labels and scores."""
    _land(fleet, pdm_home, 1, 2, 3, 8)
    sensor = Sensor(defs)
    assert _runs(sensor.tick()) == _land_job(1, 2, 3, 8)
    raw_of_8 = [(asset, 8) for asset in RAW]
    waiting = sensor.tick(*_landed_run(1, 2, 3), *raw_of_8)
    assert waiting.run_requests == []
    assert "2015-01-08 (lacks 2015-01-04 .. 2015-01-07)" in waiting.skip_message
    _land(fleet, pdm_home, 4, 5, 6, 7)
    assert _runs(sensor.tick()) == _land_job(4, 5, 6, 7)
    after = sensor.tick(*_landed_run(4, 5, 6, 7))
    # (Day 8's failures also complete the horizon of day 1, whose labels run again.)
    assert _runs(after) == [
        (LANDED_DAY_JOB, _day(1), ("failure_labels",)),
        (
            LANDED_DAY_JOB,
            _day(8),
            ("machine_features", "failure_labels", "machine_scores", "maintenance_worklist"),
        ),
    ]


def test_outcomes_wait_for_the_failures_of_the_day_that_settles_them(
    defs: dg.Definitions, fleet, pdm_home: Path
) -> None:
    """Finding 1: the outcomes of day 1 (horizon 7 days) are requested only once day 8's
    failures are written, never in the same tick as day 8's run."""
    _land(fleet, pdm_home, *range(1, 8))
    sensor = Sensor(defs)
    sensor.tick()
    assert sensor.tick(*_landed_run(*range(1, 8), scored=True)).run_requests == []
    _land(fleet, pdm_home, 8)
    assert _runs(sensor.tick()) == _land_job(8)
    # Day 8's run is queued: nothing reading day 8 is asked for meanwhile.
    sensor.instance.add_run(
        dg.DagsterRun(job_name=LANDED_DAY_JOB, tags={"dagster/partition": _day(8)})
    )
    assert busy_days(sensor.instance) == {date(2015, 1, 8)}
    assert sensor.tick().run_requests == []


def test_a_landed_day_whose_features_another_run_wrote_gets_its_scores(
    defs: dg.Definitions, fleet, pdm_home: Path
) -> None:
    """Day 8's own run failed on its lookback; a backfill then wrote its features. Once a model
    covers its month, its scores and work list follow."""
    _land(fleet, pdm_home, 1, 2, 3, 8)
    sensor = Sensor(defs)
    sensor.tick()
    sensor.tick(*_landed_run(1, 2, 3), *[(asset, 8) for asset in RAW])
    _land(fleet, pdm_home, 4, 5, 6, 7)
    sensor.tick()
    backfill = [*_landed_run(4, 5, 6, 7), ("machine_features", 8), ("failure_labels", 8)]
    without_model = sensor.tick(*backfill)
    assert (LANDED_DAY_JOB, _day(8), ("machine_scores", "maintenance_worklist")) not in _runs(
        without_model
    )
    # A model for January: every day the sensor landed gets its scores (none had them), in one
    # range run.
    sensor.instance.report_runless_asset_event(
        dg.AssetMaterialization("failure_model", partition="2015-01-01")
    )
    assert _runs(sensor.tick()) == [
        (LANDED_DAY_JOB, f"{_day(1)}..{_day(8)}", ("machine_scores", "maintenance_worklist"))
    ]


@pytest.mark.parametrize(
    ("scored", "expected"),
    [(True, (OUTCOMES_JOB, ())), (False, (LANDED_DAY_JOB, ("failure_labels",)))],
    ids=["scored: labels and outcomes", "unscored: labels only"],
)
def test_labels_and_outcomes_follow_once_the_horizon_has_landed(
    defs: dg.Definitions, fleet, pdm_home: Path, scored: bool, expected: tuple
) -> None:
    _land(fleet, pdm_home, *range(1, 9))
    sensor = Sensor(defs)
    sensor.tick()
    result = sensor.tick(*_landed_run(*range(1, 9), scored=scored))
    # Day 8's failures complete day 1's horizon (1 .. 8): labels again (then outcomes if it was
    # scored); days 2 .. 8 still wait for theirs.
    job, assets = expected
    assert _runs(result) == [(job, _day(1), assets)]
    kind = "outcomes" if scored else "labels"
    assert result.run_requests[0].run_key.startswith(f"{kind}:2015-01-01:")
    # Once they ran, nothing more.
    done = [("failure_labels", 1), *([("model_outcomes", 1)] if scored else [])]
    assert sensor.tick(*done).run_requests == []


def test_a_re_landed_day_is_ingested_again_and_what_reads_it_follows(
    defs: dg.Definitions, fleet, pdm_home: Path
) -> None:
    """Finding 3: day 5 landed again with other files runs again; then the features of 6 and 7
    (their lookback of 2 days reads it), and the labels and outcomes of the days whose horizon
    holds it and has landed (1 .. 4 here; 5 .. 10 still wait for theirs)."""
    days = range(1, 12)
    _land(fleet, pdm_home, *days)
    sensor = Sensor(defs)
    sensor.tick()
    settled = [
        (asset, day) for day in range(1, 5) for asset in ("failure_labels", "model_outcomes")
    ]
    sensor.tick(*_landed_run(*days, scored=True))
    assert sensor.tick(*settled).run_requests == []
    _land(fleet, pdm_home, 5)
    assert _runs(sensor.tick()) == _land_job(5)
    # The same files again on the next tick: not asked twice.
    assert sensor.tick().run_requests == []
    result = sensor.tick(*_landed_run(5, scored=True))
    features_again = (
        "machine_features",
        "failure_labels",
        "machine_scores",
        "maintenance_worklist",
    )
    # Consecutive days asking for the same are one range run each.
    assert _runs(result) == [
        (OUTCOMES_JOB, f"{_day(1)}..{_day(4)}", ()),
        (LANDED_DAY_JOB, f"{_day(6)}..{_day(7)}", features_again),
    ]
    assert {r.run_key.split(":")[0] for r in result.run_requests} == {"refresh", "outcomes"}


def test_a_repeated_tick_asks_nothing_twice_and_a_failed_key_is_named_stuck(
    defs: dg.Definitions, fleet, pdm_home: Path
) -> None:
    _land(fleet, pdm_home, 1, 2, 3, 8)
    sensor = Sensor(defs)
    sensor.tick(*_landed_run(1, 2, 3))
    _land(fleet, pdm_home, 4, 5, 6, 7)
    sensor.tick(*[(asset, 8) for asset in RAW])
    requests = sensor.tick(*_landed_run(4, 5, 6, 7)).run_requests
    request = next(r for r in requests if r.partition_key == _day(8))
    # The refresh of day 8 ran and failed for good (its retries too).
    sensor.instance.add_run(
        dg.DagsterRun(
            job_name=LANDED_DAY_JOB,
            status=dg.DagsterRunStatus.FAILURE,
            tags={
                "dagster/partition": _day(8),
                "dagster/run_key": request.run_key,
                "dagster/sensor_name": LANDING_SENSOR,
                "dagster/will_retry": "false",
            },
        )
    )
    # Day 1's labels ran (the other request of that tick); day 8's key is used and failed.
    again = sensor.tick(("failure_labels", 1))
    assert again.run_requests == []
    assert "stuck: 2015-01-08 (refresh: its lookback is complete now) failed in 1 run(s)" in (
        again.skip_message
    )


def test_a_day_whose_files_were_refused_is_named_until_it_lands_again(
    defs: dg.Definitions, fleet, pdm_home: Path
) -> None:
    """A file cut short (its marker says more rows): the day's run fails at its raw tables,
    its retries too; the sensor names it, and runs it when the day lands whole."""
    _land(fleet, pdm_home, 1, 2)
    sensor = Sensor(defs)
    sensor.tick()
    stuck = sensor.tick(*_landed_run(1))
    assert stuck.run_requests == []
    assert "stuck: 2015-01-02 landed, but their runs wrote no raw tables" in stuck.skip_message
    _land(fleet, pdm_home, 2)
    assert _runs(sensor.tick()) == _land_job(2)


def test_a_corrupt_cursor_restarts_with_a_warning(
    defs: dg.Definitions, fleet, pdm_home: Path
) -> None:
    _land(fleet, pdm_home, 1, 2)
    sensor = Sensor(defs)
    sensor.cursor = "{not json"
    result = sensor.tick()
    # Requests carry run keys, so Dagster drops the ones already launched.
    assert _runs(result) == _land_job(1, 2)
    cursor, warning = LandingCursor.parse("{not json", START)
    assert warning is not None and "unreadable cursor" in warning
    assert cursor.landed == {}


def test_the_cursor_of_earlier_versions_keeps_its_days_as_landed(
    defs: dg.Definitions, fleet, pdm_home: Path
) -> None:
    _land(fleet, pdm_home, 1, 2, 3, 5)
    sensor = Sensor(defs)
    sensor.cursor = json.dumps({"watermark": "2015-01-02", "requested": ["2015-01-05"]})
    result = sensor.tick(*_landed_run(1, 2, 5))
    assert _runs(result) == _land_job(3)
    assert sorted(json.loads(result.cursor)["landed"]) == [_day(d) for d in (1, 2, 3, 5)]


def test_days_outside_the_partitions_are_ignored(defs: dg.Definitions, pdm_home: Path) -> None:
    late = simulate(FleetSpec(machines=2, start=date(2015, 2, 1), days=2, seed=1))
    write_landing(late, pdm_home / "landing")
    result = Sensor(defs).tick()
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
    sensor = Sensor(defs)
    result = sensor.tick(*_landed_run(1, 2, 3))
    assert _runs(result) == _land_job(4)
    cursor = json.loads(result.cursor)
    assert sorted(cursor["adopted"]) == [_day(1), _day(2), _day(3)]
    # A backfilled day landed again is the sensor's from then on.
    _land(fleet, pdm_home, 2)
    assert _runs(sensor.tick(*_landed_run(4))) == _land_job(2)
