"""A deterministic fleet simulator for any fleet description (`pdm_assets.core.fleet.Fleet`).

``simulate`` computes a whole fleet history in memory with numpy: the machine register, a
maintenance history before the first day, telemetry at the fleet's cadence, errors, scheduled
and failure-driven component replacements, and failures, each with the description's sensors,
error codes, components, machine attributes and column names. ``write_landing`` drops it, day
by day, into the landing layout of :mod:`pdm_assets.core.landing` (only the tables the fleet has);
any subset of days gives the same bytes as a full write, so one fleet can serve a bulk load and
a day-at-a-time feed alike.

With the default description (the Azure predictive-maintenance data set's shape) the data
imitates the public data set (figures per 100 machines and year):

* telemetry hourly at hh:00: volt 170 (sd 15), rotate 446 (53), pressure 100 (10.7),
  vibration 40 (5.3), with small per-machine offsets and a tiny share of missing readings;
* errors error1..error5 at any hour, about 1010, 988, 838, 727 and 356 a year;
* a maintenance visit every 15 days per machine at 06:00 replacing one component;
* failures of comp1..comp4, about 192, 259, 131 and 179 a year, at 06:00 and replaced in the
  maintenance log at the same hour, except about 2 % at 03:00 that the log misses; about 5 %
  drag a second component of the same machine down at the same hour. The hazard of a component
  grows with its days since replacement and a little with the machine's model and age.

Learnable precursors, with noise: before most failures of component ``c`` (its index in the
description) sensor ``c mod n_sensors`` drifts (for the default comp1 volt up, comp2 rotate
down, comp3 pressure up, comp4 vibration up) along a ramp that starts 2-5 days ahead and reaches
2-3 sd, and error code ``c``, if the fleet has that many codes, comes in a burst over the last
1-3 days. About 20 % of failures give no warning, and false drift episodes that revert without
a failure are scattered over the fleet.

The Azure calibration is kept by name: a sensor, component, error code or machine attribute
named as in the Azure data (volt, comp2, error3, model, age, ...) gets its Azure figures.
Everything else gets the generic rules of `calibrate` (and of `_machine_register` for the machine
attributes), so the default description reproduces the former Azure-only simulator's output
byte for byte, seed for seed.
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

from pdm_assets.core.fleet import DEFAULT_FLEET, Fleet, MachineAttribute, Sensor, load_fleet
from pdm_assets.core.landing import write_day, write_history, write_machines

logger = logging.getLogger(__name__)

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]

HOURS_PER_DAY = 24
MINUTES_PER_HOUR = 60
DAYS_PER_YEAR = 365.0

# --- the Azure calibration, used for the names of the Azure data set -------------------------

AZURE_SENSORS: tuple[str, ...] = ("volt", "rotate", "pressure", "vibration")
SENSOR_MEAN: tuple[float, ...] = (170.0, 446.0, 100.0, 40.0)
SENSOR_SD: tuple[float, ...] = (15.0, 53.0, 10.7, 5.3)
DRIFT_SIGN: tuple[float, ...] = (1.0, -1.0, 1.0, 1.0)

MODEL_ATTRIBUTE = "model"
MODELS: tuple[str, ...] = ("model1", "model2", "model3", "model4")
MODEL_SHARES: tuple[float, ...] = (0.16, 0.17, 0.35, 0.32)
MODEL_HAZARD: tuple[float, ...] = (1.15, 1.05, 0.95, 1.0)
AGE_ATTRIBUTE = "age"
MAX_AGE_YEARS = 20
# Older machines fail a little more often: x0.85 at the youngest age up to x1.15 at the oldest.
AGE_HAZARD_SPAN = 0.3

AZURE_COMPONENTS: tuple[str, ...] = ("comp1", "comp2", "comp3", "comp4")
FAILURES_PER_100_MACHINE_YEARS: tuple[float, ...] = (192.0, 259.0, 131.0, 179.0)
# Daily hazard of a component = base * machine factor * (days since replacement / 60) ** 1.5.
# The bases were calibrated (on 4000 machines x 365 days) so that, after the feedback of
# replacements on component ages and the dragged second failures, the yearly failure counts
# land on FAILURES_PER_100_MACHINE_YEARS.
HAZARD_BASE: tuple[float, ...] = (0.0107, 0.0160, 0.00655, 0.00995)

AZURE_ERRORS: tuple[str, ...] = ("error1", "error2", "error3", "error4", "error5")
ERRORS_PER_100_MACHINE_YEARS: tuple[float, ...] = (1010.0, 988.0, 838.0, 727.0, 356.0)

# --- generic values, for names the Azure data set does not have ------------------------------

# A sensor with both bounds sits in the middle of its range with the range spanning 30 sd
# (mean +- 15 sd), so noise, offsets and a 3 sd drift stay far inside it; one without bounds
# reads 100 (sd 10), one with a single bound sits 10 sd inside it.
BOUNDED_RANGE_SDS = 30.0
GENERIC_SENSOR_MEAN = 100.0
GENERIC_SENSOR_SD = 10.0
ONE_SIDED_MARGIN_SDS = 10.0
# An Azure sensor's calibration is used only if mean +- this many sd fits its declared range:
# a declared range always wins over the Azure figures.
CALIBRATION_FIT_SDS = 6.0
# The Azure means over components and error codes.
GENERIC_FAILURES_PER_100_MACHINE_YEARS = float(np.mean(FAILURES_PER_100_MACHINE_YEARS))
GENERIC_HAZARD_BASE = float(np.mean(HAZARD_BASE))
GENERIC_ERRORS_PER_100_MACHINE_YEARS = float(np.mean(ERRORS_PER_100_MACHINE_YEARS))
# The bursts before failures are taken out of a code's yearly total; at least this share of it
# stays background noise, so a code never has a negative background.
MIN_BACKGROUND_ERROR_SHARE = 0.1
CATEGORY_LEVELS = 4
# A numeric attribute without a bound spans this many units (the Azure age: 0..20 years).
NUMERIC_ATTRIBUTE_SPAN = MAX_AGE_YEARS

# --- the process, common to every shape ------------------------------------------------------

# Per-machine level offsets take this share of each sensor's variance; noise takes the rest.
MACHINE_OFFSET_VARIANCE_SHARE = 0.02
# Enough digits for the 5-6 significant figures the sensors carry, and a third shorter files
# than the 17 digits of a raw double.
VALUE_DECIMALS = 6
MISSING_TELEMETRY_RATE = 0.0005

HAZARD_REFERENCE_DAYS = 60.0
HAZARD_SHAPE = 1.5
MAX_DAILY_HAZARD = 0.5

DOUBLE_FAILURE_SHARE = 0.05
UNLOGGED_FAILURE_SHARE = 0.024
FAILURE_HOUR = 6
UNLOGGED_FAILURE_HOUR = 3

MAINTENANCE_HOUR = 6
MAINTENANCE_INTERVAL_DAYS = 15
# The Azure visit every 15 days replaces one of 4 components: each is due about every 60 days.
# Other component counts keep that cycle per component (2 components: a visit every 30 days).
MAINTENANCE_CYCLE_DAYS = MAINTENANCE_INTERVAL_DAYS * len(AZURE_COMPONENTS)
MAINTENANCE_SKIP_SHARE = 0.1
HISTORY_DAYS = 180
# Components start the burn-in aged up to this many days, installed before any log.
INITIAL_AGE_MAX_DAYS = 120

PRECURSOR_SHARE = 0.8
RAMP_HOURS = (48, 120)
RAMP_PEAK_SD = (2.0, 3.0)
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


@dataclass(frozen=True)
class Calibration:
    """The figures a fleet description is simulated with, one entry per sensor, component or
    error code of the description, in its order.

    Sensor bounds are -inf/inf where the description has none; values are clipped to them.
    ``visit_interval_days`` is None for a fleet without a maintenance log: no scheduled visits,
    the failures are the only replacements.
    """

    sensor_mean: tuple[float, ...]
    sensor_sd: tuple[float, ...]
    drift_sign: tuple[float, ...]
    sensor_min: tuple[float, ...]
    sensor_max: tuple[float, ...]
    failures_per_100_machine_years: tuple[float, ...]
    hazard_base: tuple[float, ...]
    errors_per_100_machine_years: tuple[float, ...]
    visit_interval_days: int | None
    cadence_minutes: int

    @property
    def readings_per_day(self) -> int:
        return HOURS_PER_DAY * MINUTES_PER_HOUR // self.cadence_minutes

    def drift_sensor(self, component: int) -> int:
        """The sensor (index) that drifts before failures of component ``component``."""
        return component % len(self.sensor_mean)


def _sensor_figures(sensor: Sensor, index: int) -> tuple[float, float, float]:
    """(mean, sd, drift sign) of one sensor."""
    low = -math.inf if sensor.min is None else sensor.min
    high = math.inf if sensor.max is None else sensor.max
    if sensor.name in AZURE_SENSORS:
        k = AZURE_SENSORS.index(sensor.name)
        mean, sd = SENSOR_MEAN[k], SENSOR_SD[k]
        if low <= mean - CALIBRATION_FIT_SDS * sd and mean + CALIBRATION_FIT_SDS * sd <= high:
            return mean, sd, DRIFT_SIGN[k]
    # Alternating signs, so a fleet's drifts go both ways as the Azure ones do.
    sign = 1.0 if index % 2 == 0 else -1.0
    if sensor.min is not None and sensor.max is not None:
        return (sensor.min + sensor.max) / 2, (sensor.max - sensor.min) / BOUNDED_RANGE_SDS, sign
    if sensor.min is not None:
        return sensor.min + ONE_SIDED_MARGIN_SDS * GENERIC_SENSOR_SD, GENERIC_SENSOR_SD, sign
    if sensor.max is not None:
        return sensor.max - ONE_SIDED_MARGIN_SDS * GENERIC_SENSOR_SD, GENERIC_SENSOR_SD, sign
    return GENERIC_SENSOR_MEAN, GENERIC_SENSOR_SD, sign


def _unmaintained_hazard_base(failures_per_100_machine_years: float) -> float:
    """The hazard base at which a component that is only replaced when it fails fails at the
    given rate.

    base * (a / R) ** s is the hazard of a Weibull life of shape k = s + 1 and scale
    L = mean life / Gamma(1 + 1 / k), so base = k / R * (R / L) ** k.
    """
    shape = HAZARD_SHAPE + 1.0
    mean_life = 100.0 * DAYS_PER_YEAR / failures_per_100_machine_years
    scale = mean_life / math.gamma(1.0 + 1.0 / shape)
    return shape / HAZARD_REFERENCE_DAYS * (HAZARD_REFERENCE_DAYS / scale) ** shape


def calibrate(fleet: Fleet) -> Calibration:
    """The figures `simulate` uses for ``fleet``: the Azure ones for Azure names, else generic.

    Generic rules: a sensor with min and max has mean (min + max) / 2 and sd (max - min) / 30,
    one with a single bound sits 100 (10 sd) inside it with sd 10, one without bounds has mean
    100 and sd 10; drift signs alternate up, down, up, ... by sensor position. A component
    fails about 190 times per 100 machine-years (the Azure mean); with a maintenance log its
    hazard base is the Azure mean base (the visits keep each component's scheduled cycle at
    about 60 days, as in the Azure data), without one the base is derived from that rate for a
    component replaced only when it fails. An error code totals about 784 per 100 machine-years
    (the Azure mean), the bursts before failures and false drifts included.
    """
    figures = [_sensor_figures(sensor, k) for k, sensor in enumerate(fleet.telemetry.sensors)]
    rates: list[float] = []
    bases: list[float] = []
    for name in fleet.components.names:
        azure = AZURE_COMPONENTS.index(name) if name in AZURE_COMPONENTS else None
        rate = (
            FAILURES_PER_100_MACHINE_YEARS[azure]
            if azure is not None
            else GENERIC_FAILURES_PER_100_MACHINE_YEARS
        )
        rates.append(rate)
        if not fleet.has_maintenance:
            bases.append(_unmaintained_hazard_base(rate))
        else:
            bases.append(HAZARD_BASE[azure] if azure is not None else GENERIC_HAZARD_BASE)
    errors = [
        ERRORS_PER_100_MACHINE_YEARS[AZURE_ERRORS.index(code)]
        if code in AZURE_ERRORS
        else GENERIC_ERRORS_PER_100_MACHINE_YEARS
        for code in fleet.errors.codes
    ]
    interval = None
    if fleet.has_maintenance:
        interval = max(1, round(MAINTENANCE_CYCLE_DAYS / len(fleet.components.names)))
    sensors = fleet.telemetry.sensors
    return Calibration(
        sensor_mean=tuple(f[0] for f in figures),
        sensor_sd=tuple(f[1] for f in figures),
        drift_sign=tuple(f[2] for f in figures),
        sensor_min=tuple(-math.inf if s.min is None else s.min for s in sensors),
        sensor_max=tuple(math.inf if s.max is None else s.max for s in sensors),
        failures_per_100_machine_years=tuple(rates),
        hazard_base=tuple(bases),
        errors_per_100_machine_years=tuple(errors),
        visit_interval_days=interval,
        cadence_minutes=fleet.telemetry.cadence_minutes,
    )


@dataclass(frozen=True, eq=False)
class _EventLog:
    """Events at whole hours, ordered by day, then machine, hour and code.

    ``hour`` counts from the first simulated day's 00:00 (negative in the history);
    ``code`` indexes the description's components or error codes.
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

    @staticmethod
    def empty() -> _EventLog:
        none = np.zeros(0, dtype=np.int64)
        return _EventLog(none, none, none)

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
    maint: _EventLog  # all replacements in the log, history included (empty without a log)


@dataclass(frozen=True, eq=False)
class SimulatedFleet:
    """A simulated fleet history, held in memory, that renders one landing day at a time in
    the tables and column names of its description ``fleet``."""

    spec: FleetSpec
    fleet: Fleet
    calibration: Calibration
    machines: pa.Table
    history_maint: pa.Table | None  # None for a fleet without a maintenance log
    telemetry: FloatArray = field(repr=False)  # (sensor, machine, reading), already rounded
    telemetry_present: BoolArray = field(repr=False)  # (machine, reading)
    errors: _EventLog = field(repr=False)
    maint: _EventLog = field(repr=False)
    failures: _EventLog = field(repr=False)
    _bounds: dict[str, IntArray] = field(repr=False)

    @property
    def days(self) -> list[date]:
        """Every simulated day, in order."""
        return [self.spec.start + timedelta(days=i) for i in range(self.spec.days)]

    @property
    def missing_readings(self) -> int:
        """Machine-times of the telemetry cadence without a telemetry row."""
        return int(self.telemetry_present.size - np.count_nonzero(self.telemetry_present))

    def day_index(self, day: date) -> int:
        index = (day - self.spec.start).days
        if not 0 <= index < self.spec.days:
            raise ValueError(
                f"{day} is outside the simulated days {self.spec.start} .. "
                f"{self.spec.start + timedelta(days=self.spec.days - 1)}"
            )
        return index

    def _readings(self, index: int) -> slice:
        per_day = self.calibration.readings_per_day
        return slice(index * per_day, (index + 1) * per_day)

    def row_counts(self, day: date) -> dict[str, int]:
        """The number of rows each daily table of ``day`` has, without building the tables."""
        index = self.day_index(day)
        readings = self._readings(index)
        counts = {"telemetry": int(np.count_nonzero(self.telemetry_present[:, readings]))}
        for table in self.fleet.event_tables[1:]:
            bounds = self._bounds[table]
            counts[table] = int(bounds[index + 1] - bounds[index])
        return counts

    def day_tables(self, day: date) -> dict[str, pa.Table]:
        """The fleet's daily tables of one day (`Fleet.event_tables`), with its column names,
        rows ordered by machine then time."""
        index = self.day_index(day)
        epoch = _epoch_seconds(self.spec.start)
        columns = self.fleet.columns
        readings = self._readings(index)
        per_day = self.calibration.readings_per_day
        machines = self.spec.machines

        present = self.telemetry_present[:, readings].ravel()
        machine_ids = np.repeat(np.arange(1, machines + 1, dtype=np.int64), per_day)
        reading_of_row = np.tile(np.arange(readings.start, readings.stop), machines)
        reading_seconds = self.calibration.cadence_minutes * 60
        telemetry: dict[str, pa.Array] = {
            columns.time: _timestamps(epoch, reading_of_row[present], reading_seconds),
            columns.machine: pa.array(machine_ids[present]),
        }
        for k, sensor in enumerate(self.fleet.sensors):
            telemetry[sensor] = pa.array(self.telemetry[k, :, readings].ravel()[present])

        logs = {
            "errors": (self.errors, self.fleet.errors.codes, columns.error),
            "maint": (self.maint, self.fleet.components.names, columns.maintenance),
            "failures": (self.failures, self.fleet.components.names, columns.failure),
        }
        tables = {"telemetry": pa.table(telemetry)}
        for table in self.fleet.event_tables[1:]:
            log, labels, column = logs[table]
            bounds = self._bounds[table]
            rows = slice(int(bounds[index]), int(bounds[index + 1]))
            tables[table] = _event_table(
                self.fleet,
                epoch,
                _EventLog(log.machine[rows], log.hour[rows], log.code[rows]),
                labels,
                column,
            )
        return tables


def _epoch_seconds(day: date) -> int:
    return int(np.datetime64(day.isoformat(), "s").astype(np.int64))


def _timestamps(epoch: int, units: IntArray, unit_seconds: int) -> pa.Array:
    # Arrow writes timestamp[s] as "YYYY-MM-DD HH:MM:SS", exactly the landing format.
    seconds = epoch + units.astype(np.int64) * unit_seconds
    return pa.array(seconds, type=pa.timestamp("s"))


def _event_table(
    fleet: Fleet, epoch: int, log: _EventLog, labels: Sequence[str], column: str
) -> pa.Table:
    names = pa.array(list(labels), type=pa.string()).take(pa.array(log.code, type=pa.int64()))
    return pa.table(
        {
            fleet.columns.time: _timestamps(epoch, log.hour, 3600),
            fleet.columns.machine: pa.array(log.machine + 1, type=pa.int64()),
            column: names,
        }
    )


def _category_levels(name: str) -> tuple[tuple[str, ...], tuple[float, ...] | None]:
    """The values of a categorical machine attribute and their shares (None: equal shares)."""
    levels = tuple(f"{name}{i}" for i in range(1, CATEGORY_LEVELS + 1))
    if name == MODEL_ATTRIBUTE and levels == MODELS:
        return levels, MODEL_SHARES
    return levels, None


def _numeric_range(attribute: MachineAttribute) -> tuple[float, float]:
    """[low, high] of a numeric machine attribute: its bounds, NUMERIC_ATTRIBUTE_SPAN wide
    from the one bound it has, or 0..NUMERIC_ATTRIBUTE_SPAN without bounds."""
    low, high = attribute.min, attribute.max
    if low is None and high is None:
        return 0.0, float(NUMERIC_ATTRIBUTE_SPAN)
    if high is None:
        assert low is not None
        return low, low + NUMERIC_ATTRIBUTE_SPAN
    if low is None:
        return high - NUMERIC_ATTRIBUTE_SPAN, high
    return low, high


def _machine_register(
    rng: np.random.Generator, fleet: Fleet, machines: int
) -> tuple[pa.Table, FloatArray]:
    """The machine register and each machine's hazard factor.

    Categorical attributes take f"{name}1".."{name}4" (the Azure shares for `model`, else
    equal shares); numeric ones whole numbers within `_numeric_range` (uniform values rounded
    like telemetry for a non-integer attribute whose range holds no whole number). Only the
    Azure `model` and `age` change the hazard; other attributes are descriptive.
    """
    columns: dict[str, pa.Array] = {
        fleet.columns.machine: pa.array(np.arange(1, machines + 1, dtype=np.int64))
    }
    factor = np.ones(machines, dtype=np.float64)
    for name in fleet.machines.categorical:
        levels, shares = _category_levels(name)
        p = None if shares is None else np.asarray(shares)
        level = rng.choice(len(levels), size=machines, p=p).astype(np.int64)
        columns[name] = pa.array([levels[i] for i in level], type=pa.string())
        if shares is not None:
            factor = factor * np.asarray(MODEL_HAZARD)[level]
    for attribute in fleet.machines.numeric:
        low, high = _numeric_range(attribute)
        whole_low, whole_high = math.ceil(low), math.floor(high)
        values: IntArray | FloatArray
        if whole_low <= whole_high:
            values = rng.integers(whole_low, whole_high + 1, size=machines).astype(np.int64)
        elif attribute.integer:
            raise ValueError(
                f"machine attribute {attribute.name}: range {attribute.range_text()} holds no "
                "whole number"
            )
        else:
            values = np.clip(
                np.round(rng.uniform(low, high, size=machines), VALUE_DECIMALS), low, high
            )
        kind = pa.int64() if attribute.integer else pa.float64()
        columns[attribute.name] = pa.array(values, type=kind)
        if attribute.name == AGE_ATTRIBUTE and high > low:
            age_factor = 1.0 - AGE_HAZARD_SPAN / 2 + AGE_HAZARD_SPAN * (values - low) / (high - low)
            factor = factor * age_factor
    return pa.table(columns), factor


def _simulate_life(
    rng: np.random.Generator,
    hazard_factor: FloatArray,
    days: int,
    base: Sequence[float],
    visit_interval: int | None,
) -> _Life:
    """Run maintenance and failures day by day, from HISTORY_DAYS before day 0 to the last day.

    Loops over days only; every step is vectorised over machines and components. Without a
    maintenance log (``visit_interval`` None) there are no visits and no log: failures still
    renew their component, all at FAILURE_HOUR.
    """
    machines = hazard_factor.size
    n_comp = len(base)
    maintained = visit_interval is not None
    comp_index = np.arange(n_comp)
    base_hazard = np.asarray(base, dtype=np.float64)[None, :] * hazard_factor[:, None]
    first = -HISTORY_DAYS
    # Day of each component's last replacement; the components predate the log.
    last = first - rng.integers(0, INITIAL_AGE_MAX_DAYS + 1, size=(machines, n_comp))
    # A component nobody has logged a replacement for yet goes first on the next visit, so the
    # history gives every component a defined age on day 0.
    unlogged = np.ones((machines, n_comp), dtype=bool)
    interval = visit_interval or 1
    phase = rng.integers(0, interval, size=machines) if maintained else None

    fail_parts: list[tuple[IntArray, IntArray, IntArray, BoolArray, IntArray]] = []
    maint_parts: list[tuple[IntArray, IntArray, IntArray]] = []
    for day in range(first, days):
        age = (day - last).astype(np.float64)
        hazard = np.minimum(
            base_hazard * (age / HAZARD_REFERENCE_DAYS) ** HAZARD_SHAPE, MAX_DAILY_HAZARD
        )
        # Every draw has a fixed shape, so the stream does not depend on what happened.
        fail = rng.random((machines, n_comp)) < hazard
        if n_comp > 1:
            # A single component has no partner to drag down.
            drag = fail & (rng.random((machines, n_comp)) < DOUBLE_FAILURE_SHARE)
            offset = rng.integers(1, n_comp, size=(machines, n_comp))
            partner = (comp_index[None, :] + offset) % n_comp
            if drag.any():
                m_drag, c_drag = np.nonzero(drag)
                fail[m_drag, partner[m_drag, c_drag]] = True
        if maintained:
            drop_log = rng.random(machines) < UNLOGGED_FAILURE_SHARE
            skip = rng.random(machines) < MAINTENANCE_SKIP_SHARE
            pick = rng.random(machines)
        else:
            # No log to miss a failure.
            drop_log = np.zeros(machines, dtype=bool)

        m_fail, c_fail = np.nonzero(fail)
        if m_fail.size:
            logged = ~drop_log[m_fail]
            hour = np.where(logged, FAILURE_HOUR, UNLOGGED_FAILURE_HOUR) + day * HOURS_PER_DAY
            if day >= 0:
                prev = last[m_fail, c_fail] * HOURS_PER_DAY + MAINTENANCE_HOUR
                fail_parts.append((m_fail, hour, c_fail, logged, prev))
            # An unlogged failure is still repaired: the component is new, the log does not say.
            last[m_fail, c_fail] = day
            if maintained:
                m_log, c_log = m_fail[logged], c_fail[logged]
                unlogged[m_log, c_log] = False
                maint_parts.append(
                    (m_log, np.full(m_log.size, day * HOURS_PER_DAY + FAILURE_HOUR), c_log)
                )

        if not maintained:
            continue
        assert phase is not None
        visit = (day - phase) % interval == 0
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
        f_machine[order].astype(np.int64),
        f_hour[order].astype(np.int64),
        f_comp[order].astype(np.int64),
    )
    maint = _EventLog.empty()
    if maint_parts:
        m_machine, m_hour, m_comp = (np.concatenate(p) for p in zip(*maint_parts, strict=True))
        maint = _EventLog.build(m_machine, m_hour, m_comp, dedupe=True)
    return _Life(
        failures=failures,
        failure_logged=f_logged[order].astype(bool),
        failure_prev_replacement_hour=f_prev[order].astype(np.int64),
        maint=maint,
    )


def _add_ramp(series: FloatArray, start: int, end: int, peak: float, length: int) -> None:
    """Add a linear ramp to ``series[start:end]`` that would reach ``peak`` at ``end``, rising
    over ``length`` readings."""
    lo = max(start, 0)
    hi = min(end, series.size)
    if hi <= lo:
        return
    steps = np.arange(lo, hi) - (end - length) + 1
    series[lo:hi] += peak * steps / length


def _reading_at(hour: int, cadence_minutes: int) -> int:
    """The first telemetry reading at or after ``hour`` (the hour itself for hourly data)."""
    return -(-hour * MINUTES_PER_HOUR // cadence_minutes)


def _readings_in(hours: int, cadence_minutes: int) -> int:
    """How many readings ``hours`` hours hold, at least one."""
    return max(1, round(hours * MINUTES_PER_HOUR / cadence_minutes))


def _simulate_telemetry(
    rng: np.random.Generator, calibration: Calibration, machines: int, readings: int
) -> tuple[FloatArray, BoolArray]:
    sensors = len(calibration.sensor_mean)
    values = np.empty((sensors, machines, readings), dtype=np.float64)
    noise_share = math.sqrt(1.0 - MACHINE_OFFSET_VARIANCE_SHARE)
    offset_share = math.sqrt(MACHINE_OFFSET_VARIANCE_SHARE)
    for k in range(sensors):
        sd = calibration.sensor_sd[k]
        rng.standard_normal(out=values[k])
        values[k] *= sd * noise_share
        offsets = calibration.sensor_mean[k] + rng.normal(0.0, sd * offset_share, size=machines)
        values[k] += offsets[:, None]
    present = rng.random((machines, readings)) >= MISSING_TELEMETRY_RATE
    return values, present


def _apply_precursors(
    rng: np.random.Generator, values: FloatArray, life: _Life, calibration: Calibration
) -> tuple[IntArray, IntArray, IntArray]:
    """Drift the component's sensor before warned failures; return their error bursts.

    Loops over failure events. The error bursts come back as (machine, hour, error index), only
    for components whose index is an error code's.
    """
    cadence = calibration.cadence_minutes
    failures = life.failures
    count = len(failures)
    warned = rng.random(count) < PRECURSOR_SHARE
    ramp = rng.integers(RAMP_HOURS[0], RAMP_HOURS[1] + 1, size=count)
    peak = rng.uniform(RAMP_PEAK_SD[0], RAMP_PEAK_SD[1], size=count)
    for i in np.nonzero(warned)[0]:
        sensor = calibration.drift_sensor(int(failures.code[i]))
        end_hour = int(failures.hour[i])
        length = _readings_in(int(ramp[i]), cadence)
        end = _reading_at(end_hour, cadence)
        # A drift cannot predate the part: it starts after the component's last replacement.
        installed = _reading_at(int(life.failure_prev_replacement_hour[i]) + 1, cadence)
        start = max(end - length, installed)
        height = calibration.drift_sign[sensor] * calibration.sensor_sd[sensor] * float(peak[i])
        _add_ramp(values[sensor, int(failures.machine[i])], start, end, height, length)

    has_code = failures.code < len(calibration.errors_per_100_machine_years)
    burst = rng.poisson(ERROR_BURST_MEAN, size=count) * warned * has_code
    window = rng.integers(ERROR_BURST_HOURS[0], ERROR_BURST_HOURS[1] + 1, size=count)
    owner = np.repeat(np.arange(count), burst)
    before = np.floor(rng.random(owner.size) * window[owner]).astype(np.int64) + 1
    return failures.machine[owner], failures.hour[owner] - before, failures.code[owner]


def _apply_false_drifts(
    rng: np.random.Generator,
    values: FloatArray,
    machines: int,
    hours: int,
    calibration: Calibration,
) -> tuple[IntArray, IntArray, IntArray]:
    """Scatter drift episodes that revert with no failure; return their error bursts (sensor k
    bursts error code k, as before a failure of component k)."""
    cadence = calibration.cadence_minutes
    sensors = len(calibration.sensor_mean)
    readings = values.shape[2]
    expected = FALSE_DRIFTS_PER_MACHINE_YEAR * machines * hours / (HOURS_PER_DAY * DAYS_PER_YEAR)
    count = int(rng.poisson(expected))
    machine = rng.integers(0, machines, size=count)
    sensor = rng.integers(0, sensors, size=count)
    peak_hour = rng.integers(0, hours, size=count)
    rise = rng.integers(RAMP_HOURS[0], RAMP_HOURS[1] + 1, size=count)
    decay = rng.integers(FALSE_DRIFT_DECAY_HOURS[0], FALSE_DRIFT_DECAY_HOURS[1] + 1, size=count)
    peak = rng.uniform(FALSE_DRIFT_PEAK_SD[0], FALSE_DRIFT_PEAK_SD[1], size=count)
    for i in range(count):
        k = int(sensor[i])
        series = values[k, int(machine[i])]
        height = calibration.drift_sign[k] * calibration.sensor_sd[k] * float(peak[i])
        top = _reading_at(int(peak_hour[i]), cadence)
        up = _readings_in(int(rise[i]), cadence)
        _add_ramp(series, top - up, top, height, up)
        # The way back down: a ramp from the peak to zero over `decay` hours.
        down = _readings_in(int(decay[i]), cadence)
        lo, hi = max(top, 0), min(top + down, readings)
        if hi > lo:
            series[lo:hi] += height * (1.0 - np.arange(lo - top, hi - top) / down)

    has_code = sensor < len(calibration.errors_per_100_machine_years)
    burst = rng.poisson(FALSE_DRIFT_ERROR_BURST_MEAN, size=count) * has_code
    window = rng.integers(ERROR_BURST_HOURS[0], ERROR_BURST_HOURS[1] + 1, size=count)
    owner = np.repeat(np.arange(count), burst)
    before = np.floor(rng.random(owner.size) * window[owner]).astype(np.int64) + 1
    return machine[owner], peak_hour[owner] - before, sensor[owner]


def baseline_error_rates(fleet: Fleet = DEFAULT_FLEET) -> FloatArray:
    """Errors per 100 machine-years that arise without any warning episode, per error code.

    The bursts before failures of component c and after false drifts of sensor c add their
    share of code c, so the background takes the rest of each code's total (at least
    MIN_BACKGROUND_ERROR_SHARE of it).
    """
    calibration = calibrate(fleet)
    totals = np.asarray(calibration.errors_per_100_machine_years, dtype=np.float64)
    rates = totals.copy()
    failures = calibration.failures_per_100_machine_years
    sensors = len(calibration.sensor_mean)
    for c in range(rates.size):
        if c < len(failures):
            rates[c] -= failures[c] * PRECURSOR_SHARE * ERROR_BURST_MEAN
        if c < sensors:
            false_drifts = FALSE_DRIFTS_PER_MACHINE_YEAR * 100 / sensors
            rates[c] -= false_drifts * FALSE_DRIFT_ERROR_BURST_MEAN
    return np.maximum(rates, MIN_BACKGROUND_ERROR_SHARE * totals)


def _background_errors(
    rng: np.random.Generator, rates: FloatArray, machines: int, hours: int
) -> tuple[IntArray, IntArray, IntArray]:
    machine_years = machines * hours / (HOURS_PER_DAY * DAYS_PER_YEAR)
    parts_m: list[IntArray] = [np.zeros(0, dtype=np.int64)]
    parts_h: list[IntArray] = [np.zeros(0, dtype=np.int64)]
    parts_c: list[IntArray] = [np.zeros(0, dtype=np.int64)]
    for k, per_100 in enumerate(rates):
        count = int(rng.poisson(per_100 * machine_years / 100.0))
        parts_m.append(rng.integers(0, machines, size=count))
        parts_h.append(rng.integers(0, hours, size=count))
        parts_c.append(np.full(count, k, dtype=np.int64))
    return np.concatenate(parts_m), np.concatenate(parts_h), np.concatenate(parts_c)


def _clip_to_bounds(values: FloatArray, calibration: Calibration) -> None:
    """Keep every reading inside its sensor's declared range, so validation keeps every row."""
    for k, (low, high) in enumerate(
        zip(calibration.sensor_min, calibration.sensor_max, strict=True)
    ):
        if math.isfinite(low) or math.isfinite(high):
            np.clip(values[k], low, high, out=values[k])


def simulate(spec: FleetSpec, fleet: Fleet = DEFAULT_FLEET) -> SimulatedFleet:
    """Simulate a fleet of the described shape; the same spec and description always give the
    same fleet, bit for bit."""
    calibration = calibrate(fleet)
    # Independent streams per concern, so a change in one part leaves the others' draws alone.
    streams = [np.random.default_rng(s) for s in np.random.SeedSequence(spec.seed).spawn(6)]
    rng_machines, rng_life, rng_telemetry, rng_precursor, rng_false, rng_errors = streams
    machines, days = spec.machines, spec.days
    hours = days * HOURS_PER_DAY
    readings = days * calibration.readings_per_day

    register, hazard_factor = _machine_register(rng_machines, fleet, machines)
    life = _simulate_life(
        rng_life, hazard_factor, days, calibration.hazard_base, calibration.visit_interval_days
    )
    values, present = _simulate_telemetry(rng_telemetry, calibration, machines, readings)
    warn_m, warn_h, warn_c = _apply_precursors(rng_precursor, values, life, calibration)
    false_m, false_h, false_c = _apply_false_drifts(rng_false, values, machines, hours, calibration)
    np.round(values, VALUE_DECIMALS, out=values)
    # After rounding, so a rounded value cannot step over a bound with more decimals.
    _clip_to_bounds(values, calibration)

    errors = _EventLog.empty()
    if fleet.has_errors:
        rates = baseline_error_rates(fleet)
        back_m, back_h, back_c = _background_errors(rng_errors, rates, machines, hours)
        err_m = np.concatenate([back_m, warn_m, false_m])
        err_h = np.concatenate([back_h, warn_h, false_h])
        err_c = np.concatenate([back_c, warn_c, false_c])
        inside = (err_h >= 0) & (err_h < hours)
        errors = _EventLog.build(err_m[inside], err_h[inside], err_c[inside], dedupe=True)

    in_days = life.maint.hour >= 0
    maint = life.maint.select(in_days)
    history = None
    if fleet.has_maintenance:
        epoch = _epoch_seconds(spec.start)
        history = _event_table(
            fleet,
            epoch,
            life.maint.select(~in_days),
            fleet.components.names,
            fleet.columns.maintenance,
        )
    bounds = {
        "errors": errors.day_bounds(days),
        "maint": maint.day_bounds(days),
        "failures": life.failures.day_bounds(days),
    }
    return SimulatedFleet(
        spec=spec,
        fleet=fleet,
        calibration=calibration,
        machines=register,
        history_maint=history,
        telemetry=values,
        telemetry_present=present,
        errors=errors,
        maint=maint,
        failures=life.failures,
        _bounds=bounds,
    )


def write_landing(
    simulated: SimulatedFleet, landing: Path | str, days: Iterable[date] | None = None
) -> list[date]:
    """Write the fleet's register, its maintenance history (if it has a maintenance log) and
    the given days (None: all), each day with exactly the fleet's tables.

    Returns the days written, sorted. The register and history are rewritten every time with
    the same bytes, so a day-at-a-time feed keeps them in place from the first drop on.
    """
    landing = Path(landing)
    fleet = simulated.fleet
    chosen = simulated.days if days is None else sorted(set(days))
    for day in chosen:
        simulated.day_index(day)  # fail before writing anything if a day is out of range
    write_machines(landing, simulated.machines, fleet)
    if simulated.history_maint is not None:
        write_history(landing, "maint", simulated.history_maint, fleet)
    for day in chosen:
        write_day(landing, day, simulated.day_tables(day), fleet)
    return chosen


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    defaults = FleetSpec()
    parser = argparse.ArgumentParser(
        prog="python -m pdm_assets.simulator.fleet_simulator",
        description="Simulate a machine fleet and drop it into a landing folder, day by day.",
    )
    parser.add_argument("--landing", type=Path, required=True, help="the landing folder")
    parser.add_argument(
        "--fleet",
        type=Path,
        default=None,
        help="a fleet description TOML (default: the shipped one, the Azure data set's shape)",
    )
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
        # A FleetDescriptionError is a ValueError: a bad description exits 2 with its message.
        fleet = load_fleet(args.fleet)
        spec = FleetSpec(machines=args.machines, start=args.start, days=args.days, seed=args.seed)
        began = time.perf_counter()
        simulated = simulate(spec, fleet)
        written = write_landing(simulated, args.landing, args.only_days)
    except ValueError as error:
        logger.error("%s", error)
        return 2
    totals = dict.fromkeys(fleet.event_tables, 0)
    for day in written:
        for table, rows in simulated.row_counts(day).items():
            totals[table] += rows
    span = f"{written[0]} .. {written[-1]}" if written else "no days"
    logger.info(
        "landed %d day(s) (%s) of %d machines of fleet %s, seed %d, into %s: %s in %.1f s",
        len(written),
        span,
        spec.machines,
        fleet.name,
        spec.seed,
        args.landing,
        ", ".join(f"{rows} {table}" for table, rows in totals.items()),
        time.perf_counter() - began,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
