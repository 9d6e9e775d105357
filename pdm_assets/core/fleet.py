"""The fleet description: the shape of one team's fleet, read from one TOML file (PDM_FLEET).

Everything that used to be a constant of the Azure data set lives here: the sensors and their
physical ranges, the error codes, the components, the machine attributes, the column names of
the source files or tables, the time zone of their timestamps, the telemetry cadence, the
feature windows, the observation times and the label horizon. Every layer reads the names it
needs from a `Fleet` (features, labels, the model's classes, the score columns, the raw
schemas), so a description of another shape changes the whole graph consistently.

No Dagster and no Spark here: the description is a typed pydantic model validated on load, and
every error names the key that is wrong.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import tomllib
import zoneinfo
from collections.abc import Sequence
from functools import cached_property
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

FLEETS_DIR = Path(__file__).parent / "fleets"
DEFAULT_FLEET_FILE = FLEETS_DIR / "azure_pdm.toml"
HOURS_PER_DAY = 24
# A name becomes part of Spark column names (volt_mean_12h, prob_comp1): letters, digits, _.
_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")
# Names the graph itself uses for columns of its tables.
_RESERVED = {"none", "machine_id", "datetime", "date", "label", "censored", "weight"}


# The extra feature families: (table, switch) -> the keys that only matter when it is on.
EXTRA_FAMILIES: dict[tuple[str, str], tuple[str, ...]] = {
    ("telemetry", "trends"): ("trend_windows_hours",),
    ("telemetry", "deviations"): (
        "deviation_windows_hours",
        "baseline_from_hours",
        "baseline_to_hours",
    ),
    ("errors", "extra_counts"): ("extra_windows_hours",),
    ("errors", "hours_since_last"): ("since_lookback_hours",),
}


class FleetDescriptionError(ValueError):
    """A fleet description that cannot be used; the message names the file and the key."""


class _KeyProblem(ValueError):
    """A problem found by a validator of a whole table that belongs to one of its keys: the
    message names `key` (a dotted path below the table) instead of the table."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(message)
        self.key = key
        self.message = message


class _Strict(BaseModel):
    # An unknown key is a typo or a key of another version: refused, never ignored.
    model_config = ConfigDict(extra="forbid", frozen=True)


def _check_name(name: str) -> str:
    if not _NAME.match(name):
        raise ValueError(
            f"{name!r} is not a usable name: letters, digits and '_', starting with a letter"
        )
    if name.lower() in _RESERVED:
        raise ValueError(f"{name!r} is reserved (used by the graph's own columns)")
    return name


def _check_unique(names: Sequence[str], what: str) -> None:
    seen: set[str] = set()
    for name in names:
        if name.lower() in seen:
            raise ValueError(f"duplicate {what} {name!r} (names are compared ignoring case)")
        seen.add(name.lower())


def _check_family_windows(value: list[int]) -> list[int]:
    """The windows of an extra feature family: at least one, each a valid window."""
    if not value:
        raise ValueError("at least one window is needed (or switch the family off)")
    return _check_windows(value)


def _check_windows(value: list[int]) -> list[int]:
    """Positive hours, none twice, in increasing order."""
    if any(window <= 0 for window in value):
        raise ValueError(f"windows must be positive hours, got {value}")
    if len(set(value)) != len(value):
        raise ValueError(f"duplicate window in {value}")
    return sorted(value)


def _check_off(model: BaseModel, switch: str, keys: Sequence[str]) -> None:
    """A setting of an extra feature family that is off would change nothing: refused, so a
    description never looks as if it computed features it does not."""
    if getattr(model, switch):
        return
    fields = type(model).model_fields
    for key in keys:
        if getattr(model, key) != fields[key].get_default(call_default_factory=True):
            raise _KeyProblem(
                key, f"set while {switch} is off ({switch} = true turns the family on)"
            )


def _check_names(names: list[str], what: str) -> list[str]:
    """Usable column names, none twice."""
    for name in names:
        _check_name(name)
    _check_unique(names, what)
    return names


class Bounded(_Strict):
    """A numeric column with an optional physical range; values outside are quarantined."""

    name: str
    min: float | None = None
    max: float | None = None

    _name = field_validator("name")(_check_name)

    @model_validator(mode="after")
    def _range(self) -> Bounded:
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"{self.name}: min {self.min:g} is greater than max {self.max:g}")
        return self

    def range_text(self) -> str:
        low = "-inf" if self.min is None else f"{self.min:g}"
        high = "inf" if self.max is None else f"{self.max:g}"
        return f"[{low}, {high}]"


class Sensor(Bounded):
    """An hourly (or per-cadence) telemetry value; without min/max it is only checked to be
    finite."""


class MachineAttribute(Bounded):
    """A numeric column of the machine register; `integer` keeps it a whole number."""

    integer: bool = False


class Columns(_Strict):
    """Column names in the source files or tables, and the zone of their naive timestamps."""

    machine: str = "machineID"
    time: str = "datetime"
    timezone: str = "UTC"
    error: str = "errorID"
    maintenance: str = "comp"
    failure: str = "failure"

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            zoneinfo.ZoneInfo(value)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError) as error:
            raise ValueError(f"unknown time zone {value!r} (an IANA name such as UTC)") from error
        return value

    @model_validator(mode="after")
    def _distinct(self) -> Columns:
        _check_unique([self.machine, self.time], "key column")
        return self


class Telemetry(_Strict):
    cadence_minutes: int = Field(default=60, gt=0)
    windows_hours: list[int] = Field(default_factory=lambda: [12, 24, 36])
    sensors: list[Sensor] = Field(min_length=1)
    # Extra feature families, off unless switched on (docs/model.md, "Extra features").
    # Trends: per sensor, mean and least-squares slope over (t - W, t] for each W.
    trends: bool = False
    trend_windows_hours: list[int] = Field(default_factory=lambda: [72, 120])
    # Deviations: per sensor, the mean over (t - W, t] less the mean over the baseline window
    # (t - baseline_from_hours, t - baseline_to_hours].
    deviations: bool = False
    deviation_windows_hours: list[int] = Field(default_factory=lambda: [24, 72])
    baseline_from_hours: int = Field(default=336, gt=0)
    baseline_to_hours: int = Field(default=120, ge=0)

    @field_validator("windows_hours")
    @classmethod
    def _windows(cls, value: list[int]) -> list[int]:
        if not value:
            raise ValueError("at least one window is needed")
        return _check_windows(value)

    @field_validator("trend_windows_hours", "deviation_windows_hours")
    @classmethod
    def _extra_windows(cls, value: list[int]) -> list[int]:
        return _check_family_windows(value)

    @model_validator(mode="after")
    def _consistent(self) -> Telemetry:
        if (HOURS_PER_DAY * 60) % self.cadence_minutes:
            raise ValueError(f"cadence_minutes {self.cadence_minutes} must divide a day (1440)")
        short = [w for w in self.windows_hours if w * 60 < self.cadence_minutes]
        if short:
            raise ValueError(
                f"windows_hours {short} shorter than the telemetry cadence "
                f"({self.cadence_minutes} minutes): such a window holds no reading"
            )
        _check_unique([sensor.name for sensor in self.sensors], "sensor")
        _check_off(self, "trends", ["trend_windows_hours"])
        _check_off(
            self,
            "deviations",
            ["deviation_windows_hours", "baseline_from_hours", "baseline_to_hours"],
        )
        if self.trends:
            both = sorted(set(self.trend_windows_hours) & set(self.windows_hours))
            if both:
                raise _KeyProblem(
                    "trend_windows_hours",
                    f"{both} already in windows_hours: their means are base features "
                    f"(<sensor>_mean_<W>h); a trend window must be another length",
                )
        if self.deviations and self.baseline_from_hours <= self.baseline_to_hours:
            raise _KeyProblem(
                "baseline_from_hours",
                f"baseline_from_hours {self.baseline_from_hours} must be greater than "
                f"baseline_to_hours {self.baseline_to_hours}: the baseline window is "
                "(t - from, t - to]",
            )
        return self


class Errors(_Strict):
    window_hours: int = Field(default=24, gt=0)
    # Empty: the fleet has no error log (no file or table is read).
    codes: list[str] = Field(default_factory=list)
    # Extra feature families, off unless switched on (docs/model.md, "Extra features").
    # Extra counts: per code, the count over (t - W, t] for each W.
    extra_counts: bool = False
    extra_windows_hours: list[int] = Field(default_factory=lambda: [72])
    # Hours since the last error of each code in (t - since_lookback_hours, t].
    hours_since_last: bool = False
    since_lookback_hours: int = Field(default=336, gt=0)

    @field_validator("codes")
    @classmethod
    def _codes(cls, value: list[str]) -> list[str]:
        return _check_names(value, "error code")

    @field_validator("extra_windows_hours")
    @classmethod
    def _extra_windows(cls, value: list[int]) -> list[int]:
        return _check_family_windows(value)

    @model_validator(mode="after")
    def _consistent(self) -> Errors:
        _check_off(self, "extra_counts", ["extra_windows_hours"])
        _check_off(self, "hours_since_last", ["since_lookback_hours"])
        for switch in ("extra_counts", "hours_since_last"):
            if getattr(self, switch) and not self.codes:
                raise _KeyProblem(switch, "the fleet has no error codes (errors.codes is empty)")
        if self.extra_counts and self.window_hours in self.extra_windows_hours:
            raise _KeyProblem(
                "extra_windows_hours",
                f"{self.window_hours} is window_hours: its counts are base features "
                "(<code>_count_<W>h); an extra window must be another length",
            )
        return self


class Maintenance(_Strict):
    # False: no maintenance log; the failures are then the only replacements.
    present: bool = False


class Components(_Strict):
    names: list[str] = Field(min_length=1)

    @field_validator("names")
    @classmethod
    def _names(cls, value: list[str]) -> list[str]:
        return _check_names(value, "component")


class Machines(_Strict):
    categorical: list[str] = Field(default_factory=list)
    numeric: list[MachineAttribute] = Field(default_factory=list)

    @field_validator("categorical")
    @classmethod
    def _categorical(cls, value: list[str]) -> list[str]:
        for name in value:
            _check_name(name)
        return value

    @field_validator("numeric", mode="before")
    @classmethod
    def _numeric(cls, value: Any) -> Any:
        # `numeric = ["age"]` is shorthand for `numeric = [{ name = "age" }]`.
        if isinstance(value, list):
            return [{"name": item} if isinstance(item, str) else item for item in value]
        return value

    @model_validator(mode="after")
    def _distinct(self) -> Machines:
        _check_unique([*self.categorical, *(a.name for a in self.numeric)], "machine attribute")
        return self


class Fleet(_Strict):
    """The shape of a fleet. Derived names (features, classes, score columns) are properties."""

    name: str = "fleet"
    horizon_hours: int = Field(default=168, gt=0)
    observation_hours: int = Field(default=12, gt=0)
    columns: Columns = Field(default_factory=Columns)
    telemetry: Telemetry
    errors: Errors = Field(default_factory=Errors)
    maintenance: Maintenance = Field(default_factory=Maintenance)
    components: Components
    machines: Machines = Field(default_factory=Machines)

    @field_validator("observation_hours")
    @classmethod
    def _observation(cls, value: int) -> int:
        if HOURS_PER_DAY % value:
            raise ValueError(f"observation_hours {value} must divide 24")
        return value

    @model_validator(mode="after")
    def _no_clashes(self) -> Fleet:
        names = [s.name for s in self.telemetry.sensors]
        # Sensors and machine attributes share the feature table.
        _check_unique(
            [*names, *self.machines.categorical, *(a.name for a in self.machines.numeric)],
            "name among sensors and machine attributes",
        )
        _check_unique(self.feature_columns, "feature column")
        return self

    @model_validator(mode="after")
    def _extras_fit_the_observations(self) -> Fleet:
        # The extras are built from per-observation buckets (t - observation_hours, t]: each of
        # their windows must be a whole number of buckets.
        every = self.observation_hours
        keys: list[tuple[str, list[int]]] = []
        t, e = self.telemetry, self.errors
        if t.trends:
            keys.append(("telemetry.trend_windows_hours", t.trend_windows_hours))
        if t.deviations:
            keys.append(("telemetry.deviation_windows_hours", t.deviation_windows_hours))
            keys.append(("telemetry.baseline_from_hours", [t.baseline_from_hours]))
            keys.append(("telemetry.baseline_to_hours", [t.baseline_to_hours]))
        if e.extra_counts:
            keys.append(("errors.extra_windows_hours", e.extra_windows_hours))
        for key, hours in keys:
            odd = [h for h in hours if h % every]
            if odd:
                raise _KeyProblem(
                    key,
                    f"{odd} not a multiple of observation_hours ({every}): extra windows are "
                    "built from whole observation periods",
                )
        return self

    # -- the fleet's tables -------------------------------------------------------------------

    @property
    def sensors(self) -> list[str]:
        return [sensor.name for sensor in self.telemetry.sensors]

    @property
    def has_errors(self) -> bool:
        return bool(self.errors.codes)

    @property
    def has_maintenance(self) -> bool:
        return self.maintenance.present

    @property
    def event_tables(self) -> tuple[str, ...]:
        """The daily tables this fleet has: telemetry and failures always."""
        tables = ["telemetry"]
        if self.has_errors:
            tables.append("errors")
        if self.has_maintenance:
            tables.append("maint")
        tables.append("failures")
        return tuple(tables)

    def source_columns(self, table: str) -> tuple[str, ...]:
        """The columns of a table as its source files or tables name them."""
        c = self.columns
        if table == "machines":
            return (
                c.machine,
                *self.machines.categorical,
                *(attribute.name for attribute in self.machines.numeric),
            )
        values = {
            "telemetry": tuple(self.sensors),
            "errors": (c.error,),
            "maint": (c.maintenance,),
            "failures": (c.failure,),
        }
        if table not in values:
            raise ValueError(f"unknown table {table!r}")
        return (c.time, c.machine, *values[table])

    # -- days the graph reads around a partition ----------------------------------------------

    @property
    def horizon_days(self) -> int:
        """H in whole days, rounded up: how many daily partitions labels look ahead."""
        return math.ceil(self.horizon_hours / HOURS_PER_DAY)

    @property
    def telemetry_reach_hours(self) -> int:
        """How far back of t telemetry features read: the longest window, extras included (the
        baseline's far edge when deviations are on)."""
        t = self.telemetry
        reach = [*t.windows_hours]
        if t.trends:
            reach.extend(t.trend_windows_hours)
        if t.deviations:
            reach.extend([*t.deviation_windows_hours, t.baseline_from_hours])
        return max(reach)

    @property
    def errors_reach_hours(self) -> int:
        """How far back of t error features read, extras included."""
        e = self.errors
        reach = [e.window_hours]
        if e.extra_counts:
            reach.extend(e.extra_windows_hours)
        if e.hours_since_last:
            reach.append(e.since_lookback_hours)
        return max(reach)

    @property
    def telemetry_lookback_days(self) -> int:
        return math.ceil(self.telemetry_reach_hours / HOURS_PER_DAY)

    @property
    def errors_lookback_days(self) -> int:
        return math.ceil(self.errors_reach_hours / HOURS_PER_DAY)

    @property
    def warm_up_hours(self) -> int:
        """Observations this close to the first telemetry cannot have full windows."""
        return self.telemetry_reach_hours

    # -- features, labels, classes ------------------------------------------------------------

    def has_sd(self, window_hours: int) -> bool:
        """A standard deviation needs two readings: a window that holds one gets none."""
        return window_hours * 60 >= 2 * self.telemetry.cadence_minutes

    @cached_property
    def base_telemetry_features(self) -> list[str]:
        """Mean and standard deviation of each sensor over each of `telemetry.windows_hours`."""
        return [
            f"{sensor}_{stat}_{window}h"
            for window in self.telemetry.windows_hours
            for sensor in self.sensors
            for stat in (("mean", "sd") if self.has_sd(window) else ("mean",))
        ]

    @cached_property
    def trend_features(self) -> list[str]:
        """Extra: mean and least-squares slope of each sensor per trend window (when on)."""
        if not self.telemetry.trends:
            return []
        return [
            f"{sensor}_{stat}_{window}h"
            for window in self.telemetry.trend_windows_hours
            for sensor in self.sensors
            for stat in ("mean", "slope")
        ]

    @cached_property
    def deviation_features(self) -> list[str]:
        """Extra: each sensor's mean per deviation window less its baseline mean (when on)."""
        if not self.telemetry.deviations:
            return []
        return [
            f"{sensor}_dev_{window}h"
            for window in self.telemetry.deviation_windows_hours
            for sensor in self.sensors
        ]

    @cached_property
    def telemetry_features(self) -> list[str]:
        return [*self.base_telemetry_features, *self.trend_features, *self.deviation_features]

    @cached_property
    def base_error_features(self) -> list[str]:
        """The count of each error code over `errors.window_hours`."""
        return [f"{code}_count_{self.errors.window_hours}h" for code in self.errors.codes]

    @cached_property
    def extra_error_count_features(self) -> list[str]:
        """Extra: the count of each code per extra error window (when on)."""
        if not self.errors.extra_counts:
            return []
        return [
            f"{code}_count_{window}h"
            for window in self.errors.extra_windows_hours
            for code in self.errors.codes
        ]

    @cached_property
    def hours_since_features(self) -> list[str]:
        """Extra: hours since the last error of each code within the lookback (when on)."""
        if not self.errors.hours_since_last:
            return []
        return [f"{code}_hours_since_last" for code in self.errors.codes]

    @cached_property
    def error_count_features(self) -> list[str]:
        """The error features that are counts (whole numbers, 0 without errors)."""
        return [*self.base_error_features, *self.extra_error_count_features]

    @cached_property
    def error_features(self) -> list[str]:
        return [*self.error_count_features, *self.hours_since_features]

    @cached_property
    def maintenance_features(self) -> list[str]:
        return [f"{name}_days_since_replacement" for name in self.components.names]

    @property
    def machine_numeric(self) -> list[str]:
        return [attribute.name for attribute in self.machines.numeric]

    @cached_property
    def numeric_features(self) -> list[str]:
        return [
            *self.telemetry_features,
            *self.error_features,
            *self.maintenance_features,
            *self.machine_numeric,
        ]

    @property
    def categorical_features(self) -> list[str]:
        return list(self.machines.categorical)

    @property
    def feature_columns(self) -> list[str]:
        return [*self.numeric_features, *self.categorical_features]

    def max_null_rate(self, feature: str) -> float:
        """The null-rate check's threshold of a feature column: standard deviations may miss
        (one reading in a window), days since replacement too (never replaced yet; always so
        for a fleet without a maintenance log until its first failure), and of the extras
        slopes, deviations (a little) and hours since the last error (any share); nothing else
        may."""
        if feature in self.maintenance_features:
            return 0.5 if self.has_maintenance else 1.0
        if "_sd_" in feature and feature in self.base_telemetry_features:
            return 0.05
        # A slope needs two readings, a deviation a reading in the baseline window (a machine's
        # first days miss it); no error within the lookback is the usual case.
        if feature in self.hours_since_features:
            return 1.0
        if feature in self.deviation_features or (
            "_slope_" in feature and feature in self.trend_features
        ):
            return 0.05
        return 0.0

    @property
    def component_names(self) -> list[str]:
        return list(self.components.names)

    @property
    def classes(self) -> int:
        """Label classes: 0 = no failure within the horizon, c = the c-th declared component."""
        return len(self.components.names) + 1

    @property
    def class_names(self) -> list[str]:
        return ["none", *self.components.names]

    @property
    def probability_columns(self) -> list[str]:
        return [f"prob_{name}" for name in self.class_names]

    @property
    def component_probability_columns(self) -> list[str]:
        return self.probability_columns[1:]

    @property
    def fails_columns(self) -> list[str]:
        return [f"fails_{name}" for name in self.components.names]

    # -- identity -----------------------------------------------------------------------------

    def __hash__(self) -> int:
        # Lists make pydantic's own hash fail; the shape's fingerprint identifies it.
        return hash(self.fingerprint)

    @cached_property
    def fingerprint(self) -> str:
        """A hash of everything that shapes the model's inputs and outputs (not the name).

        The keys of an extra feature family that is off are left out (they shape nothing), so
        a description without extras hashes as it did before the extras existed."""
        shape = self.model_dump(exclude={"name"})
        for (table, switch), keys in EXTRA_FAMILIES.items():
            if not shape[table][switch]:
                for key in (switch, *keys):
                    del shape[table][key]
        text = json.dumps(shape, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def names_text(names: Sequence[str]) -> str:
    """'comp1..comp4' for a numbered run of names, else 'a, b, c'."""
    match = [re.match(r"^(.*?)(\d+)$", name) for name in names]
    if len(names) > 2 and all(match):
        prefixes = {m.group(1) for m in match if m}
        numbers = [int(m.group(2)) for m in match if m]
        if len(prefixes) == 1 and numbers == list(range(numbers[0], numbers[0] + len(numbers))):
            return f"{names[0]}..{names[-1]}"
    return ", ".join(names)


def _error_text(path: Path | str, error: ValidationError) -> str:
    lines = []
    for problem in error.errors():
        location = [str(part) for part in problem["loc"]]
        message = problem["msg"].removeprefix("Value error, ")
        cause = problem.get("ctx", {}).get("error")
        if isinstance(cause, _KeyProblem):
            # A whole table's validator found it: name the key, not the table.
            location.append(cause.key)
            message = cause.message
        key = ".".join(location) or "(top level)"
        if problem["type"] == "extra_forbidden":
            message = "unknown key"
        elif problem["type"] == "missing":
            message = "required key is missing"
        lines.append(f"{key}: {message}")
    return f"fleet description {path}: " + "; ".join(lines)


def parse_fleet(text: str, origin: Path | str = "<text>") -> Fleet:
    """A fleet from TOML text; FleetDescriptionError names the origin and every bad key."""
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise FleetDescriptionError(f"fleet description {origin}: not TOML ({error})") from error
    try:
        return Fleet.model_validate(raw)
    except ValidationError as error:
        raise FleetDescriptionError(_error_text(origin, error)) from error


def fleet_from_json(text: str, origin: str = "PDM_FLEET_JSON") -> Fleet:
    """A fleet from the JSON form of a description (`Fleet.model_dump_json`), as the Databricks
    step launcher forwards it to a cluster that cannot read the description's file."""
    try:
        return Fleet.model_validate_json(text)
    except ValidationError as error:
        raise FleetDescriptionError(_error_text(origin, error)) from error


def load_fleet(path: Path | str | None = None) -> Fleet:
    """The fleet described by `path`, or the shipped default (the Azure data set's shape)."""
    chosen = Path(path) if path is not None else DEFAULT_FLEET_FILE
    try:
        text = chosen.read_text(encoding="utf-8")
    except OSError as error:
        raise FleetDescriptionError(
            f"fleet description {chosen}: cannot read it ({error})"
        ) from error
    return parse_fleet(text, chosen)


DEFAULT_FLEET = load_fleet()
