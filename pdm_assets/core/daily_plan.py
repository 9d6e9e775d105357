"""Which daily partitions must run again, from what landed and what the instance recorded.

The landing sensor does not turn "day D landed" into a fixed list of runs. It compares each
partition with its inputs: a partition must run when an input it reads was written after it
(Dagster's storage ids grow with every event, so "written after" is a comparison of ids), or when
a day the sensor landed lacks it although every input is now there. Labels and outcomes then
follow their inputs, not the order in which runs were requested:

* A landed day (a new `_COMPLETE` marker, or the same day landed again with other files) runs
  whole: raw tables, features, labels, scores, work list.
* machine_features of day X runs again when a raw table of X - L .. X (L = the lookback days) was
  written after it, or when X was landed but has no features yet (its lookback had a hole when it
  ran), once every raw day it reads is there. Its labels, scores and work list run with it.
  Features of days after X + L also read X (days since replacement reach back to the first
  day); they pick the change up with their next run, not all at once.
* failure_labels of day X runs again when raw_failures of X .. X + H (H = the horizon days) or
  the features of X were written after it, once every one of those days is there: a day's
  labels are final when its horizon has landed, and relabelling before that would only be done
  again. If X was scored, model_outcomes of X runs with it (outcomes_job); it also runs when
  scores or labels of X were written after it.
* Nothing runs for a day while any run touching a day it reads is queued or in progress; the
  next tick looks again.

Everything here is plain data in, plain data out: the sensor (automation.py) reads the instance
and the landing folder and turns the plan into run requests.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta

RAW_TABLE_ASSETS = ("raw_telemetry", "raw_errors", "raw_maintenance", "raw_failures")
FEATURES = "machine_features"
LABELS = "failure_labels"
SCORES = "machine_scores"
WORKLIST = "maintenance_worklist"
OUTCOMES = "model_outcomes"
TRACKED_ASSETS = (*RAW_TABLE_ASSETS, FEATURES, LABELS, SCORES, WORKLIST, OUTCOMES)

LAND = "land"
REFRESH = "refresh"
OUTCOMES_KIND = "outcomes"
LABELS_KIND = "labels"

_ONE_DAY = timedelta(days=1)

# Storage ids: asset -> day -> id of the latest materialization of that partition.
Written = Mapping[str, Mapping[date, int]]


@dataclass(frozen=True)
class DayRun:
    """One run the plan asks for: `kind` says which job, `assets` which of its assets (empty for
    the whole landed-day job), `reason` why, in words for the sensor's log; `last` the last day
    of a range run (None: the one day)."""

    kind: str
    day: date
    assets: tuple[str, ...]
    reason: str
    # What the run answers: the landing fingerprint, or the newest input storage id. The run
    # key is made of it, so the same state never asks twice and a new state asks again.
    trigger: str
    last: date | None = None

    @property
    def label(self) -> str:
        return self.day.isoformat() if self.last is None else f"{self.day} .. {self.last}"

    @property
    def run_key(self) -> str:
        digest = hashlib.sha1(f"{self.assets}|{self.trigger}".encode()).hexdigest()[:10]
        span = self.day.isoformat() if self.last is None else f"{self.day}..{self.last}"
        return f"{self.kind}:{span}:{digest}"


def in_ranges(runs: list[DayRun]) -> list[DayRun]:
    """Consecutive days asking for the same assets for the same reason, as one range run (the
    daily assets run a range as one Spark job each). A landed day stays a run of its own: a day
    whose files are refused must not fail its neighbours."""
    merged: list[DayRun] = []
    for run in sorted(runs, key=lambda r: (r.kind != LAND, r.kind, r.assets, r.day)):
        previous = merged[-1] if merged else None
        if (
            previous is not None
            and run.kind != LAND
            and (previous.kind, previous.assets, previous.reason)
            == (run.kind, run.assets, run.reason)
            and (previous.last or previous.day) + _ONE_DAY == run.day
        ):
            merged[-1] = DayRun(
                previous.kind,
                previous.day,
                previous.assets,
                previous.reason,
                f"{previous.trigger},{run.trigger}",
                last=run.day,
            )
        else:
            merged.append(run)
    return merged


@dataclass
class DailyPlan:
    runs: list[DayRun] = field(default_factory=list)
    # Days that would run but wait for a run in progress on a day they read.
    waiting: list[date] = field(default_factory=list)
    # Days whose inputs are not all there yet (a hole in a lookback or lookahead).
    incomplete: dict[date, list[date]] = field(default_factory=dict)
    # Landed days whose run wrote no raw tables: they wait for the day to land again.
    failed_landings: list[date] = field(default_factory=list)


@dataclass(frozen=True)
class Reach:
    """How far a day's partitions read: `lookback_days` of raw tables before the features' day,
    `horizon_days` of failures after the labels' day, within the partitions [first, last]."""

    lookback_days: int
    horizon_days: int
    first: date
    last: date

    def days(self, start: date, end: date) -> list[date]:
        start, end = max(start, self.first), min(end, self.last)
        return [start + timedelta(days=n) for n in range((end - start).days + 1)]

    def lookback(self, day: date) -> list[date]:
        return self.days(day - timedelta(days=self.lookback_days), day)

    def lookahead(self, day: date) -> list[date]:
        return self.days(day, day + timedelta(days=self.horizon_days))

    def history(self, day: date) -> list[date]:
        return self.days(self.first, day)


def _newest(written: Written, assets: Iterable[str], days: Iterable[date]) -> int:
    days = list(days)
    return max(
        (written.get(asset, {}).get(day, -1) for asset in assets for day in days), default=-1
    )


def _missing(written: Written, assets: Iterable[str], days: Iterable[date]) -> list[date]:
    assets = list(assets)
    return sorted({day for day in days for asset in assets if day not in written.get(asset, {})})


def plan_days(
    *,
    landed: Mapping[date, str],
    seen: Mapping[date, str],
    owned: set[date],
    written: Written,
    busy: set[date],
    reach: Reach,
    first_model_month: date | None = None,
) -> DailyPlan:
    """The runs that bring the sensor's daily partitions up to date with their inputs.

    `first_model_month`: the first month a model was trained for (None: no model yet); a day
    the sensor landed from that month on is scored once it has features.

    `landed`: complete landed days -> their fingerprint now; `seen`: days the sensor knows ->
    the fingerprint it requested (or found ingested) them with, "" for "take whatever is there";
    `owned`: the days the sensor landed, whose partitions (and those reading them) it keeps up to
    date; days a backfill ingested stay the backfill's until they land again. `written`: storage
    ids of the tracked assets; `busy`: days a queued or running run touches.
    """
    plan = DailyPlan()
    claimed: set[date] = set()

    def blocked(days: Sequence[date]) -> bool:
        return any(day in busy for day in days)

    for day in sorted(landed):
        if not reach.first <= day <= reach.last or seen.get(day) in (landed[day], ""):
            continue
        if day in busy:
            plan.waiting.append(day)
            claimed.add(day)
            continue
        again = day in seen
        plan.runs.append(
            DayRun(
                LAND,
                day,
                (),
                "landed again with other files" if again else "landed",
                landed[day],
            )
        )
        claimed.add(day)

    sensor_days = set(owned) | {run.day for run in plan.runs if run.kind == LAND}
    features = written.get(FEATURES, {})
    scores = written.get(SCORES, {})
    labels = written.get(LABELS, {})
    outcomes = written.get(OUTCOMES, {})
    worklist = written.get(WORKLIST, {})
    for day in reach.days(reach.first, reach.last):
        if day in claimed:
            continue
        lookback = reach.lookback(day)
        ahead = reach.lookahead(day)
        if not any(other in sensor_days for other in (*lookback, *ahead)):
            continue
        own = features.get(day)
        newest_raw = _newest(written, RAW_TABLE_ASSETS, lookback)
        wants_features = (own is None and day in sensor_days) or (
            own is not None and newest_raw > own
        )
        if wants_features:
            if blocked(lookback):
                plan.waiting.append(day)
                continue
            holes = sorted(
                {
                    *_missing(written, RAW_TABLE_ASSETS, lookback),
                    *_missing(written, ("raw_maintenance", "raw_failures"), reach.history(day)),
                }
            )
            if day in holes and day in landed and seen.get(day) == landed[day]:
                # Its landed run ran and wrote no raw tables: its files are refused (a file cut
                # short, a bad header), and only landing the day again changes that.
                plan.failed_landings.append(day)
                continue
            if holes:
                plan.incomplete[day] = holes
                continue
            assets = [FEATURES, LABELS]
            if day in scores or day in sensor_days:
                assets += [SCORES, WORKLIST]
            plan.runs.append(
                DayRun(
                    REFRESH,
                    day,
                    tuple(assets),
                    "its lookback is complete now"
                    if own is None
                    else "a raw day it reads was written again",
                    str(newest_raw),
                )
            )
            continue
        if own is None:
            continue
        scorable = first_model_month is not None and day >= first_model_month
        if day in sensor_days and scorable and scores.get(day, -1) < own:
            # Its features came from another run (a backfill, after its own run had failed on
            # a hole): the scores and work list follow them.
            if not blocked([day]):
                plan.runs.append(
                    DayRun(REFRESH, day, (SCORES, WORKLIST), "its features are newer", str(own))
                )
            continue
        newest_input = max(_newest(written, ("raw_failures",), ahead), own)
        label_stale = labels.get(day, -1) < newest_input
        scored = scores.get(day)
        outcome_stale = scored is not None and outcomes.get(day, -1) < max(
            newest_input, scored, labels.get(day, -1)
        )
        if label_stale or outcome_stale:
            if _missing(written, ("raw_failures",), ahead):
                # The labels are not final before the horizon has landed: wait for it.
                continue
            if blocked(ahead):
                plan.waiting.append(day)
                continue
            if scored is not None:
                plan.runs.append(
                    DayRun(
                        OUTCOMES_KIND,
                        day,
                        (LABELS, OUTCOMES),
                        "its horizon has landed; labels and outcomes follow",
                        f"{newest_input}/{scored}",
                    )
                )
            else:
                plan.runs.append(
                    DayRun(
                        LABELS_KIND,
                        day,
                        (LABELS,),
                        "its horizon has landed; labels follow",
                        str(newest_input),
                    )
                )
            continue
        stale_worklist = scored is not None and worklist.get(day, -1) < scored
        if stale_worklist and day in sensor_days and not blocked([day]):
            plan.runs.append(
                DayRun(REFRESH, day, (WORKLIST,), "its scores were written again", str(scored))
            )
    plan.runs = in_ranges(plan.runs)
    return plan
