"""Sources: a day is read only once it has landed, a CSV source knows the days its files cover,
and no row is lost on the way from the files to validation."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pytest

from pdm_assets import landing
from pdm_assets.partitions import build_partitions
from pdm_assets.settings import load_settings
from pdm_assets.sources import CsvFolderSource, LandingFolderSource, MissingSourceDataError
from pdm_assets.timewindow import Window

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
    assert source.covered_days(spark) == (date(2015, 1, 1), date(2015, 1, 3))
    with pytest.raises(MissingSourceDataError, match=r"2015-01-04 .. 2015-01-05 outside the days"):
        source.read_events(
            spark, "failures", Window.of_days(date(2015, 1, 3), date(2015, 1, 6)), False
        )


def test_a_one_day_csv_read_keeps_rows_with_a_leading_space_or_a_one_digit_hour(
    spark, csv_folder: Path
) -> None:
    source = CsvFolderSource(csv_dir=str(csv_folder))
    day2 = Window.of_days(date(2015, 1, 2), date(2015, 1, 3))
    rows = source.read_events(spark, "telemetry", day2, include_history=False)
    assert rows.count() == 24
    assert {row["line"] for row in rows.collect()} == set(range(26, 50))


def test_the_last_partition_also_reads_the_rows_after_it(spark, csv_folder: Path) -> None:
    source = CsvFolderSource(csv_dir=str(csv_folder))
    day3 = Window.of_days(date(2015, 1, 3), date(2015, 1, 4))
    assert source.read_events(spark, "telemetry", day3, False).count() == 24
    # The six rows of 2015-01-04 come along, for validation to quarantine with their reason.
    assert source.read_events(spark, "telemetry", day3, False, include_after=True).count() == 30


def test_a_landing_day_without_its_marker_is_an_error_naming_the_day(spark, tmp_path: Path) -> None:
    import pyarrow as pa

    def table(name: str) -> pa.Table:
        return pa.table(
            {
                column: pa.array([], landing.COLUMN_TYPES[column])
                for column in landing.CSV_HEADERS[name]
            }
        )

    for day in (date(2015, 1, 1), date(2015, 1, 2), date(2015, 1, 4)):
        landing.write_day(tmp_path, day, {name: table(name) for name in landing.DAILY_TABLES})
    landing.complete_marker(tmp_path, date(2015, 1, 2)).unlink()
    source = LandingFolderSource(landing_dir=str(tmp_path))
    window = Window.of_days(date(2015, 1, 1), date(2015, 1, 5))
    with pytest.raises(MissingSourceDataError) as error:
        source.read_events(spark, "failures", window, include_history=False)
    assert "no complete landing folder for 2015-01-02 .. 2015-01-03 under" in str(error.value)


def test_the_month_that_begins_on_the_partitions_end_can_be_trained(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PDM_HOME", str(tmp_path))
    monkeypatch.setenv("PDM_PARTITIONS_END", "2015-04-01")
    partitions = build_partitions(load_settings())
    assert partitions.daily.get_last_partition_key() == "2015-03-31"
    assert partitions.monthly.get_partition_keys()[-1] == "2015-04-01"
