"""The partitions of the graph, and the time-window mappings between them, in one place."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

import dagster as dg

from pdm_assets.core.fleet import Fleet
from pdm_assets.core.timewindow import Window
from pdm_assets.settings import Settings

# Replacement history reaches back to the first partition: a mapping this wide is clipped at the
# partitions start, so it reads "every partition up to and including this one". Offsets count
# downstream partitions: days for a daily asset, months for the monthly model.
WHOLE_HISTORY_DAYS = 36_500
WHOLE_HISTORY_MONTHS = 1_200


@dataclass(frozen=True)
class GraphPartitions:
    """The partitions and the mappings between them, which follow the fleet description: the
    lookback of features is ceil(largest window / 24 h) days, the labels' lookahead
    ceil(horizon / 24 h) days."""

    daily: dg.DailyPartitionsDefinition
    monthly: dg.MonthlyPartitionsDefinition
    fleet: Fleet

    @property
    def horizon_days(self) -> int:
        return self.fleet.horizon_days

    @property
    def telemetry_lookback(self) -> dg.TimeWindowPartitionMapping:
        """The longest window (36 h by default) before a day's first observation (00:00) reaches
        back ceil(36 / 24) = 2 days."""
        return dg.TimeWindowPartitionMapping(start_offset=-self.fleet.telemetry_lookback_days)

    @property
    def errors_lookback(self) -> dg.TimeWindowPartitionMapping:
        return dg.TimeWindowPartitionMapping(start_offset=-self.fleet.errors_lookback_days)

    @property
    def whole_history(self) -> dg.TimeWindowPartitionMapping:
        return dg.TimeWindowPartitionMapping(start_offset=-WHOLE_HISTORY_DAYS)

    @property
    def failures_ahead(self) -> dg.TimeWindowPartitionMapping:
        """Labels of day D look at failures in (t, t + H], i.e. partitions D .. D + H."""
        return dg.TimeWindowPartitionMapping(
            start_offset=0,
            end_offset=self.horizon_days,
            allow_nonexistent_upstream_partitions=True,
        )

    @property
    def training_history(self) -> dg.TimeWindowPartitionMapping:
        """A model for month M trains on every daily partition before M."""
        return dg.TimeWindowPartitionMapping(start_offset=-WHOLE_HISTORY_MONTHS, end_offset=-1)

    @property
    def same_month(self) -> dg.TimeWindowPartitionMapping:
        """Scores of day D use the model of D's month."""
        return dg.TimeWindowPartitionMapping()


def build_partitions(settings: Settings) -> GraphPartitions:
    start = settings.partitions_start.isoformat()
    # dagster's end_date is exclusive, as PDM_PARTITIONS_END is.
    end = settings.partitions_end.isoformat()
    return GraphPartitions(
        daily=dg.DailyPartitionsDefinition(start_date=start, end_date=end, timezone="UTC"),
        # The model of month M only needs days before M: every month whose first day is at or
        # before PDM_PARTITIONS_END (exclusive end of the days) can be trained, including the
        # month that begins on that very day.
        monthly=dg.MonthlyPartitionsDefinition(
            start_date=_first_of_month(settings.partitions_start).isoformat(),
            end_date=_next_month(settings.partitions_end).isoformat(),
            # ... and in live operation the month that has just begun is a partition too.
            end_offset=1,
            timezone="UTC",
        ),
        fleet=settings.fleet,
    )


def _first_of_month(day: date) -> date:
    return day.replace(day=1)


def _next_month(day: date) -> date:
    return (day.replace(day=28) + timedelta(days=4)).replace(day=1)


def partition_window(time_window: dg.TimeWindow) -> Window:
    """The UTC window of a Dagster partition time window (whatever zone Dagster reports it in)."""
    return Window(time_window.start, time_window.end)
