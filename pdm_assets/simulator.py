"""A deterministic fleet simulator in the schema of the Azure predictive-maintenance data set.

``simulate`` computes a whole fleet history in memory with numpy: the machine register, a
maintenance history before the first day, hourly telemetry, errors, scheduled and
failure-driven component replacements, and failures. ``write_landing`` drops it, day by day,
into the landing layout of :mod:`pdm_assets.landing`; any subset of days gives the same bytes as
a full write, so one fleet can serve a bulk load and a day-at-a-time feed alike.

What the data imitates (figures per 100 machines and year, from the public data set):

* telemetry hourly at hh:00: volt 170 (sd 15), rotate 446 (53), pressure 100 (10.7),
  vibration 40 (5.3), with small per-machine offsets and a tiny share of missing hours;
* errors error1..error5 at any hour, about 1010, 988, 838, 727 and 356 a year;
* a maintenance visit every 15 days per machine at 06:00 replacing one component;
* failures of comp1..comp4, about 192, 259, 131 and 179 a year, at 06:00 and replaced in the
  maintenance log at the same hour, except about 2 % at 03:00 that the log misses; about 5 %
  drag a second component of the same machine down at the same hour. The hazard of a component
  grows with its days since replacement and a little with the machine's model and age.

Learnable precursors, with noise: before most failures of component ``c`` the matching sensor
drifts (comp1 volt up, comp2 rotate down, comp3 pressure up, comp4 vibration up) along a ramp
that starts 2-5 days ahead and reaches 2-3 sd, and the matching error type (error1..error4)
comes in a burst over the last 1-3 days. About 20 % of failures give no warning, and false
drift episodes that revert without a failure are scattered over the fleet.
"""

from __future__ import annotations

import argparse
import logging
import math
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pyarrow as pa

from pdm_assets.landing import (
    DAILY_TABLES,
    write_day,
    write_history,
    write_machines,
)

logger = logging.getLogger(__name__)

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]

HOURS_PER_DAY = 24
DAYS_PER_YEAR = 365.0

SENSORS: tuple[str, ...] = ("volt", "rotate", "pressure", "vibration")
SENSOR_MEAN: tuple[float, ...] = (170.0, 446.0, 100.0, 40.0)
SENSOR_SD: tuple[float, ...] = (15.0, 53.0, 10.7, 5.3)
# Per-machine level offsets take this share of each sensor's variance; noise takes the rest.
MACHINE_OFFSET_VARIANCE_SHARE = 0.02
# Enough digits for the 5-6 significant figures the sensors carry, and a third shorter files
# than the 17 digits of a raw double.
VALUE_DECIMALS = 6
MISSING_TELEMETRY_RATE = 0.0005

MODELS: tuple[str, ...] = ("model1", "model2", "model3", "model4")
MODEL_SHARES: tuple[float, ...] = (0.16, 0.17, 0.35, 0.32)
MODEL_HAZARD: tuple[float, ...] = (1.15, 1.05, 0.95, 1.0)
MAX_AGE_YEARS = 20
# Older machines fail a little more often: x0.85 at age 0 up to x1.15 at age 20.
AGE_HAZARD_SPAN = 0.3

COMPONENTS: tuple[str, ...] = ("comp1", "comp2", "comp3", "comp4")
ERRORS: tuple[str, ...] = ("error1", "error2", "error3", "error4", "error5")

FAILURES_PER_100_MACHINE_YEARS: tuple[float, ...] = (192.0, 259.0, 131.0, 179.0)
ERRORS_PER_100_MACHINE_YEARS: tuple[float, ...] = (1010.0, 988.0, 838.0, 727.0, 356.0)

# Daily hazard of a component = base * machine factor * (days since replacement / 60) ** 1.5.
# The bases were calibrated (on 4000 machines x 365 days) so that, after the feedback of
# replacements on component ages and the dragged second failures, the yearly failure counts
# land on FAILURES_PER_100_MACHINE_YEARS.
HAZARD_REFERENCE_DAYS = 60.0
HAZARD_SHAPE = 1.5
HAZARD_BASE: tuple[float, ...] = (0.0107, 0.0160, 0.00655, 0.00995)
MAX_DAILY_HAZARD = 0.5

DOUBLE_FAILURE_SHARE = 0.05
UNLOGGED_FAILURE_SHARE = 0.024
FAILURE_HOUR = 6
UNLOGGED_FAILURE_HOUR = 3

MAINTENANCE_HOUR = 6
MAINTENANCE_INTERVAL_DAYS = 15
MAINTENANCE_SKIP_SHARE = 0.1
HISTORY_DAYS = 180
# Components start the burn-in aged up to this many days, installed before any log.
INITIAL_AGE_MAX_DAYS = 120

PRECURSOR_SHARE = 0.8
RAMP_HOURS = (48, 120)
RAMP_PEAK_SD = (2.0, 3.0)
DRIFT_SIGN: tuple[float, ...] = (1.0, -1.0, 1.0, 1.0)
ERROR_BURST_MEAN = 2.0
ERROR_BURST_HOURS = (24, 72)

FALSE_DRIFTS_PER_MACHINE_YEAR = 1.5
FALSE_DRIFT_PEAK_SD = (1.5, 3.0)
FALSE_DRIFT_DECAY_HOURS = (12, 48)
FALSE_DRIFT_ERROR_BURST_MEAN = 1.0


@dataclass(frozen=True)
class FleetSpec:
    """What to simulate: fleet size, first day, number of days and the random seed."""

    machines: int = 100
    start: date = date(2015, 1, 1)
    days: int = 120
    seed: int = 42

    def __post_init__(self) -> None:
        if self.machines < 1:
            raise ValueError(f"machines must be at least 1, got {self.machines}")
        if self.days < 1:
            raise ValueError(f"days must be at least 1, got {self.days}")


@dataclass(frozen=True, eq=False)
class _EventLog:
    """Events at whole hours, ordered by day, then machine, hour and code.

    ``hour`` counts from the first simulated day's 00:00 (negative in the history);
    ``code`` indexes a label tuple such as COMPONENTS.
    """

    machine: IntArray
    hour: IntArray
    code: IntArray

    @staticmethod
    def build(machine: IntArray, hour: IntArray, code: IntArray, dedupe: bool) -> _EventLog:
        day = np.floor_divide(hour, HOURS_PER_DAY)
        order = np.lexsort((code, hour, machine, day))
        machine, hour, code = machine[order], hour[order], code[order]
        if dedupe and machine.size:
            keep = np.ones(machine.size, dtype=bool)
            keep[1:] = (
                (machine[1:] != machine[:-1]) | (hour[1:] != hour[:-1]) | (code[1:] != code[:-1])
            )
            machine, hour, code = machine[keep], hour[keep], code[keep]
        return _EventLog(machine.astype(np.int64), hour.astype(np.int64), code.astype(np.int64))

    def day_bounds(self, days: int) -> IntArray:
        """Row offsets of days 0..days, so day d is rows [bounds[d], bounds[d + 1])."""
        day = np.floor_divide(self.hour, HOURS_PER_DAY)
        return np.searchsorted(day, np.arange(days + 1), side="left").astype(np.int64)

    def select(self, mask: BoolArray) -> _EventLog:
        return _EventLog(self.machine[mask], self.hour[mask], self.code[mask])

    def __len__(self) -> int:
        return int(self.machine.size)


@dataclass(frozen=True, eq=False)
class _Life:
    """The outcome of the day-by-day maintenance and failure process."""

    failures: _EventLog  # days >= 0 only; code = component index
    failure_logged: BoolArray  # aligned with failures: a maint row exists at the same hour
    failure_prev_replacement_hour: IntArray  # aligned with failures: for clipping the ramp
    maint: _EventLog  # all replacements in the log, history included


@dataclass(frozen=True, eq=False)
class Fleet:
    """A simulated fleet history, held in memory, that renders one landing day at a time."""

    spec: FleetSpec
    machines: pa.Table
    history_maint: pa.Table
    telemetry: FloatArray = field(repr=False)  # (sensor, machine, hour), already rounded
    telemetry_present: BoolArray = field(repr=False)  # (machine, hour)
    errors: _EventLog = field(repr=False)
    maint: _EventLog = field(repr=False)
    failures: _EventLog = field(repr=False)
    _bounds: dict[str, IntArray] = field(repr=False)

    @property
    def days(self) -> list[date]:
        """Every simulated day, in order."""
        return [self.spec.start + timedelta(days=i) for i in range(self.spec.days)]

    @property
    def missing_hours(self) -> int:
        """Machine-hours without a telemetry row."""
        return int(self.telemetry_present.size - np.count_nonzero(self.telemetry_present))

    def day_index(self, day: date) -> int:
        index = (day - self.spec.start).days
        if not 0 <= index < self.spec.days:
            raise ValueError(
                f"{day} is outside the simulated days {self.spec.start} .. "
                f"{self.spec.start + timedelta(days=self.spec.days - 1)}"
            )
        return index

    def row_counts(self, day: date) -> dict[str, int]:
        """The number of rows each daily table of ``day`` has, without building the tables."""
        index = self.day_index(day)
        hours = slice(index * HOURS_PER_DAY, (index + 1) * HOURS_PER_DAY)
        counts = {"telemetry": int(np.count_nonzero(self.telemetry_present[:, hours]))}
        for table in ("errors", "maint", "failures"):
            bounds = self._bounds[table]
            counts[table] = int(bounds[index + 1] - bounds[index])
        return counts

    def day_tables(self, day: date) -> dict[str, pa.Table]:
        """The four landing tables of one day, rows ordered by machineID then datetime."""
        index = self.day_index(day)
        epoch = _epoch_seconds(self.spec.start)
        first_hour = index * HOURS_PER_DAY
        hours = slice(first_hour, first_hour + HOURS_PER_DAY)
        machines = self.spec.machines

        present = self.telemetry_present[:, hours].ravel()
        machine_ids = np.repeat(np.arange(1, machines + 1, dtype=np.int64), HOURS_PER_DAY)
        hour_of_row = np.tile(np.arange(first_hour, first_hour + HOURS_PER_DAY), machines)
        telemetry: dict[str, pa.Array] = {
            "datetime": _timestamps(epoch, hour_of_row[present]),
            "machineID": pa.array(machine_ids[present]),
        }
        for k, sensor in enumerate(SENSORS):
            telemetry[sensor] = pa.array(self.telemetry[k, :, hours].ravel()[present])

        tables = {"telemetry": pa.table(telemetry)}
        for table, log, labels, column in (
            ("errors", self.errors, ERRORS, "errorID"),
            ("maint", self.maint, COMPONENTS, "comp"),
            ("failures", self.failures, COMPONENTS, "failure"),
        ):
            bounds = self._bounds[table]
            rows = slice(int(bounds[index]), int(bounds[index + 1]))
            tables[table] = _event_table(
                epoch, log.machine[rows], log.hour[rows], log.code[rows], labels, column
            )
        return tables


def _epoch_seconds(day: date) -> int:
    return int(np.datetime64(day.isoformat(), "s").astype(np.int64))


def _timestamps(epoch: int, hours: IntArray) -> pa.Array:
    # Arrow writes timestamp[s] as "YYYY-MM-DD HH:MM:SS", exactly the landing format.
    seconds = epoch + hours.astype(np.int64) * 3600
    return pa.array(seconds, type=pa.timestamp("s"))


def _event_table(
    epoch: int,
    machine: IntArray,
    hour: IntArray,
    code: IntArray,
    labels: Sequence[str],
    column: str,
) -> pa.Table:
    names = pa.array(list(labels), type=pa.string()).take(pa.array(code, type=pa.int64()))
    return pa.table(
        {
            "datetime": _timestamps(epoch, hour),
            "machineID": pa.array(machine + 1, type=pa.int64()),
            column: names,
        }
    )


def _machine_register(rng: np.random.Generator, machines: int) -> tuple[IntArray, IntArray]:
    model = rng.choice(len(MODELS), size=machines, p=np.asarray(MODEL_SHARES))
    age = rng.integers(0, MAX_AGE_YEARS + 1, size=machines)
    return model.astype(np.int64), age.astype(np.int64)


def _machine_hazard_factor(model: IntArray, age: IntArray) -> FloatArray:
    age_factor = 1.0 - AGE_HAZARD_SPAN / 2 + AGE_HAZARD_SPAN * age / MAX_AGE_YEARS
    return np.asarray(MODEL_HAZARD)[model] * age_factor


def _simulate_life(
    rng: np.random.Generator, hazard_factor: FloatArray, days: int, base: Sequence[float]
) -> _Life:
    """Run maintenance and failures day by day, from HISTORY_DAYS before day 0 to the last day.

    Loops over days only; every step is vectorised over machines and components.
    """
    machines = hazard_factor.size
    n_comp = len(COMPONENTS)
    comp_index = np.arange(n_comp)
    base_hazard = np.asarray(base, dtype=np.float64)[None, :] * hazard_factor[:, None]
    first = -HISTORY_DAYS
    # Day of each component's last replacement; the components predate the log.
    last = first - rng.integers(0, INITIAL_AGE_MAX_DAYS + 1, size=(machines, n_comp))
    # A component nobody has logged a replacement for yet goes first on the next visit, so the
    # history gives every component a defined age on day 0.
    unlogged = np.ones((machines, n_comp), dtype=bool)
    phase = rng.integers(0, MAINTENANCE_INTERVAL_DAYS, size=machines)

    fail_parts: list[tuple[IntArray, IntArray, IntArray, BoolArray, IntArray]] = []
    maint_parts: list[tuple[IntArray, IntArray, IntArray]] = []
    for day in range(first, days):
        age = (day - last).astype(np.float64)
        hazard = np.minimum(
            base_hazard * (age / HAZARD_REFERENCE_DAYS) ** HAZARD_SHAPE, MAX_DAILY_HAZARD
        )
        # Every draw has a fixed shape, so the stream does not depend on what happened.
        fail = rng.random((machines, n_comp)) < hazard
        drag = fail & (rng.random((machines, n_comp)) < DOUBLE_FAILURE_SHARE)
        partner = (comp_index[None, :] + rng.integers(1, n_comp, size=(machines, n_comp))) % n_comp
        drop_log = rng.random(machines) < UNLOGGED_FAILURE_SHARE
        skip = rng.random(machines) < MAINTENANCE_SKIP_SHARE
        pick = rng.random(machines)

        if drag.any():
            m_drag, c_drag = np.nonzero(drag)
            fail[m_drag, partner[m_drag, c_drag]] = True
        m_fail, c_fail = np.nonzero(fail)
        if m_fail.size:
            logged = ~drop_log[m_fail]
            hour = np.where(logged, FAILURE_HOUR, UNLOGGED_FAILURE_HOUR) + day * HOURS_PER_DAY
            if day >= 0:
                prev = last[m_fail, c_fail] * HOURS_PER_DAY + MAINTENANCE_HOUR
                fail_parts.append((m_fail, hour, c_fail, logged, prev))
            # An unlogged failure is still repaired: the component is new, the log does not say.
            last[m_fail, c_fail] = day
            m_log, c_log = m_fail[logged], c_fail[logged]
            unlogged[m_log, c_log] = False
            maint_parts.append(
                (m_log, np.full(m_log.size, day * HOURS_PER_DAY + FAILURE_HOUR), c_log)
            )

        visit = (day - phase) % MAINTENANCE_INTERVAL_DAYS == 0
        visit &= ~skip | unlogged.any(axis=1)
        m_visit = np.nonzero(visit)[0]
        if m_visit.size:
            # The visit replaces a component chosen with odds growing with its age.
            weight = (day - last[m_visit]).astype(np.float64) + 0.5
            weight[unlogged[m_visit]] += 1e9
            cumulative = np.cumsum(weight, axis=1)
            target = pick[m_visit] * cumulative[:, -1]
            c_visit = np.minimum((cumulative <= target[:, None]).sum(axis=1), n_comp - 1)
            last[m_visit, c_visit] = day
            unlogged[m_visit, c_visit] = False
            maint_parts.append(
                (m_visit, np.full(m_visit.size, day * HOURS_PER_DAY + MAINTENANCE_HOUR), c_visit)
            )

    empty = np.zeros(0, dtype=np.int64)
    if fail_parts:
        columns = [np.concatenate(part) for part in zip(*fail_parts, strict=True)]
        f_machine, f_hour, f_comp, f_logged, f_prev = columns
    else:
        f_machine, f_hour, f_comp, f_prev = empty, empty, empty, empty
        f_logged = np.zeros(0, dtype=bool)
    day_of = np.floor_divide(f_hour, HOURS_PER_DAY)
    order = np.lexsort((f_comp, f_hour, f_machine, day_of))
    failures = _EventLog(
        f_machine[order].astype(np.int64), f_hour[order].astype(np.int64), f_comp[order]
    )
    m_machine, m_hour, m_comp = (np.concatenate(p) for p in zip(*maint_parts, strict=True))
    maint = _EventLog.build(m_machine, m_hour, m_comp, dedupe=True)
    return _Life(
        failures=failures,
        failure_logged=f_logged[order].astype(bool),
        failure_prev_replacement_hour=f_prev[order].astype(np.int64),
        maint=maint,
    )


def _add_ramp(series: FloatArray, start: int, end: int, peak: float, hours: int) -> None:
    """Add a linear ramp to ``series[start:end]`` that would reach ``peak`` at ``end``."""
    lo = max(start, 0)
    hi = min(end, series.size)
    if hi <= lo:
        return
    steps = np.arange(lo, hi) - (end - hours) + 1
    series[lo:hi] += peak * steps / hours


def _simulate_telemetry(
    rng: np.random.Generator, machines: int, hours: int
) -> tuple[FloatArray, BoolArray]:
    values = np.empty((len(SENSORS), machines, hours), dtype=np.float64)
    noise_share = math.sqrt(1.0 - MACHINE_OFFSET_VARIANCE_SHARE)
    offset_share = math.sqrt(MACHINE_OFFSET_VARIANCE_SHARE)
    for k in range(len(SENSORS)):
        sd = SENSOR_SD[k]
        rng.standard_normal(out=values[k])
        values[k] *= sd * noise_share
        offsets = SENSOR_MEAN[k] + rng.normal(0.0, sd * offset_share, size=machines)
        values[k] += offsets[:, None]
    present = rng.random((machines, hours)) >= MISSING_TELEMETRY_RATE
    return values, present


def _apply_precursors(
    rng: np.random.Generator, values: FloatArray, life: _Life
) -> tuple[IntArray, IntArray, IntArray]:
    """Drift the matching sensor before warned failures; return their error bursts.

    Loops over failure events. The error bursts come back as (machine, hour, error index).
    """
    failures = life.failures
    count = len(failures)
    warned = rng.random(count) < PRECURSOR_SHARE
    ramp = rng.integers(RAMP_HOURS[0], RAMP_HOURS[1] + 1, size=count)
    peak = rng.uniform(RAMP_PEAK_SD[0], RAMP_PEAK_SD[1], size=count)
    for i in np.nonzero(warned)[0]:
        comp = int(failures.code[i])
        end = int(failures.hour[i])
        # A drift cannot predate the part: it starts after the component's last replacement.
        start = max(end - int(ramp[i]), int(life.failure_prev_replacement_hour[i]) + 1)
        height = DRIFT_SIGN[comp] * SENSOR_SD[comp] * float(peak[i])
        _add_ramp(values[comp, int(failures.machine[i])], start, end, height, int(ramp[i]))

    burst = rng.poisson(ERROR_BURST_MEAN, size=count) * warned
    window = rng.integers(ERROR_BURST_HOURS[0], ERROR_BURST_HOURS[1] + 1, size=count)
    owner = np.repeat(np.arange(count), burst)
    before = np.floor(rng.random(owner.size) * window[owner]).astype(np.int64) + 1
    return failures.machine[owner], failures.hour[owner] - before, failures.code[owner]


def _apply_false_drifts(
    rng: np.random.Generator, values: FloatArray, machines: int, hours: int
) -> tuple[IntArray, IntArray, IntArray]:
    """Scatter drift episodes that revert with no failure; return their error bursts."""
    expected = FALSE_DRIFTS_PER_MACHINE_YEAR * machines * hours / (HOURS_PER_DAY * DAYS_PER_YEAR)
    count = int(rng.poisson(expected))
    machine = rng.integers(0, machines, size=count)
    sensor = rng.integers(0, len(SENSORS), size=count)
    peak_hour = rng.integers(0, hours, size=count)
    rise = rng.integers(RAMP_HOURS[0], RAMP_HOURS[1] + 1, size=count)
    decay = rng.integers(FALSE_DRIFT_DECAY_HOURS[0], FALSE_DRIFT_DECAY_HOURS[1] + 1, size=count)
    peak = rng.uniform(FALSE_DRIFT_PEAK_SD[0], FALSE_DRIFT_PEAK_SD[1], size=count)
    for i in range(count):
        k = int(sensor[i])
        series = values[k, int(machine[i])]
        height = DRIFT_SIGN[k] * SENSOR_SD[k] * float(peak[i])
        top = int(peak_hour[i])
        _add_ramp(series, top - int(rise[i]), top, height, int(rise[i]))
        # The way back down: a ramp from the peak to zero over `decay` hours.
        down = int(decay[i])
        lo, hi = max(top, 0), min(top + down, hours)
        if hi > lo:
            series[lo:hi] += height * (1.0 - np.arange(lo - top, hi - top) / down)

    burst = rng.poisson(FALSE_DRIFT_ERROR_BURST_MEAN, size=count)
    window = rng.integers(ERROR_BURST_HOURS[0], ERROR_BURST_HOURS[1] + 1, size=count)
    owner = np.repeat(np.arange(count), burst)
    before = np.floor(rng.random(owner.size) * window[owner]).astype(np.int64) + 1
    return machine[owner], peak_hour[owner] - before, sensor[owner]


def baseline_error_rates() -> FloatArray:
    """Errors per 100 machine-years that arise without any warning episode, per type.

    The bursts before failures and false drifts add their share of error1..error4, so the
    background takes the rest of each public total.
    """
    rates = np.asarray(ERRORS_PER_100_MACHINE_YEARS, dtype=np.float64).copy()
    for c, failures in enumerate(FAILURES_PER_100_MACHINE_YEARS):
        rates[c] -= failures * PRECURSOR_SHARE * ERROR_BURST_MEAN
        false_drifts = FALSE_DRIFTS_PER_MACHINE_YEAR * 100 / len(SENSORS)
        rates[c] -= false_drifts * FALSE_DRIFT_ERROR_BURST_MEAN
    return rates


def _background_errors(
    rng: np.random.Generator, machines: int, hours: int
) -> tuple[IntArray, IntArray, IntArray]:
    machine_years = machines * hours / (HOURS_PER_DAY * DAYS_PER_YEAR)
    parts_m: list[IntArray] = []
    parts_h: list[IntArray] = []
    parts_c: list[IntArray] = []
    for k, per_100 in enumerate(baseline_error_rates()):
        count = int(rng.poisson(per_100 * machine_years / 100.0))
        parts_m.append(rng.integers(0, machines, size=count))
        parts_h.append(rng.integers(0, hours, size=count))
        parts_c.append(np.full(count, k, dtype=np.int64))
    return np.concatenate(parts_m), np.concatenate(parts_h), np.concatenate(parts_c)


def _format_history(epoch: int, log: _EventLog) -> pa.Table:
    return _event_table(epoch, log.machine, log.hour, log.code, COMPONENTS, "comp")


def simulate(spec: FleetSpec) -> Fleet:
    """Simulate a fleet; the same spec always gives the same fleet, bit for bit."""
    # Independent streams per concern, so a change in one part leaves the others' draws alone.
    streams = [np.random.default_rng(s) for s in np.random.SeedSequence(spec.seed).spawn(6)]
    rng_machines, rng_life, rng_telemetry, rng_precursor, rng_false, rng_errors = streams
    machines, days = spec.machines, spec.days
    hours = days * HOURS_PER_DAY

    model, age = _machine_register(rng_machines, machines)
    life = _simulate_life(rng_life, _machine_hazard_factor(model, age), days, HAZARD_BASE)
    values, present = _simulate_telemetry(rng_telemetry, machines, hours)
    warn_m, warn_h, warn_c = _apply_precursors(rng_precursor, values, life)
    false_m, false_h, false_c = _apply_false_drifts(rng_false, values, machines, hours)
    np.round(values, VALUE_DECIMALS, out=values)

    back_m, back_h, back_c = _background_errors(rng_errors, machines, hours)
    err_m = np.concatenate([back_m, warn_m, false_m])
    err_h = np.concatenate([back_h, warn_h, false_h])
    err_c = np.concatenate([back_c, warn_c, false_c])
    inside = (err_h >= 0) & (err_h < hours)
    errors = _EventLog.build(err_m[inside], err_h[inside], err_c[inside], dedupe=True)

    in_days = life.maint.hour >= 0
    maint = life.maint.select(in_days)
    history = life.maint.select(~in_days)
    epoch = _epoch_seconds(spec.start)
    register = pa.table(
        {
            "machineID": pa.array(np.arange(1, machines + 1, dtype=np.int64)),
            "model": pa.array([MODELS[i] for i in model], type=pa.string()),
            "age": pa.array(age, type=pa.int64()),
        }
    )
    bounds = {
        "errors": errors.day_bounds(days),
        "maint": maint.day_bounds(days),
        "failures": life.failures.day_bounds(days),
    }
    return Fleet(
        spec=spec,
        machines=register,
        history_maint=_format_history(epoch, history),
        telemetry=values,
        telemetry_present=present,
        errors=errors,
        maint=maint,
        failures=life.failures,
        _bounds=bounds,
    )


def write_landing(fleet: Fleet, landing: Path, days: Iterable[date] | None = None) -> list[date]:
    """Write the fleet's register, maintenance history and the given days (None: all).

    Returns the days written, sorted. The register and history are rewritten every time with
    the same bytes, so a day-at-a-time feed keeps them in place from the first drop on.
    """
    landing = Path(landing)
    chosen = fleet.days if days is None else sorted(set(days))
    for day in chosen:
        fleet.day_index(day)  # fail before writing anything if a day is out of range
    write_machines(landing, fleet.machines)
    write_history(landing, "maint", fleet.history_maint)
    for day in chosen:
        write_day(landing, day, fleet.day_tables(day))
    return chosen


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    defaults = FleetSpec()
    parser = argparse.ArgumentParser(
        prog="python -m pdm_assets.simulator",
        description="Simulate a machine fleet and drop it into a landing folder, day by day.",
    )
    parser.add_argument("--landing", type=Path, required=True, help="the landing folder")
    parser.add_argument("--machines", type=int, default=defaults.machines)
    parser.add_argument("--start", type=date.fromisoformat, default=defaults.start)
    parser.add_argument("--days", type=int, default=defaults.days)
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument(
        "--day",
        dest="only_days",
        type=date.fromisoformat,
        action="append",
        default=None,
        help="write only this day (YYYY-MM-DD); repeat for more days",
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; returns the process exit code."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    args = _parse_args(argv)
    try:
        spec = FleetSpec(machines=args.machines, start=args.start, days=args.days, seed=args.seed)
        began = time.perf_counter()
        fleet = simulate(spec)
        written = write_landing(fleet, args.landing, args.only_days)
    except ValueError as error:
        logger.error("%s", error)
        return 2
    totals = dict.fromkeys(DAILY_TABLES, 0)
    for day in written:
        for table, rows in fleet.row_counts(day).items():
            totals[table] += rows
    span = f"{written[0]} .. {written[-1]}" if written else "no days"
    logger.info(
        "landed %d day(s) (%s) of %d machines, seed %d, into %s: %s in %.1f s",
        len(written),
        span,
        spec.machines,
        spec.seed,
        args.landing,
        ", ".join(f"{rows} {table}" for table, rows in totals.items()),
        time.perf_counter() - began,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
