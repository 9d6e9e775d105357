"""Sources: a day is read only once it has landed, a producer's landing folder is never written
to, a CSV source knows the days its files cover, and no row is lost on the way from the files to
validation."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pytest

from pdm_assets.adapters.sources import CsvFolderSource, LandingFolderSource, MissingSourceDataError
from pdm_assets.core import landing
from pdm_assets.core.fleet import DEFAULT_FLEET, parse_fleet
from pdm_assets.core.landing import LandingError
from pdm_assets.core.timewindow import Window
from pdm_assets.defs.partitions import build_partitions
from pdm_assets.settings import load_settings
from pdm_assets.simulator.fleet_simulator import FleetSpec, simulate, write_landing

FLEET = DEFAULT_FLEET

HEADER = "datetime,machineID,volt,rotate,pressure,vibration"


def _hours(first: date, days: int) -> list[str]:
    start = datetime.combine(first, datetime.min.time())
    return [
        f"{start + timedelta(hours=h):%Y-%m-%d %H:%M:%S},1,170,450,100,40" for h in range(24 * days)
    ]


@pytest.fixture
def csv_folder(tmp_path: Path) -> Path:
    """Machine 1, 2015-01-01 00:00 .. 2015-01-04 05:00: the last day is cut short, like the
    public files."""
    lines = _hours(date(2015, 1, 1), 3) + _hours(date(2015, 1, 4), 1)[:6]
    # The same hour twice, once with a leading space and once with a one-digit hour, on day 2.
    lines[30] = " " + lines[30]
    lines[31] = lines[31].replace(" 07:", " 7:")
    (tmp_path / "PdM_telemetry.csv").write_text("\n".join([HEADER, *lines]) + "\n")
    for table, header in (
        ("errors", "datetime,machineID,errorID"),
        ("maint", "datetime,machineID,comp"),
        ("failures", "datetime,machineID,failure"),
    ):
        (tmp_path / f"PdM_{table}.csv").write_text(header + "\n")
    (tmp_path / "PdM_machines.csv").write_text("machineID,model,age\n1,model3,18\n")
    return tmp_path


def test_a_csv_source_knows_the_days_its_telemetry_covers_to_the_last_whole_day(
    spark, csv_folder: Path
) -> None:
    source = CsvFolderSource(csv_dir=str(csv_folder))
    # 2015-01-04 ends at 05:00: not a known day yet.
    assert source.covered_days(spark, FLEET) == (date(2015, 1, 1), date(2015, 1, 3))
    with pytest.raises(MissingSourceDataError, match=r"2015-01-04 .. 2015-01-05 outside the days"):
        source.read_events(
            spark, FLEET, "failures", Window.of_days(date(2015, 1, 3), date(2015, 1, 6)), False
        )


def test_a_csv_source_covers_the_days_of_failures_logged_after_the_last_reading(
    spark, csv_folder: Path
) -> None:
    # A run-to-failure fleet: the machine's last failure comes after its last reading.
    (csv_folder / "PdM_failures.csv").write_text(
        "datetime,machineID,failure\n2015-01-05 09:00:00,1,comp2\n"
    )
    # An error at the last reading's own hour does not make the cut-short day known.
    (csv_folder / "PdM_errors.csv").write_text(
        "datetime,machineID,errorID\n2015-01-04 05:00:00,1,error1\n"
    )
    source = CsvFolderSource(csv_dir=str(csv_folder))
    assert source.covered_days(spark, FLEET) == (date(2015, 1, 1), date(2015, 1, 5))
    day5 = Window.of_days(date(2015, 1, 5), date(2015, 1, 6))
    assert source.read_events(spark, FLEET, "failures", day5, False).count() == 1


def test_a_csv_source_reads_no_file_for_a_table_the_fleet_lacks(spark, csv_folder: Path) -> None:
    for name in ("errors", "maint"):
        (csv_folder / f"PdM_{name}.csv").unlink()
    bare = parse_fleet(
        "[telemetry]\nsensors = [{ name = 'volt' }]\n[components]\nnames = ['comp2']\n"
    )
    source = CsvFolderSource(csv_dir=str(csv_folder))
    day2 = Window.of_days(date(2015, 1, 2), date(2015, 1, 3))
    assert source.read_events(spark, bare, "errors", day2, False).count() == 0
    assert source.read_events(spark, bare, "telemetry", day2, False).columns[:3] == [
        "datetime",
        "machineID",
        "volt",
    ]


def test_a_one_day_csv_read_keeps_rows_with_a_leading_space_or_a_one_digit_hour(
    spark, csv_folder: Path
) -> None:
    source = CsvFolderSource(csv_dir=str(csv_folder))
    day2 = Window.of_days(date(2015, 1, 2), date(2015, 1, 3))
    rows = source.read_events(spark, FLEET, "telemetry", day2, include_history=False)
    assert rows.count() == 24
    assert {row["line"] for row in rows.collect()} == set(range(26, 50))


def test_the_last_partition_also_reads_the_rows_after_it(spark, csv_folder: Path) -> None:
    source = CsvFolderSource(csv_dir=str(csv_folder))
    day3 = Window.of_days(date(2015, 1, 3), date(2015, 1, 4))
    assert source.read_events(spark, FLEET, "telemetry", day3, False).count() == 24
    # The six rows of 2015-01-04 come along, for validation to quarantine with their reason.
    after = source.read_events(spark, FLEET, "telemetry", day3, False, include_after=True)
    assert after.count() == 30


def _empty(fleet, name: str) -> pa.Table:  # type: ignore[no-untyped-def]
    return pa.table({column: pa.array([], pa.string()) for column in fleet.source_columns(name)})


def test_a_landing_day_without_its_marker_is_an_error_naming_the_day(spark, tmp_path: Path) -> None:
    for day in (date(2015, 1, 1), date(2015, 1, 2), date(2015, 1, 4)):
        tables = {name: _empty(FLEET, name) for name in FLEET.event_tables}
        landing.write_day(tmp_path, day, tables, FLEET)
    Path(landing.complete_marker(tmp_path, date(2015, 1, 2))).unlink()
    source = LandingFolderSource(landing_dir=str(tmp_path))
    window = Window.of_days(date(2015, 1, 1), date(2015, 1, 5))
    with pytest.raises(MissingSourceDataError) as error:
        source.read_events(spark, FLEET, "failures", window, include_history=False)
    assert "no complete landing folder for 2015-01-02 .. 2015-01-03 under" in str(error.value)
    # Nothing was simulated into the producer's folder to fill the gap.
    assert not Path(landing.complete_marker(tmp_path, date(2015, 1, 3))).exists()


def _tree(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def test_a_landing_source_reads_a_producers_folder_and_never_writes_to_it(
    spark, tmp_path: Path
) -> None:
    days = [date(2015, 1, 1), date(2015, 1, 2)]
    write_landing(simulate(FleetSpec(machines=3, days=2, seed=3)), tmp_path, days)
    before = _tree(tmp_path)
    source = LandingFolderSource(landing_dir=str(tmp_path))
    window = Window.of_days(days[0], date(2015, 1, 3))
    counts = {
        name: source.read_events(spark, FLEET, name, window, include_history=True).count()
        for name in FLEET.event_tables
    }
    assert source.read_machines(spark, FLEET).count() == 3
    assert counts["telemetry"] == sum(
        landing.read_marker(tmp_path, day)["telemetry"]  # type: ignore[index]
        for day in days
    )
    assert _tree(tmp_path) == before
    # A day outside what landed is an error naming it, never simulated.
    with pytest.raises(MissingSourceDataError, match="2015-01-03"):
        source.read_events(
            spark, FLEET, "telemetry", Window.of_days(days[0], date(2015, 1, 4)), False
        )
    assert _tree(tmp_path) == before


def test_a_file_cut_short_after_its_marker_is_refused_naming_it(spark, tmp_path: Path) -> None:
    day = date(2015, 1, 1)
    write_landing(simulate(FleetSpec(machines=2, days=1, seed=3)), tmp_path, [day])
    telemetry = Path(landing.table_path(tmp_path, day, "telemetry"))
    lines = telemetry.read_bytes().splitlines(keepends=True)
    telemetry.write_bytes(b"".join(lines[:-5]))
    source = LandingFolderSource(landing_dir=str(tmp_path))
    with pytest.raises(LandingError) as error:
        source.read_events(spark, FLEET, "telemetry", Window.of_days(day, date(2015, 1, 2)), False)
    marked = landing.read_marker(tmp_path, day)["telemetry"]  # type: ignore[index]
    assert str(error.value).startswith(
        f"{telemetry}: {marked - 5} rows where its _COMPLETE marker says {marked}"
    )
    # The other tables of the day are whole, and a marker without counts is taken as it is.
    assert source.read_events(
        spark, FLEET, "failures", Window.of_days(day, date(2015, 1, 2)), False
    )
    Path(landing.complete_marker(tmp_path, day)).write_text("")
    rows = source.read_events(
        spark, FLEET, "telemetry", Window.of_days(day, date(2015, 1, 2)), False
    )
    assert rows.count() == marked - 5


def test_a_landing_folder_given_as_a_file_uri_reads_through_the_same_layer(
    spark, tmp_path: Path
) -> None:
    day = date(2015, 1, 1)
    write_landing(simulate(FleetSpec(machines=2, days=1, seed=3)), tmp_path, [day])
    uri = tmp_path.as_uri()
    assert landing.complete_days(uri, FLEET.event_tables) == [day]
    source = LandingFolderSource(landing_dir=uri)
    rows = source.read_events(
        spark, FLEET, "telemetry", Window.of_days(day, date(2015, 1, 2)), False
    )
    assert rows.count() == landing.read_marker(tmp_path, day)["telemetry"]  # type: ignore[index]


def test_the_month_that_begins_on_the_partitions_end_can_be_trained(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PDM_HOME", str(tmp_path))
    monkeypatch.setenv("PDM_PARTITIONS_END", "2015-04-01")
    partitions = build_partitions(load_settings())
    assert partitions.daily.get_last_partition_key() == "2015-03-31"
    assert partitions.monthly.get_partition_keys()[-1] == "2015-04-01"
