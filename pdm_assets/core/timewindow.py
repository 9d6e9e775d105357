"""UTC time windows and the Spark literals built from them; no Dagster import.

Every time in pdm_assets is UTC. PySpark turns a naive `datetime` literal into a timestamp with
`time.mktime`, i.e. in the machine's local zone, and turns collected timestamps back into naive
local datetimes. So window edges are always timezone-aware UTC datetimes (a naive one is
refused with an error), literals go through `timestamp_literal`, and a timestamp collected from
Spark is read back with `from_spark`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from pyspark.sql import Column
from pyspark.sql import functions as F

_ONE_DAY = timedelta(days=1)


class NaiveDatetimeError(ValueError):
    """A datetime without a time zone, which Spark would read in the machine's local zone."""


def utc(moment: datetime) -> datetime:
    """`moment` as an aware UTC datetime; a naive datetime is refused, never guessed."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise NaiveDatetimeError(
            f"{moment.isoformat()} has no time zone; pdm_assets takes aware UTC datetimes "
            "(e.g. datetime(..., tzinfo=UTC)) so that no machine's local zone can shift it"
        )
    return moment.astimezone(UTC)


def midnight(day: date) -> datetime:
    """00:00 UTC of `day`."""
    return datetime.combine(day, time(), tzinfo=UTC)


def timestamp_literal(moment: datetime) -> Column:
    """A Spark timestamp literal of an aware datetime, the same instant in every time zone."""
    return F.lit(utc(moment))


def from_spark(value: datetime) -> datetime:
    """A timestamp collected from Spark (a naive datetime in the local zone) as aware UTC."""
    # Python reads a naive datetime as local time, which is how PySpark produced it.
    return value.astimezone(UTC)


def day_ranges(days: list[date]) -> str:
    """'2015-01-01 .. 2015-01-03, 2015-01-07' for a sorted list of days."""
    spans: list[list[date]] = []
    for day in days:
        if spans and day - spans[-1][1] == _ONE_DAY:
            spans[-1][1] = day
        else:
            spans.append([day, day])
    return ", ".join(
        first.isoformat() if first == last else f"{first.isoformat()} .. {last.isoformat()}"
        for first, last in spans
    )


@dataclass(frozen=True)
class Window:
    """A half-open UTC time range [start, end) of whole days."""

    start: datetime
    end: datetime

    def __post_init__(self) -> None:
        object.__setattr__(self, "start", utc(self.start))
        object.__setattr__(self, "end", utc(self.end))
        if self.end <= self.start:
            raise ValueError(f"empty window {self.start.isoformat()} .. {self.end.isoformat()}")

    @classmethod
    def of_days(cls, first: date, last_exclusive: date) -> Window:
        return cls(midnight(first), midnight(last_exclusive))

    @property
    def first_day(self) -> date:
        return self.start.date()

    @property
    def days(self) -> list[date]:
        count = (self.end - self.start).days
        return [self.first_day + timedelta(days=offset) for offset in range(count)]

    def contains(self, column: str | Column) -> Column:
        """A Spark condition: the timestamp column lies in [start, end)."""
        moment = F.col(column) if isinstance(column, str) else column
        return (moment >= timestamp_literal(self.start)) & (moment < timestamp_literal(self.end))

    def label(self) -> str:
        return f"{self.first_day.isoformat()} .. {self.days[-1].isoformat()}"
