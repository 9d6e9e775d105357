"""Sensor-triggered daily scoring and the monthly training schedule.

A landed day is complete when its folder has the file of every table of the fleet description
and the `_COMPLETE` marker, which the writer puts down last (landing.py). The folder may be an
object-store URI: it is listed through the same file-system layer the landing source reads.
The sensor requests one run per complete day, in date order, with run_key = the day: Dagster
never launches two runs with the same run key for a sensor, so a re-dropped day or a repeated
tick cannot run a day twice.

The cursor is JSON, {"watermark": day, "requested": [days after it]}: every day up to the
watermark has been requested; days after it that were requested out of order (a later day
completed before an earlier one) are listed until the gap closes. It is kept by Dagster's
instance storage, so it survives restarts of the daemon. Without a cursor (first start, or an
unreadable one) the watermark starts after the days whose raw_telemetry is already
materialised, so a bulk backfill is not ingested a second time.

When day D lands, the failures of D complete the labels of D - H: if D - H was scored, the
sensor also requests its outcomes (labels again, then model_outcomes). A day D - H scored after
D landed is left to a backfill of model_outcomes from the UI.
"""

import json
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import dagster as dg

if TYPE_CHECKING:
    from dagster._core.definitions.unresolved_asset_job_definition import (
        UnresolvedAssetJobDefinition,
    )

from pdm_assets import landing
from pdm_assets.fleet import Fleet
from pdm_assets.jobs import LANDED_DAY_JOB, OUTCOMES_JOB

TRAIN_SCHEDULE = "monthly_training_schedule"
LANDING_SENSOR = "landing_sensor"

_ONE_DAY = timedelta(days=1)


@dataclass
class LandingCursor:
    watermark: date
    requested: set[date] = field(default_factory=set)

    @classmethod
    def parse(cls, raw: str | None, first_day: date) -> tuple["LandingCursor", str | None]:
        """The cursor, and a warning when the stored one was unreadable and had to be reset."""
        fresh = cls(watermark=first_day - _ONE_DAY)
        if not raw:
            return fresh, None
        try:
            data = json.loads(raw)
            cursor = cls(
                watermark=date.fromisoformat(data["watermark"]),
                requested={date.fromisoformat(day) for day in data.get("requested", [])},
            )
        except (ValueError, KeyError, TypeError) as error:
            return fresh, (
                f"unreadable cursor {raw!r} ({error}); starting from {first_day}, run keys keep "
                "already-launched days from running again"
            )
        return cursor, None

    def is_new(self, day: date) -> bool:
        return day > self.watermark and day not in self.requested

    def add(self, day: date) -> None:
        self.requested.add(day)
        while self.watermark + _ONE_DAY in self.requested:
            self.watermark += _ONE_DAY
            self.requested.discard(self.watermark)

    def serialize(self) -> str:
        return json.dumps(
            {
                "watermark": self.watermark.isoformat(),
                "requested": sorted(day.isoformat() for day in self.requested),
            }
        )


def new_complete_days(
    complete: list[date], cursor: LandingCursor, first_day: date, last_day: date
) -> list[date]:
    """Complete landed days inside the partitions that the cursor has not requested, in order."""
    return [day for day in complete if first_day <= day <= last_day and cursor.is_new(day)]


def ingested_through(instance: dg.DagsterInstance, first_day: date) -> date:
    """The last day of the unbroken run of raw_telemetry partitions from the first day."""
    ingested = instance.get_materialized_partitions(dg.AssetKey("raw_telemetry"))
    day = first_day
    while day.isoformat() in ingested:
        day += _ONE_DAY
    return day - _ONE_DAY


def build_landing_sensor(
    landing_dir: Path | str,
    daily: dg.DailyPartitionsDefinition,
    fleet: Fleet,
    jobs: list["UnresolvedAssetJobDefinition"],
    minimum_interval_seconds: int = 5,
) -> dg.SensorDefinition:
    first_day = daily.start.date()
    horizon_days = fleet.horizon_days
    files = ", ".join(fleet.event_tables)

    @dg.sensor(
        name=LANDING_SENSOR,
        jobs=jobs,
        minimum_interval_seconds=minimum_interval_seconds,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description=(
            f"Watches {landing_dir} for complete days ({files} files plus _COMPLETE) and "
            "requests raw -> features -> labels -> scores for each, once (run_key = the day), "
            f"and the outcomes of the day {horizon_days} days earlier, whose labels it completes."
        ),
    )
    def landing_sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult | dg.SkipReason:
        last_key = daily.get_last_partition_key()
        if last_key is None:
            return dg.SkipReason("no daily partition exists yet")
        cursor, warning = LandingCursor.parse(context.cursor, first_day)
        if warning:
            context.log.warning(warning)
        if context.cursor is None or warning:
            # First tick (or lost cursor): days a bulk backfill already ingested are not news.
            cursor.watermark = max(cursor.watermark, ingested_through(context.instance, first_day))
        scored = context.instance.get_materialized_partitions(dg.AssetKey("machine_scores"))
        last_day = date.fromisoformat(last_key)
        complete = landing.complete_days(landing_dir, fleet.event_tables)
        days = new_complete_days(complete, cursor, first_day, last_day)
        if not days:
            if warning:
                return dg.SensorResult(skip_reason=warning, cursor=cursor.serialize())
            beyond = [day for day in complete if day > last_day]
            if beyond:
                return dg.SkipReason(
                    f"no new complete day in {landing_dir}; {len(beyond)} landed days after the "
                    f"last partition {last_day} ({beyond[0]} ..) are not ingested: extend "
                    "PDM_PARTITIONS_END"
                )
            return dg.SkipReason(f"no new complete day in {landing_dir}")
        requests = []
        for day in days:
            cursor.add(day)
            requests.append(
                dg.RunRequest(
                    run_key=day.isoformat(), partition_key=day.isoformat(), job_name=LANDED_DAY_JOB
                )
            )
            settled = day - timedelta(days=horizon_days)
            if settled.isoformat() in scored:
                # The failures of `day` complete the labels of the day a horizon earlier.
                requests.append(
                    dg.RunRequest(
                        run_key=f"outcomes:{settled.isoformat()}",
                        partition_key=settled.isoformat(),
                        job_name=OUTCOMES_JOB,
                    )
                )
        return dg.SensorResult(run_requests=requests, cursor=cursor.serialize())

    return landing_sensor


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
