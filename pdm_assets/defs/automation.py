"""Sensor-triggered daily operation and the monthly training schedule.

A landed day is complete when its folder has the file of every table of the fleet description
and the `_COMPLETE` marker, which the writer puts down last (landing.py). The folder may be an
object-store URI: it is listed through the same file-system layer the landing source reads.

Each tick the landing sensor plans (daily_plan.py) from three things: the complete days and their
fingerprints (a day landed again with corrected files has a new one), the storage ids of the
daily assets' latest materializations in the instance, and the days that queued or running runs
touch. It asks for a landed day's whole run, then for whatever reads a partition written since:
the features of the days whose lookback holds a corrected day or whose lookback had a hole, the
labels and outcomes of a day once its horizon has landed. The order of runs does not matter:
a partition runs again until it is newer than every input it reads, and nothing runs while a run
is busy with a day it reads.

Run keys name the day and the state a run answers (the fingerprint, or the newest input storage
id), so a repeated tick never asks twice, and a new state asks again. A run that failed is
retried by the instance's run retries (instance_config.py); one whose run key has failed for
good is named in the tick's log as stuck, with what it waits for.

The cursor is JSON, {"landed": {day: fingerprint}, "adopted": {day: fingerprint}}: the days the
sensor requested with the files it saw, and the days it found already ingested on its first tick
(a bulk backfill), which it leaves alone until they land again. It is kept by Dagster's instance
storage, so it survives restarts of the daemon. Models are never retrained here.
"""

import json
import time
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import dagster as dg
from dagster._core.storage.tags import RUN_KEY_TAG, SENSOR_NAME_TAG, WILL_RETRY_TAG

if TYPE_CHECKING:
    from dagster._core.definitions.unresolved_asset_job_definition import (
        UnresolvedAssetJobDefinition,
    )

from pdm_assets.core import daily_plan, landing
from pdm_assets.core.daily_plan import DailyPlan, DayRun, Reach
from pdm_assets.core.fleet import Fleet
from pdm_assets.core.timewindow import day_ranges
from pdm_assets.defs.jobs import LANDED_DAY_JOB, OUTCOMES_JOB, TRAIN_JOB

TRAIN_SCHEDULE = "monthly_training_schedule"
LANDING_SENSOR = "landing_sensor"

_ONE_DAY = timedelta(days=1)
_PARTITION_TAG = "dagster/partition"
_RANGE_START_TAG = "dagster/asset_partition_range_start"
_RANGE_END_TAG = "dagster/asset_partition_range_end"
_UNFINISHED = (
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
    dg.DagsterRunStatus.CANCELING,
)
_ORPHAN_SECONDS = 600
# Requests per tick: a backlog (a month landed at once) is worked through over a few ticks.
MAX_REQUESTS_PER_TICK = 40


@dataclass
class LandingCursor:
    landed: dict[date, str] = field(default_factory=dict)
    adopted: dict[date, str] = field(default_factory=dict)

    @classmethod
    def parse(cls, raw: str | None, first_day: date) -> tuple["LandingCursor", str | None]:
        """The cursor, and a warning when the stored one was unreadable and had to be reset."""
        if not raw:
            return cls(), None
        try:
            data = json.loads(raw)
            if "watermark" in data:
                return cls._from_watermark(data, first_day), None
            return (
                cls(
                    landed=_days(data.get("landed", {})),
                    adopted=_days(data.get("adopted", {})),
                ),
                None,
            )
        except (ValueError, KeyError, TypeError, AttributeError) as error:
            return cls(), (
                f"unreadable cursor {raw!r} ({error}); starting again: days already ingested "
                "are taken as they are, run keys keep already-launched runs from running again"
            )

    @classmethod
    def _from_watermark(cls, data: dict[str, object], first_day: date) -> "LandingCursor":
        # The cursor of earlier versions: every day from the first to the watermark, and those
        # listed after it, were requested; "" takes the files they have now as seen.
        watermark = date.fromisoformat(str(data["watermark"]))
        listed = data.get("requested", [])
        days = {date.fromisoformat(str(day)): "" for day in listed}  # type: ignore[attr-defined]
        day = first_day
        while day <= watermark:
            days[day] = ""
            day += _ONE_DAY
        return cls(landed=days)

    @property
    def seen(self) -> dict[date, str]:
        return {**self.adopted, **self.landed}

    def serialize(self) -> str:
        return json.dumps(
            {
                "landed": {day.isoformat(): fp for day, fp in sorted(self.landed.items())},
                "adopted": {day.isoformat(): fp for day, fp in sorted(self.adopted.items())},
            }
        )


def _days(mapping: dict[str, str]) -> dict[date, str]:
    return {date.fromisoformat(day): str(fingerprint) for day, fingerprint in mapping.items()}


def written_partitions(instance: dg.DagsterInstance) -> dict[str, dict[date, int]]:
    """Storage id of the latest materialization of each day of the assets the plan follows."""
    written: dict[str, dict[date, int]] = {}
    for asset in daily_plan.TRACKED_ASSETS:
        latest = instance.get_latest_storage_id_by_partition(
            dg.AssetKey(asset), dg.DagsterEventType.ASSET_MATERIALIZATION
        )
        written[asset] = {date.fromisoformat(key): sid for key, sid in latest.items()}
    return written


def first_model_month(instance: dg.DagsterInstance) -> date | None:
    """The first month a failure_model partition was materialised for (None: none yet)."""
    months = instance.get_materialized_partitions(dg.AssetKey("failure_model"))
    return min((date.fromisoformat(month) for month in months), default=None)


def busy_days(instance: dg.DagsterInstance) -> set[date]:
    """Days that a queued or running run of a daily job touches (a backfill's whole range)."""
    busy: set[date] = set()
    now = time.time()
    for record in instance.get_run_records(filters=dg.RunsFilter(statuses=list(_UNFINISHED))):
        run = record.dagster_run
        if run.job_name == TRAIN_JOB:
            continue
        if (
            run.status == dg.DagsterRunStatus.NOT_STARTED
            and now - record.create_timestamp.timestamp() > _ORPHAN_SECONDS
        ):
            # Created and never submitted (the process that made it died): not busy.
            continue
        tags = run.tags
        first = tags.get(_RANGE_START_TAG) or tags.get(_PARTITION_TAG)
        last = tags.get(_RANGE_END_TAG) or tags.get(_PARTITION_TAG)
        if not first or not last:
            continue
        try:
            day, end = date.fromisoformat(first), date.fromisoformat(last)
        except ValueError:
            continue
        while day <= end:
            busy.add(day)
            day += _ONE_DAY
    return busy


def already_requested(
    instance: dg.DagsterInstance, runs: list[DayRun]
) -> tuple[set[str], list[str]]:
    """The planned runs whose run key a run already used (Dagster would drop their requests),
    and, among them, those that failed for good (after their retries), in words: without this
    they would wait silently."""
    keys = [run.run_key for run in runs]
    if not keys:
        return set(), []
    previous = instance.get_runs(
        filters=dg.RunsFilter(tags={SENSOR_NAME_TAG: LANDING_SENSOR, RUN_KEY_TAG: keys})
    )
    by_key: dict[str, list[dg.DagsterRun]] = {}
    for attempt in previous:
        by_key.setdefault(attempt.tags[RUN_KEY_TAG], []).append(attempt)
    stuck = []
    for run in runs:
        attempts = by_key.get(run.run_key, [])
        if attempts and all(
            attempt.status == dg.DagsterRunStatus.FAILURE
            and attempt.tags.get(WILL_RETRY_TAG) != "true"
            for attempt in attempts
        ):
            stuck.append(
                f"{run.label} ({run.kind}: {run.reason}) failed in {len(attempts)} run(s), last "
                f"{attempts[0].run_id}; it runs again when what it reads changes, or re-execute "
                "that run"
            )
    return set(by_key), stuck


def run_request(run: DayRun) -> dg.RunRequest:
    """The job of a planned run: the landed-day job (whole, or the assets the plan names), or
    the outcomes job (labels, then model_outcomes); a range of days as one range run."""
    tags = {"pdm/reason": run.reason}
    partition: dict[str, object] = {"partition_key": run.day.isoformat()}
    if run.last is not None:
        tags.update({_RANGE_START_TAG: run.day.isoformat(), _RANGE_END_TAG: run.last.isoformat()})
        partition = {}
    if run.kind == daily_plan.OUTCOMES_KIND:
        return dg.RunRequest(
            run_key=run.run_key,
            job_name=OUTCOMES_JOB,
            tags=tags,
            **partition,  # type: ignore[arg-type]
        )
    selection = [dg.AssetKey(asset) for asset in run.assets] or None
    return dg.RunRequest(
        run_key=run.run_key,
        job_name=LANDED_DAY_JOB,
        asset_selection=selection,
        tags=tags,
        **partition,  # type: ignore[arg-type]
    )


def describe_plan(plan: DailyPlan, stuck: list[str]) -> str:
    """What a tick found that it did not request, for its log and skip message."""
    lines = []
    if plan.incomplete:
        waits = [
            f"{day} (lacks {day_ranges(holes)})" for day, holes in sorted(plan.incomplete.items())
        ]
        lines.append("waiting for days they read: " + "; ".join(waits[:10]))
    if plan.waiting:
        lines.append(
            "waiting for runs in progress: " + ", ".join(str(day) for day in plan.waiting[:10])
        )
    if plan.failed_landings:
        days = ", ".join(str(day) for day in plan.failed_landings[:10])
        stuck = [
            f"{days} landed, but their runs wrote no raw tables (a file refused: see those runs); "
            "land them again",
            *stuck,
        ]
    if stuck:
        lines.append("stuck: " + "; ".join(stuck[:10]))
    return ". ".join(lines)


def build_landing_sensor(
    landing_dir: Path | str,
    daily: dg.DailyPartitionsDefinition,
    fleet: Fleet,
    jobs: list["UnresolvedAssetJobDefinition"],
    minimum_interval_seconds: int = 5,
) -> dg.SensorDefinition:
    first_day = daily.start.date()
    files = ", ".join(fleet.event_tables)
    lookback = max(fleet.telemetry_lookback_days, fleet.errors_lookback_days)

    @dg.sensor(
        name=LANDING_SENSOR,
        jobs=jobs,
        minimum_interval_seconds=minimum_interval_seconds,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description=(
            f"Watches {landing_dir} for complete days ({files} files plus _COMPLETE) and "
            "requests raw -> features -> labels -> scores -> work list for each day that lands, "
            "again when it lands with other files; then the features whose lookback it completes "
            f"or changes, and the labels and outcomes of each day once its {fleet.horizon_days}"
            "-day horizon has landed."
        ),
    )
    def landing_sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult | dg.SkipReason:
        last_key = daily.get_last_partition_key()
        if last_key is None:
            return dg.SkipReason("no daily partition exists yet")
        last_day = date.fromisoformat(last_key)
        cursor, warning = LandingCursor.parse(context.cursor, first_day)
        if warning:
            context.log.warning(warning)
        complete = landing.landed_days(landing_dir, fleet.event_tables)
        landed = {day: fp for day, fp in complete.items() if first_day <= day <= last_day}
        written = written_partitions(context.instance)
        _update_cursor(cursor, landed, written, first_tick=context.cursor is None or bool(warning))
        plan = daily_plan.plan_days(
            landed=landed,
            seen=cursor.seen,
            owned=set(cursor.landed),
            written=written,
            busy=busy_days(context.instance),
            reach=Reach(lookback, fleet.horizon_days, first_day, last_day),
            first_model_month=first_model_month(context.instance),
        )
        used, stuck = already_requested(context.instance, plan.runs)
        runs = [run for run in plan.runs if run.run_key not in used][:MAX_REQUESTS_PER_TICK]
        for run in runs:
            if run.kind == daily_plan.LAND:
                cursor.landed[run.day] = run.trigger
                cursor.adopted.pop(run.day, None)
        note = describe_plan(plan, stuck)
        if note:
            context.log.warning(note) if stuck else context.log.info(note)
        if runs:
            for run in runs:
                context.log.info(f"{run.label}: {run.reason} -> {', '.join(run.assets) or 'all'}")
            return dg.SensorResult(
                run_requests=[run_request(run) for run in runs], cursor=cursor.serialize()
            )
        beyond = [day for day in complete if day > last_day]
        reason = _skip_reason(landing_dir, note, warning, last_day, beyond)
        return dg.SensorResult(skip_reason=reason, cursor=cursor.serialize())

    return landing_sensor


def _update_cursor(
    cursor: LandingCursor,
    landed: dict[date, str],
    written: dict[str, dict[date, int]],
    first_tick: bool,
) -> None:
    if first_tick:
        # First tick (or lost cursor): days a bulk backfill already ingested are not news.
        ingested = written.get("raw_telemetry", {})
        cursor.adopted.update(
            {day: fp for day, fp in landed.items() if day in ingested and day not in cursor.seen}
        )
    # Days of the old cursor format take the files they have now as seen.
    for day, fp in cursor.landed.items():
        if fp == "" and day in landed:
            cursor.landed[day] = landed[day]


def _skip_reason(
    landing_dir: Path | str, note: str, warning: str | None, last_day: date, beyond: list[date]
) -> str:
    """Why a tick requests nothing: the plan's note, or days landed past the last partition."""
    reason = note or f"no new complete day in {landing_dir}"
    if beyond and not note:
        reason = (
            f"no new complete day in {landing_dir}; {len(beyond)} landed days after the "
            f"last partition {last_day} ({beyond[0]} ..) are not ingested: extend "
            "PDM_PARTITIONS_END"
        )
    if warning:
        reason = f"{warning}. {reason}"
    return reason


def build_training_schedule(
    monthly: dg.MonthlyPartitionsDefinition, train_job: str
) -> dg.ScheduleDefinition:
    """On the 1st of each month at 02:00 UTC, train the model of the month that just began: its
    cutoff is that day, so it learns from every labelled day before it."""

    @dg.schedule(
        name=TRAIN_SCHEDULE,
        cron_schedule="0 2 1 * *",
        execution_timezone="UTC",
        job_name=train_job,
        default_status=dg.DefaultScheduleStatus.STOPPED,
        description="Trains failure_model for the month that starts on the tick's day.",
    )
    def monthly_training_schedule(
        context: dg.ScheduleEvaluationContext,
    ) -> dg.RunRequest | dg.SkipReason:
        month = context.scheduled_execution_time.date().replace(day=1).isoformat()
        if not monthly.has_partition_key(month):
            return dg.SkipReason(f"{month} is not a failure_model partition (see PDM_PARTITIONS_*)")
        return dg.RunRequest(run_key=month, partition_key=month)

    return monthly_training_schedule
