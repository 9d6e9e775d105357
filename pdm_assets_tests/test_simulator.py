"""Tests of the fleet simulator and of the landing layout it writes."""

from __future__ import annotations

import json
import re
import shutil
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from pdm_assets.landing import (
    CSV_HEADERS,
    DAILY_TABLES,
    complete_days,
    complete_marker,
    day_dir,
    history_path,
    is_day_complete,
    machines_path,
    read_csv,
    read_marker,
    table_path,
    write_day,
)
from pdm_assets.simulator import (
    COMPONENTS,
    ERRORS,
    MISSING_TELEMETRY_RATE,
    SENSOR_SD,
    SENSORS,
    Fleet,
    FleetSpec,
    main,
    simulate,
    write_landing,
)

SMALL = FleetSpec(machines=20, start=date(2015, 1, 1), days=30, seed=5)

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

DATETIME = re.compile(rb"^\d{4}-\d{2}-\d{2} \d{2}:00:00$")


def _files(root: Path) -> dict[str, bytes]:
    return {
        str(path.relative_to(root)): path.read_bytes()
        for path in sorted(root.rglob("*"))
        if path.is_file()
    }


@pytest.fixture(scope="module")
def small_landing(tmp_path_factory: pytest.TempPathFactory) -> Path:
    landing = tmp_path_factory.mktemp("small") / "landing"
    write_landing(simulate(SMALL), landing)
    return landing


# --- determinism -------------------------------------------------------------------------------


def test_same_seed_gives_byte_identical_files(small_landing: Path, tmp_path: Path) -> None:
    again = tmp_path / "again"
    write_landing(simulate(SMALL), again)
    first, second = _files(small_landing), _files(again)
    assert sorted(first) == sorted(second)
    assert len(first) == 2 + SMALL.days * (len(DAILY_TABLES) + 1)
    for name, payload in first.items():
        assert payload == second[name], name


def test_different_seed_gives_different_telemetry(small_landing: Path, tmp_path: Path) -> None:
    other = tmp_path / "other"
    spec = FleetSpec(machines=SMALL.machines, start=SMALL.start, days=SMALL.days, seed=6)
    day = SMALL.start + timedelta(days=3)
    write_landing(simulate(spec), other, [day])
    assert (
        table_path(other, day, "telemetry").read_bytes()
        != table_path(small_landing, day, "telemetry").read_bytes()
    )


def test_subset_of_days_equals_the_same_days_of_a_full_write(
    small_landing: Path, tmp_path: Path
) -> None:
    subset = [SMALL.start + timedelta(days=9), SMALL.start + timedelta(days=2)]
    partial = tmp_path / "partial"
    written = write_landing(simulate(SMALL), partial, subset)
    assert written == sorted(subset)
    assert complete_days(partial) == sorted(subset)
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
    assert complete_days(small_landing) == days
    for day in days:
        assert is_day_complete(small_landing, day)
        rows = read_marker(small_landing, day)
        assert set(rows) == set(DAILY_TABLES)
        for table in DAILY_TABLES:
            lines = table_path(small_landing, day, table).read_bytes().splitlines()
            assert lines[0].decode() == ",".join(CSV_HEADERS[table])
            assert len(lines) - 1 == rows[table]
            stamps = {line.split(b",", 1)[0] for line in lines[1:]}
            assert all(DATETIME.match(stamp) for stamp in stamps), table
            assert all(stamp.startswith(day.isoformat().encode()) for stamp in stamps), table
    # No temporary file is left behind by the atomic writes.
    assert not [p for p in small_landing.rglob("*") if p.name.startswith(".")]
    machines = machines_path(small_landing).read_text().splitlines()
    assert machines[0] == "machineID,model,age"
    assert len(machines) == SMALL.machines + 1


def test_empty_tables_still_get_their_header(tmp_path: Path) -> None:
    day = date(2020, 2, 29)
    empty = {
        table: pa.table({name: pa.array([], type=pa.string()) for name in CSV_HEADERS[table]})
        for table in DAILY_TABLES
    }
    write_day(tmp_path, day, empty)
    assert is_day_complete(tmp_path, day)
    for table in DAILY_TABLES:
        assert table_path(tmp_path, day, table).read_text() == ",".join(CSV_HEADERS[table]) + "\n"
    assert json.loads(complete_marker(tmp_path, day).read_text())["rows"]["telemetry"] == 0


def test_write_day_rejects_a_missing_table_or_wrong_columns(tmp_path: Path) -> None:
    day = date(2015, 1, 1)
    tables = simulate(SMALL).day_tables(day)
    with pytest.raises(ValueError):
        write_day(tmp_path, day, {k: v for k, v in tables.items() if k != "errors"})
    with pytest.raises(ValueError):
        write_day(tmp_path, day, {**tables, "maint": tables["failures"]})
    assert not is_day_complete(tmp_path, day)


def test_is_day_complete_needs_every_table_and_the_marker(
    small_landing: Path, tmp_path: Path
) -> None:
    landing = tmp_path / "landing"
    shutil.copytree(small_landing, landing)
    no_table, no_marker = SMALL.start, SMALL.start + timedelta(days=1)
    table_path(landing, no_table, "failures").unlink()
    complete_marker(landing, no_marker).unlink()
    assert not is_day_complete(landing, no_table)
    assert not is_day_complete(landing, no_marker)
    assert is_day_complete(landing, SMALL.start + timedelta(days=2))
    assert no_table not in complete_days(landing)
    assert no_marker not in complete_days(landing)
    assert len(complete_days(landing)) == SMALL.days - 2


def test_complete_days_ignores_junk(small_landing: Path, tmp_path: Path) -> None:
    landing = tmp_path / "landing"
    shutil.copytree(small_landing, landing)
    for junk in ("date=garbage", "date=2015-13-01", "date=20150105", "other", "_tmp"):
        (landing / junk).mkdir()
        (landing / junk / "_COMPLETE").write_text("{}")
    (landing / "date=2015-03-01").write_text("a file, not a folder")
    half = day_dir(landing, date(2016, 1, 1))
    half.mkdir()
    (half / "telemetry.csv").write_text(",".join(CSV_HEADERS["telemetry"]) + "\n")
    assert complete_days(landing) == complete_days(small_landing)
    assert complete_days(tmp_path / "missing") == []


def test_history_gives_every_component_an_age(small_landing: Path) -> None:
    history = read_csv(history_path(small_landing, "maint"), "maint").to_pandas()
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
    assert complete_days(landing) == [date(2016, 2, 2), date(2016, 2, 3)]
    assert main([*args, "--day", "2016-03-01"]) == 2


def test_spec_rejects_an_empty_fleet() -> None:
    with pytest.raises(ValueError):
        FleetSpec(machines=0)
    with pytest.raises(ValueError):
        FleetSpec(days=0)


# --- rates and signal, over 200 machines x 365 days ------------------------------------------

YEAR = FleetSpec(machines=200, start=date(2015, 1, 1), days=365, seed=11)


@pytest.fixture(scope="module")
def year() -> tuple[Fleet, dict[str, pd.DataFrame]]:
    fleet = simulate(YEAR)
    per_day = [fleet.day_tables(day) for day in fleet.days]
    frames = {
        table: pa.concat_tables([tables[table] for tables in per_day]).to_pandas()
        for table in DAILY_TABLES
    }
    return fleet, frames


def _per_100_machine_years(counts: pd.Series) -> pd.Series:
    return counts / (YEAR.machines * YEAR.days / 365.0 / 100.0)


def test_failure_rates_per_component(year: tuple[Fleet, dict[str, pd.DataFrame]]) -> None:
    rates = _per_100_machine_years(year[1]["failures"]["failure"].value_counts())
    for comp, target in FAILURE_TARGETS.items():
        assert (1 - FAILURE_BAND) * target < rates[comp] < (1 + FAILURE_BAND) * target, comp


def test_error_rates_per_type(year: tuple[Fleet, dict[str, pd.DataFrame]]) -> None:
    rates = _per_100_machine_years(year[1]["errors"]["errorID"].value_counts())
    assert set(rates.index) == set(ERRORS)
    for error, target in ERROR_TARGETS.items():
        assert (1 - ERROR_BAND) * target < rates[error] < (1 + ERROR_BAND) * target, error


def test_failures_and_maintenance_log(year: tuple[Fleet, dict[str, pd.DataFrame]]) -> None:
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
    year: tuple[Fleet, dict[str, pd.DataFrame]],
) -> None:
    fleet, frames = year
    telemetry = frames["telemetry"]
    slots = YEAR.machines * YEAR.days * 24
    assert len(telemetry) == slots - fleet.missing_hours
    assert 0 < fleet.missing_hours < 3 * MISSING_TELEMETRY_RATE * slots
    assert not telemetry.duplicated(["datetime", "machineID"]).any()
    assert (telemetry["datetime"].dt.minute == 0).all()
    targets = {"volt": 170.0, "rotate": 446.0, "pressure": 100.0, "vibration": 40.0}
    for k, sensor in enumerate(SENSORS):
        assert abs(telemetry[sensor].mean() - targets[sensor]) < 0.2 * SENSOR_SD[k]
        assert 0.9 * SENSOR_SD[k] < telemetry[sensor].std() < 1.25 * SENSOR_SD[k]


def test_machine_register(year: tuple[Fleet, dict[str, pd.DataFrame]]) -> None:
    machines = year[0].machines.to_pandas()
    assert machines["machineID"].tolist() == list(range(1, YEAR.machines + 1))
    shares = machines["model"].value_counts()
    assert set(shares.index) <= {"model1", "model2", "model3", "model4"}
    assert set(shares.index[:2]) == {"model3", "model4"}
    assert machines["age"].between(0, 20).all()


def _hourly_grid(telemetry: pd.DataFrame, sensor: str) -> np.ndarray:
    """The sensor as a (machine, hour) array, NaN where an hour is missing."""
    hours = (telemetry["datetime"] - pd.Timestamp(YEAR.start)) // pd.Timedelta(hours=1)
    grid = np.full((YEAR.machines + 1, YEAR.days * 24), np.nan)
    grid[telemetry["machineID"].to_numpy(), hours.to_numpy()] = telemetry[sensor].to_numpy()
    return grid


def _hours(frame: pd.DataFrame) -> np.ndarray:
    return ((frame["datetime"] - pd.Timestamp(YEAR.start)) // pd.Timedelta(hours=1)).to_numpy()


def test_sensor_drifts_before_failures(year: tuple[Fleet, dict[str, pd.DataFrame]]) -> None:
    telemetry, failures = year[1]["telemetry"], year[1]["failures"]
    for comp, sensor in zip(COMPONENTS, SENSORS, strict=True):
        grid = _hourly_grid(telemetry, sensor)
        events = failures[failures["failure"] == comp]
        ends = _hours(events)
        keep = ends >= 24
        machine = events["machineID"].to_numpy()[keep]
        window = ends[keep][:, None] - np.arange(1, 25)[None, :]
        before = np.nanmean(grid[machine[:, None], window])
        shift = (before - telemetry[sensor].mean()) / telemetry[sensor].std()
        assert abs(shift) > 1.0, (comp, sensor, shift)


def test_matching_errors_cluster_before_failures(
    year: tuple[Fleet, dict[str, pd.DataFrame]],
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
    year: tuple[Fleet, dict[str, pd.DataFrame]],
) -> None:
    fleet, frames = year
    log = pd.concat([fleet.history_maint.to_pandas(), frames["maint"]], ignore_index=True)
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
