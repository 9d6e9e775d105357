"""Tests of the fleet simulator and of the landing layout it writes, for the default fleet (the
Azure data set's shape) and for fleet descriptions of other shapes."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
from collections import Counter
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from pdm_assets.core import filesystem
from pdm_assets.core.fleet import DEFAULT_FLEET, Fleet, parse_fleet
from pdm_assets.core.landing import (
    complete_days,
    complete_marker,
    day_dir,
    history_path,
    is_day_complete,
    landed_days,
    machines_path,
    read_marker,
    table_path,
    write_day,
)
from pdm_assets.simulator import fleet_simulator
from pdm_assets.simulator.fleet_simulator import (
    HAZARD_BASE,
    MISSING_TELEMETRY_RATE,
    SENSOR_MEAN,
    SENSOR_SD,
    FleetSpec,
    SimulatedFleet,
    baseline_error_rates,
    calibrate,
    main,
    simulate,
    write_landing,
)

SMALL = FleetSpec(machines=20, start=date(2015, 1, 1), days=30, seed=5)
TABLES = DEFAULT_FLEET.event_tables
SENSORS = DEFAULT_FLEET.sensors
COMPONENTS = DEFAULT_FLEET.component_names
ERRORS = DEFAULT_FLEET.errors.codes

# The public data set's yearly counts per 100 machines, and how far the simulation may stray.
FAILURE_TARGETS = {"comp1": 192.0, "comp2": 259.0, "comp3": 131.0, "comp4": 179.0}
FAILURE_BAND = 0.35
ERROR_TARGETS = {
    "error1": 1010.0,
    "error2": 988.0,
    "error3": 838.0,
    "error4": 727.0,
    "error5": 356.0,
}
ERROR_BAND = 0.25

# The CSV files SMALL lands with the default fleet, hashed (sorted paths, each path then its
# bytes), as the simulator before fleet descriptions wrote them (git 70daf67): the default
# fleet must keep landing exactly these bytes.
SMALL_CSV_SHA256 = "7b4fc068930f3bee4b1af762a463680b40c9a24a2e20e0a96ea586aafa0a441c"

DATETIME = re.compile(rb"^\d{4}-\d{2}-\d{2} \d{2}:00:00$")

# A fleet of another shape: 6 sensors (both, one or no bounds), one component, no error log,
# no maintenance log, no machine attributes, a reading every 30 minutes.
MINIMAL = parse_fleet(
    """
name = "minimal"
[telemetry]
cadence_minutes = 30
windows_hours = [12, 24]
sensors = [
  { name = "temp", min = -40, max = 120 },
  { name = "flow" },
  { name = "amps", min = 0 },
  { name = "rpm", max = 3000 },
  { name = "level", min = 0, max = 1 },
  { name = "hum" },
]
[components]
names = ["pump"]
""",
    "minimal",
)

# Two components, one error code (for the first component only), a maintenance log, its own
# column names and machine attributes, a reading every 2 hours. `volt` is an Azure name with
# a range its Azure calibration fits: it keeps the Azure figures.
PAIR = parse_fleet(
    """
name = "pair"
[columns]
machine = "unit"
time = "ts"
error = "code"
maintenance = "part_replaced"
failure = "part"
[telemetry]
cadence_minutes = 120
windows_hours = [24]
sensors = [
  { name = "temp", min = 0, max = 150 },
  { name = "flow" },
  { name = "volt", min = 0, max = 500 },
]
[errors]
codes = ["e1"]
[maintenance]
present = true
[components]
names = ["motor", "gearbox"]
[machines]
categorical = ["site"]
numeric = [
  { name = "capacity", min = 5, max = 9, integer = true },
  { name = "ratio", min = 0.2, max = 0.8 },
]
""",
    "pair",
)


def _files(root: Path) -> dict[str, bytes]:
    return {
        str(path.relative_to(root)): path.read_bytes()
        for path in sorted(root.rglob("*"))
        if path.is_file()
    }


def _read(path: str | Path, fleet: Fleet, table: str) -> pd.DataFrame:
    """A landed CSV as pandas, with the fleet's time column parsed and names kept as text."""
    columns = fleet.source_columns(table)
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    assert tuple(frame.columns) == columns, path
    for name in columns:
        if name == fleet.columns.time:
            frame[name] = pd.to_datetime(frame[name], format="%Y-%m-%d %H:%M:%S")
        elif name == fleet.columns.machine or name in fleet.sensors:
            frame[name] = pd.to_numeric(frame[name])
    return frame


def _concat(simulated: SimulatedFleet) -> dict[str, pd.DataFrame]:
    """Every daily table of a simulated fleet over all its days, as pandas."""
    per_day = [simulated.day_tables(day) for day in simulated.days]
    return {
        table: pa.concat_tables([tables[table] for tables in per_day]).to_pandas()
        for table in simulated.fleet.event_tables
    }


@pytest.fixture(scope="module")
def small_landing(tmp_path_factory: pytest.TempPathFactory) -> Path:
    landing = tmp_path_factory.mktemp("small") / "landing"
    write_landing(simulate(SMALL), landing)
    return landing


# --- determinism -------------------------------------------------------------------------------


def test_same_seed_gives_byte_identical_files(small_landing: Path, tmp_path: Path) -> None:
    again = tmp_path / "again"
    write_landing(simulate(SMALL, DEFAULT_FLEET), again)
    first, second = _files(small_landing), _files(again)
    assert sorted(first) == sorted(second)
    assert len(first) == 2 + SMALL.days * (len(TABLES) + 1)
    for name, payload in first.items():
        assert payload == second[name], name


def test_default_fleet_lands_the_bytes_it_always_did(small_landing: Path) -> None:
    digest = hashlib.sha256()
    for name, payload in _files(small_landing).items():
        if name.endswith(".csv"):
            digest.update(name.encode())
            digest.update(payload)
    assert digest.hexdigest() == SMALL_CSV_SHA256


def test_different_seed_gives_different_telemetry(small_landing: Path, tmp_path: Path) -> None:
    other = tmp_path / "other"
    spec = FleetSpec(machines=SMALL.machines, start=SMALL.start, days=SMALL.days, seed=6)
    day = SMALL.start + timedelta(days=3)
    write_landing(simulate(spec), other, [day])
    assert (
        Path(table_path(other, day, "telemetry")).read_bytes()
        != Path(table_path(small_landing, day, "telemetry")).read_bytes()
    )


def test_subset_of_days_equals_the_same_days_of_a_full_write(
    small_landing: Path, tmp_path: Path
) -> None:
    subset = [SMALL.start + timedelta(days=9), SMALL.start + timedelta(days=2)]
    partial = tmp_path / "partial"
    written = write_landing(simulate(SMALL), partial, subset)
    assert written == sorted(subset)
    assert complete_days(partial, TABLES) == sorted(subset)
    full = _files(small_landing)
    got = _files(partial)
    assert set(got) <= set(full)
    assert "machines.csv" in got and "history/maint.csv" in got
    for name, payload in got.items():
        assert payload == full[name], name


def test_out_of_range_day_writes_nothing(tmp_path: Path) -> None:
    landing = tmp_path / "landing"
    with pytest.raises(ValueError):
        write_landing(simulate(SMALL), landing, [SMALL.start + timedelta(days=SMALL.days)])
    assert not landing.exists()


# --- layout ------------------------------------------------------------------------------------


def test_every_day_has_all_files_headers_and_a_truthful_marker(small_landing: Path) -> None:
    days = [SMALL.start + timedelta(days=i) for i in range(SMALL.days)]
    assert complete_days(small_landing, TABLES) == days
    for day in days:
        assert is_day_complete(small_landing, day, TABLES)
        rows = read_marker(small_landing, day)
        assert rows is not None and set(rows) == set(TABLES)
        for table in TABLES:
            lines = Path(table_path(small_landing, day, table)).read_bytes().splitlines()
            assert lines[0].decode() == ",".join(DEFAULT_FLEET.source_columns(table))
            assert len(lines) - 1 == rows[table]
            stamps = {line.split(b",", 1)[0] for line in lines[1:]}
            assert all(DATETIME.match(stamp) for stamp in stamps), table
            assert all(stamp.startswith(day.isoformat().encode()) for stamp in stamps), table
    # No temporary file is left behind by the atomic writes.
    assert not [p for p in small_landing.rglob("*") if p.name.startswith(".")]
    machines = Path(machines_path(small_landing)).read_text().splitlines()
    assert machines[0] == "machineID,model,age"
    assert len(machines) == SMALL.machines + 1


def test_empty_tables_still_get_their_header(tmp_path: Path) -> None:
    day = date(2020, 2, 29)
    empty = {
        table: pa.table(
            {name: pa.array([], type=pa.string()) for name in DEFAULT_FLEET.source_columns(table)}
        )
        for table in TABLES
    }
    write_day(tmp_path, day, empty, DEFAULT_FLEET)
    assert is_day_complete(tmp_path, day, TABLES)
    for table in TABLES:
        header = ",".join(DEFAULT_FLEET.source_columns(table)) + "\n"
        assert Path(table_path(tmp_path, day, table)).read_text() == header
    marker = json.loads(Path(complete_marker(tmp_path, day)).read_text())
    assert marker["rows"]["telemetry"] == 0


def test_write_day_rejects_a_missing_table_or_wrong_columns(tmp_path: Path) -> None:
    day = date(2015, 1, 1)
    tables = simulate(SMALL).day_tables(day)
    with pytest.raises(ValueError):
        write_day(tmp_path, day, {k: v for k, v in tables.items() if k != "errors"}, DEFAULT_FLEET)
    with pytest.raises(ValueError):
        write_day(tmp_path, day, {**tables, "maint": tables["failures"]}, DEFAULT_FLEET)
    assert not is_day_complete(tmp_path, day, TABLES)


def test_is_day_complete_needs_every_table_and_the_marker(
    small_landing: Path, tmp_path: Path
) -> None:
    landing = tmp_path / "landing"
    shutil.copytree(small_landing, landing)
    no_table, no_marker = SMALL.start, SMALL.start + timedelta(days=1)
    Path(table_path(landing, no_table, "failures")).unlink()
    Path(complete_marker(landing, no_marker)).unlink()
    assert not is_day_complete(landing, no_table, TABLES)
    assert not is_day_complete(landing, no_marker, TABLES)
    assert is_day_complete(landing, SMALL.start + timedelta(days=2), TABLES)
    assert no_table not in complete_days(landing, TABLES)
    assert no_marker not in complete_days(landing, TABLES)
    assert len(complete_days(landing, TABLES)) == SMALL.days - 2


def test_a_day_landed_again_changes_only_its_own_fingerprint_read_from_listings(
    small_landing: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    landing = tmp_path / "landing"
    shutil.copytree(small_landing, landing)
    before = landed_days(landing, TABLES)
    assert sorted(before) == complete_days(small_landing, TABLES)
    # Each tick lists the landing folder and each day folder once, with the files' details:
    # no call per file (on an object store each is a request).
    calls: Counter[str] = Counter()
    real = filesystem.fs_and_path

    def counted(location: str) -> tuple[object, str]:
        fs, path = real(location)
        return _Counting(fs, calls), path

    monkeypatch.setattr(filesystem, "fs_and_path", counted)
    assert landed_days(landing, TABLES) == before
    monkeypatch.undo()
    assert calls == {"isdir": 1, "ls": 1 + len(before)}

    corrected = sorted(before)[1]
    telemetry = Path(table_path(landing, corrected, "telemetry"))
    telemetry.write_text(telemetry.read_text())  # written again, the same bytes
    stat = telemetry.stat()
    os.utime(telemetry, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    after = landed_days(landing, TABLES)
    assert [day for day in before if after[day] != before[day]] == [corrected]


class _Counting:
    """A file system that counts the calls made of it."""

    def __init__(self, fs: object, calls: Counter[str]) -> None:
        self._fs, self._calls = fs, calls

    def __getattr__(self, name: str) -> object:
        self._calls[name] += 1
        return getattr(self._fs, name)


def test_complete_days_ignores_junk(small_landing: Path, tmp_path: Path) -> None:
    landing = tmp_path / "landing"
    shutil.copytree(small_landing, landing)
    for junk in ("date=garbage", "date=2015-13-01", "date=20150105", "other", "_tmp"):
        (landing / junk).mkdir()
        (landing / junk / "_COMPLETE").write_text("{}")
    (landing / "date=2015-03-01").write_text("a file, not a folder")
    half = Path(day_dir(landing, date(2016, 1, 1)))
    half.mkdir()
    (half / "telemetry.csv").write_text(",".join(DEFAULT_FLEET.source_columns("telemetry")) + "\n")
    assert complete_days(landing, TABLES) == complete_days(small_landing, TABLES)
    assert complete_days(tmp_path / "missing", TABLES) == []


def test_history_gives_every_component_an_age(small_landing: Path) -> None:
    history = _read(history_path(small_landing, "maint"), DEFAULT_FLEET, "maint")
    start = pd.Timestamp(SMALL.start)
    assert (history["datetime"] < start).all()
    assert (history["datetime"] >= start - pd.Timedelta(days=181)).all()
    assert (history["datetime"].dt.hour == 6).all()
    covered = history.groupby(["machineID", "comp"]).size()
    assert len(covered) == SMALL.machines * len(COMPONENTS)


def test_cli_writes_only_the_requested_days(tmp_path: Path) -> None:
    landing = tmp_path / "cli"
    args = ["--landing", str(landing), "--machines", "4", "--start", "2016-02-01", "--days", "5"]
    assert main([*args, "--seed", "3", "--day", "2016-02-03", "--day", "2016-02-02"]) == 0
    assert complete_days(landing, TABLES) == [date(2016, 2, 2), date(2016, 2, 3)]
    assert main([*args, "--day", "2016-03-01"]) == 2


def test_spec_rejects_an_empty_fleet() -> None:
    with pytest.raises(ValueError):
        FleetSpec(machines=0)
    with pytest.raises(ValueError):
        FleetSpec(days=0)


# --- calibration -------------------------------------------------------------------------------


def test_default_fleet_keeps_the_azure_calibration() -> None:
    calibration = calibrate(DEFAULT_FLEET)
    assert calibration.sensor_mean == SENSOR_MEAN
    assert calibration.sensor_sd == SENSOR_SD
    assert calibration.drift_sign == (1.0, -1.0, 1.0, 1.0)
    assert calibration.hazard_base == HAZARD_BASE
    assert calibration.visit_interval_days == 15
    assert calibration.readings_per_day == 24
    # The public totals minus the warning bursts of comp1..comp4 and of the false drifts.
    expected = [1010 - 307.2 - 37.5, 988 - 414.4 - 37.5, 838 - 209.6 - 37.5, 727 - 286.4 - 37.5]
    np.testing.assert_allclose(baseline_error_rates(), [*expected, 356.0])


def test_other_shapes_get_the_generic_calibration() -> None:
    calibration = calibrate(MINIMAL)
    # Both bounds: the middle, range / 30; one bound: 10 sd inside it; none: 100 (sd 10).
    assert calibration.sensor_mean == (40.0, 100.0, 100.0, 2900.0, 0.5, 100.0)
    np.testing.assert_allclose(calibration.sensor_sd, [160 / 30, 10, 10, 10, 1 / 30, 10])
    assert calibration.drift_sign == (1.0, -1.0, 1.0, -1.0, 1.0, -1.0)
    assert calibration.visit_interval_days is None
    assert calibration.readings_per_day == 48
    assert calibration.errors_per_100_machine_years == ()
    # Without maintenance the hazard base is lower than any Azure one: no visit renews parts.
    assert 0 < calibration.hazard_base[0] < min(HAZARD_BASE)
    pair = calibrate(PAIR)
    assert pair.sensor_mean[2] == 170.0 and pair.sensor_sd[2] == 15.0  # the Azure volt
    assert pair.visit_interval_days == 30  # each of 2 components due about every 60 days
    assert [pair.drift_sensor(c) for c in range(2)] == [0, 1]
    assert baseline_error_rates(PAIR).shape == (1,)
    # A declared range the Azure figures do not fit wins over them.
    narrow = parse_fleet(
        """
[telemetry]
sensors = [{ name = "volt", min = 160, max = 190 }]
[components]
names = ["comp1"]
"""
    )
    assert calibrate(narrow).sensor_mean == (175.0,)
    assert calibrate(narrow).sensor_sd == (1.0,)


# --- other shapes ------------------------------------------------------------------------------

TINY = FleetSpec(machines=5, start=date(2016, 3, 1), days=4, seed=9)


@pytest.fixture(scope="module")
def minimal_landing(tmp_path_factory: pytest.TempPathFactory) -> Path:
    landing = tmp_path_factory.mktemp("minimal") / "landing"
    write_landing(simulate(TINY, MINIMAL), landing)
    return landing


def test_minimal_shape_lands_only_its_tables(minimal_landing: Path) -> None:
    assert MINIMAL.event_tables == ("telemetry", "failures")
    names = set(_files(minimal_landing))
    expected = {"machines.csv"}
    for day in (TINY.start + timedelta(days=i) for i in range(TINY.days)):
        folder = f"date={day.isoformat()}"
        expected |= {f"{folder}/telemetry.csv", f"{folder}/failures.csv", f"{folder}/_COMPLETE"}
    # No history, no errors.csv, no maint.csv.
    assert names == expected
    assert not Path(history_path(minimal_landing, "maint")).exists()
    machines = Path(machines_path(minimal_landing)).read_text().splitlines()
    assert machines == ["machineID", *(str(i) for i in range(1, TINY.machines + 1))]


def test_minimal_shape_headers_markers_and_cadence(minimal_landing: Path) -> None:
    days = complete_days(minimal_landing, MINIMAL.event_tables)
    assert days == [TINY.start + timedelta(days=i) for i in range(TINY.days)]
    for day in days:
        rows = read_marker(minimal_landing, day)
        assert rows is not None and set(rows) == {"telemetry", "failures"}
        for table in MINIMAL.event_tables:
            lines = Path(table_path(minimal_landing, day, table)).read_text().splitlines()
            assert lines[0] == ",".join(MINIMAL.source_columns(table))
            assert len(lines) - 1 == rows[table]
        telemetry = _read(table_path(minimal_landing, day, "telemetry"), MINIMAL, "telemetry")
        # A reading every 30 minutes from 00:00, on whole seconds, and only a few missing.
        stamps = telemetry["datetime"]
        assert (stamps.dt.floor("D") == pd.Timestamp(day)).all()
        assert set(stamps.dt.minute) == {0, 30}
        assert (stamps.dt.second == 0).all()
        assert TINY.machines * 48 - 3 <= len(telemetry) <= TINY.machines * 48
        assert not telemetry.duplicated(["datetime", "machineID"]).any()


def test_minimal_shape_values_and_failures(minimal_landing: Path) -> None:
    telemetry = pd.concat(
        _read(table_path(minimal_landing, day, "telemetry"), MINIMAL, "telemetry")
        for day in complete_days(minimal_landing, MINIMAL.event_tables)
    )
    for sensor in MINIMAL.telemetry.sensors:
        values = telemetry[sensor.name]
        assert values.notna().all()
        assert sensor.min is None or values.min() >= sensor.min, sensor.name
        assert sensor.max is None or values.max() <= sensor.max, sensor.name
    # Generic levels: an unbounded sensor reads about 100 (sd 10), temp about 40 (sd 5.3).
    for name in ("flow", "hum"):
        assert abs(telemetry[name].mean() - 100.0) < 3.0, name
        assert 8.0 < telemetry[name].std() < 13.0, name
    assert abs(telemetry["temp"].mean() - 40.0) < 2.0
    assert abs(telemetry["rpm"].mean() - 2900.0) < 3.0
    simulated = simulate(FleetSpec(machines=40, days=120, seed=2), MINIMAL)
    failures = _concat(simulated)["failures"]
    assert len(failures) > 5
    assert set(failures["failure"]) == {"pump"}
    # Without a maintenance log no failure goes unlogged: all at 06:00.
    assert (failures["datetime"].dt.hour == 6).all()


def test_values_are_clipped_into_declared_ranges(monkeypatch: pytest.MonkeyPatch) -> None:
    # A range only 2 sd wide: many raw readings fall outside it and must be clipped.
    monkeypatch.setattr(fleet_simulator, "BOUNDED_RANGE_SDS", 2.0)
    telemetry = _concat(simulate(TINY, MINIMAL))["telemetry"]
    for name, low, high in (("temp", -40.0, 120.0), ("level", 0.0, 1.0)):
        values = telemetry[name]
        assert values.between(low, high).all(), name
        assert (values == low).any() and (values == high).any(), name
    assert (telemetry["amps"] >= 0).all()


def test_pair_shape_names_columns_and_attributes(tmp_path: Path) -> None:
    spec = FleetSpec(machines=30, start=date(2015, 1, 1), days=120, seed=4)
    simulated = simulate(spec, PAIR)
    landing = tmp_path / "pair"
    write_landing(simulated, landing)
    assert set(read_marker(landing, spec.start) or {}) == {
        "telemetry",
        "errors",
        "maint",
        "failures",
    }
    frames = {
        table: pd.concat(
            _read(table_path(landing, day, table), PAIR, table) for day in simulated.days
        )
        for table in PAIR.event_tables
    }
    # Failures and replacements carry only the fleet's components, both of them.
    assert set(frames["failures"]["part"]) == {"motor", "gearbox"}
    assert set(frames["maint"]["part_replaced"]) == {"motor", "gearbox"}
    assert set(frames["errors"]["code"]) == {"e1"}
    history = _read(history_path(landing, "maint"), PAIR, "maint")
    assert set(history["part_replaced"]) == {"motor", "gearbox"}
    assert (frames["telemetry"]["ts"].dt.hour % 2 == 0).all()
    assert (frames["telemetry"]["ts"].dt.minute == 0).all()
    machines = pd.read_csv(machines_path(landing))
    assert list(machines.columns) == ["unit", "site", "capacity", "ratio"]
    assert machines["unit"].tolist() == list(range(1, spec.machines + 1))
    assert set(machines["site"]) <= {"site1", "site2", "site3", "site4"}
    assert machines["site"].nunique() > 1
    assert machines["capacity"].between(5, 9).all()
    assert (machines["capacity"] == machines["capacity"].round()).all()
    assert machines["capacity"].nunique() > 1
    assert machines["ratio"].between(0.2, 0.8).all()


# --- rates and signal, over 200 machines x 365 days ------------------------------------------

YEAR = FleetSpec(machines=200, start=date(2015, 1, 1), days=365, seed=11)


@pytest.fixture(scope="module")
def year() -> tuple[SimulatedFleet, dict[str, pd.DataFrame]]:
    simulated = simulate(YEAR)
    return simulated, _concat(simulated)


def _per_100_machine_years(counts: pd.Series) -> pd.Series:
    return counts / (YEAR.machines * YEAR.days / 365.0 / 100.0)


def test_failure_rates_per_component(year: tuple[SimulatedFleet, dict[str, pd.DataFrame]]) -> None:
    rates = _per_100_machine_years(year[1]["failures"]["failure"].value_counts())
    for comp, target in FAILURE_TARGETS.items():
        assert (1 - FAILURE_BAND) * target < rates[comp] < (1 + FAILURE_BAND) * target, comp


def test_error_rates_per_type(year: tuple[SimulatedFleet, dict[str, pd.DataFrame]]) -> None:
    rates = _per_100_machine_years(year[1]["errors"]["errorID"].value_counts())
    assert set(rates.index) == set(ERRORS)
    for error, target in ERROR_TARGETS.items():
        assert (1 - ERROR_BAND) * target < rates[error] < (1 + ERROR_BAND) * target, error


def test_failures_and_maintenance_log(year: tuple[SimulatedFleet, dict[str, pd.DataFrame]]) -> None:
    failures, maint = year[1]["failures"], year[1]["maint"]
    joined = failures.merge(maint.rename(columns={"comp": "failure"}), how="left", indicator=True)
    unlogged = joined["_merge"] == "left_only"
    assert 0.0 < unlogged.mean() < 0.10
    # The failures missing from the log are the ones at 03:00; the rest are at 06:00.
    assert (joined.loc[unlogged, "datetime"].dt.hour == 3).all()
    assert (joined.loc[~unlogged, "datetime"].dt.hour == 6).all()
    same_hour = failures.groupby(["datetime", "machineID"]).size()
    assert (same_hour == 2).sum() > 0
    # Independent failures meet at one hour for ~2 % of failures; the dragged second component
    # of ~5 % of failures brings the share of failures in pairs to ~10 %.
    assert same_hour[same_hour > 1].sum() / len(failures) > 0.05
    assert not failures.duplicated().any()
    assert not maint.duplicated().any()
    assert (maint["datetime"].dt.hour == 6).all()
    # A visit every 15 days (some skipped) plus the failure replacements.
    per_machine_year = len(maint) / (YEAR.machines * YEAR.days / 365.0)
    assert 20 < per_machine_year < 40


def test_telemetry_is_hourly_with_few_missing_hours(
    year: tuple[SimulatedFleet, dict[str, pd.DataFrame]],
) -> None:
    simulated, frames = year
    telemetry = frames["telemetry"]
    slots = YEAR.machines * YEAR.days * 24
    assert len(telemetry) == slots - simulated.missing_readings
    assert 0 < simulated.missing_readings < 3 * MISSING_TELEMETRY_RATE * slots
    assert not telemetry.duplicated(["datetime", "machineID"]).any()
    assert (telemetry["datetime"].dt.minute == 0).all()
    targets = {"volt": 170.0, "rotate": 446.0, "pressure": 100.0, "vibration": 40.0}
    for k, sensor in enumerate(SENSORS):
        assert abs(telemetry[sensor].mean() - targets[sensor]) < 0.2 * SENSOR_SD[k]
        assert 0.9 * SENSOR_SD[k] < telemetry[sensor].std() < 1.25 * SENSOR_SD[k]


def test_machine_register(year: tuple[SimulatedFleet, dict[str, pd.DataFrame]]) -> None:
    machines = year[0].machines.to_pandas()
    assert machines["machineID"].tolist() == list(range(1, YEAR.machines + 1))
    shares = machines["model"].value_counts()
    assert set(shares.index) <= {"model1", "model2", "model3", "model4"}
    assert set(shares.index[:2]) == {"model3", "model4"}
    assert machines["age"].between(0, 20).all()


def _grid(
    telemetry: pd.DataFrame, fleet: Fleet, spec: FleetSpec, sensor: str
) -> tuple[np.ndarray, pd.Timedelta]:
    """The sensor as a (machine, reading) array, NaN where a reading is missing."""
    cadence = pd.Timedelta(minutes=fleet.telemetry.cadence_minutes)
    c = fleet.columns
    slot = ((telemetry[c.time] - pd.Timestamp(spec.start)) // cadence).to_numpy()
    per_day = pd.Timedelta(days=1) // cadence
    grid = np.full((spec.machines + 1, spec.days * per_day), np.nan)
    grid[telemetry[c.machine].to_numpy(), slot] = telemetry[sensor].to_numpy()
    return grid, cadence


def _drift_shift(
    frames: dict[str, pd.DataFrame], fleet: Fleet, spec: FleetSpec, component: str, sensor: str
) -> float:
    """How far, in sd, the sensor's mean over the 24 h before the component's failures lies
    from its mean over all readings."""
    telemetry, failures = frames["telemetry"], frames["failures"]
    c = fleet.columns
    grid, cadence = _grid(telemetry, fleet, spec, sensor)
    events = failures[failures[c.failure] == component]
    ends = ((events[c.time] - pd.Timestamp(spec.start)) // cadence).to_numpy()
    width = pd.Timedelta(hours=24) // cadence
    keep = ends >= width
    assert keep.sum() >= 5, (component, int(keep.sum()))
    machine = events[c.machine].to_numpy()[keep]
    window = ends[keep][:, None] - np.arange(1, width + 1)[None, :]
    before = np.nanmean(grid[machine[:, None], window])
    return float((before - telemetry[sensor].mean()) / telemetry[sensor].std())


def _hours(frame: pd.DataFrame, time: str = "datetime", start: date = YEAR.start) -> np.ndarray:
    return ((frame[time] - pd.Timestamp(start)) // pd.Timedelta(hours=1)).to_numpy()


def test_sensor_drifts_before_failures(
    year: tuple[SimulatedFleet, dict[str, pd.DataFrame]],
) -> None:
    for comp, sensor in zip(COMPONENTS, SENSORS, strict=True):
        shift = _drift_shift(year[1], DEFAULT_FLEET, YEAR, comp, sensor)
        assert abs(shift) > 1.0, (comp, sensor, shift)


# Per shape: (component, sensor that drifts before its failures, direction), and a sensor no
# component drifts (only false drifts touch it).
DRIFTS = {
    "minimal": ([("pump", "temp", 1.0)], "hum"),
    "pair": ([("motor", "temp", 1.0), ("gearbox", "flow", -1.0)], "volt"),
}


@pytest.mark.parametrize("fleet", [MINIMAL, PAIR], ids=lambda fleet: fleet.name)
def test_precursor_drift_in_other_shapes(fleet: Fleet) -> None:
    spec = FleetSpec(machines=40, start=date(2015, 1, 1), days=240, seed=13)
    frames = _concat(simulate(spec, fleet))
    drifting, quiet = DRIFTS[fleet.name]
    for component, sensor, sign in drifting:
        shift = _drift_shift(frames, fleet, spec, component, sensor)
        # ~80 % of failures warned, their ramps at 2-3 sd near the end: about 1.7 sd on average.
        assert sign * shift > 1.0, (component, sensor, shift)
        assert abs(_drift_shift(frames, fleet, spec, component, quiet)) < 0.4, (component, quiet)


def test_matching_errors_cluster_before_failures_in_another_shape() -> None:
    spec = FleetSpec(machines=40, start=date(2015, 1, 1), days=240, seed=13)
    frames = _concat(simulate(spec, PAIR))
    errors, failures = frames["errors"], frames["failures"]
    counts = np.zeros((spec.machines + 1, spec.days * 24 + 1))
    np.add.at(counts, (errors["unit"].to_numpy(), _hours(errors, "ts", spec.start)), 1.0)
    per_hour_overall = len(errors) / (spec.machines * spec.days * 24)
    ratios = {}
    for component in ("motor", "gearbox"):
        events = failures[failures["part"] == component]
        ends = _hours(events, "ts", spec.start)
        keep = ends >= 72
        machine = events["unit"].to_numpy()[keep]
        window = ends[keep][:, None] - np.arange(1, 73)[None, :]
        ratios[component] = counts[machine[:, None], window].mean() / per_hour_overall
    # e1 is the code of the first component; the second has none, so no burst before it.
    assert ratios["motor"] > 10, ratios
    assert ratios["gearbox"] < 3, ratios


def test_matching_errors_cluster_before_failures(
    year: tuple[SimulatedFleet, dict[str, pd.DataFrame]],
) -> None:
    errors, failures = year[1]["errors"], year[1]["failures"]
    slots = YEAR.machines * YEAR.days * 24
    for number, comp in enumerate(COMPONENTS, start=1):
        matching = errors[errors["errorID"] == f"error{number}"]
        counts = np.zeros((YEAR.machines + 1, YEAR.days * 24 + 1))
        np.add.at(counts, (matching["machineID"].to_numpy(), _hours(matching)), 1.0)
        events = failures[failures["failure"] == comp]
        ends = _hours(events)
        keep = ends >= 72
        machine = events["machineID"].to_numpy()[keep]
        window = ends[keep][:, None] - np.arange(1, 73)[None, :]
        per_hour_before = counts[machine[:, None], window].mean()
        per_hour_overall = len(matching) / slots
        assert per_hour_before > 10 * per_hour_overall, comp


def test_hazard_grows_with_days_since_replacement(
    year: tuple[SimulatedFleet, dict[str, pd.DataFrame]],
) -> None:
    simulated, frames = year
    assert simulated.history_maint is not None
    log = pd.concat([simulated.history_maint.to_pandas(), frames["maint"]], ignore_index=True)
    log = log.astype({"datetime": "datetime64[ns]"}).sort_values("datetime")
    # Component ages at 06:00 of every machine-day, from the maintenance log alone.
    grid = pd.MultiIndex.from_product(
        [
            pd.date_range(YEAR.start, periods=YEAR.days, freq="D") + pd.Timedelta(hours=6),
            range(1, YEAR.machines + 1),
            COMPONENTS,
        ],
        names=["datetime", "machineID", "comp"],
    ).to_frame(index=False)
    grid = grid.astype({"datetime": "datetime64[ns]", "machineID": "int64"})
    aged = pd.merge_asof(
        grid.sort_values("datetime"),
        log.rename(columns={"datetime": "replaced"}),
        left_on="datetime",
        right_on="replaced",
        by=["machineID", "comp"],
        allow_exact_matches=False,
    )
    aged["age"] = (aged["datetime"] - aged["replaced"]).dt.days
    failed = frames["failures"].astype({"datetime": "datetime64[ns]"})
    failed["datetime"] = failed["datetime"].dt.floor("D") + pd.Timedelta(hours=6)
    aged = aged.merge(failed.rename(columns={"failure": "comp"}).assign(failed=True), how="left")
    aged["failed"] = aged["failed"].eq(True)
    young = aged.loc[aged["age"] < 30, "failed"].mean()
    old = aged.loc[aged["age"] >= 60, "failed"].mean()
    assert old > 2 * young, (old, young)


def test_cli_simulates_a_described_fleet(tmp_path: Path) -> None:
    description = tmp_path / "minimal.toml"
    description.write_text(
        """
[telemetry]
cadence_minutes = 30
sensors = [{ name = "temp", min = -40, max = 120 }, { name = "flow" }]
[components]
names = ["pump"]
""",
        encoding="utf-8",
    )
    landing = tmp_path / "cli"
    args = ["--landing", str(landing), "--machines", "3", "--start", "2016-02-01", "--days", "2"]
    assert main([*args, "--fleet", str(description)]) == 0
    tables = ("telemetry", "failures")
    assert complete_days(landing, tables) == [date(2016, 2, 1), date(2016, 2, 2)]
    day = Path(day_dir(landing, date(2016, 2, 1)))
    assert sorted(p.name for p in day.iterdir()) == ["_COMPLETE", "failures.csv", "telemetry.csv"]
    header = Path(table_path(landing, date(2016, 2, 1), "telemetry")).read_text().splitlines()[0]
    assert header == "datetime,machineID,temp,flow"
    description.write_text("[telemetry]\nsensors = []\n", encoding="utf-8")
    assert main([*args, "--fleet", str(description)]) == 2
    assert main([*args, "--fleet", str(tmp_path / "missing.toml")]) == 2
