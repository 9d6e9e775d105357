"""PDM_DATA_SOURCE=tables: a window of a Parquet path or a catalog table, read in one scan with
the time predicate pushed down, mapped to the text rows every source returns."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import StructType

from pdm_assets.adapters.table_source import (
    TableEntry,
    TableSettingError,
    TableSource,
    check_tables,
    parse_tables,
    tables_json,
)
from pdm_assets.core.csv_lines import SourceFormatError, raw_schema
from pdm_assets.core.fleet import Fleet, parse_fleet
from pdm_assets.core.timewindow import Window, from_spark
from pdm_assets.core.validation import validate_events

TINY_FLEET = """
name = "tiny"
[columns]
timezone = "{zone}"
[telemetry]
sensors = [{{ name = "volt" }}, {{ name = "rotate" }}]
[components]
names = ["comp1", "comp2"]
[machines]
categorical = ["model"]
numeric = [{{ name = "age", min = 0, integer = true }}]
"""
TELEMETRY_SCHEMA = "datetime timestamp, machineID int, volt double, rotate double"


def tiny_fleet(zone: str = "UTC") -> Fleet:
    return parse_fleet(TINY_FLEET.format(zone=zone))


def day(number: int) -> Window:
    """The window of 2015-01-<number>."""
    return Window.of_days(date(2015, 1, number), date(2015, 1, number + 1))


def source(**tables: str | dict[str, str]) -> TableSource:
    # The tiny fleet reads telemetry, failures and machines; unused ones point nowhere.
    entries: dict[str, str | dict[str, str]] = {
        "telemetry": "unused.telemetry",
        "failures": "unused.failures",
        "machines": "unused.machines",
        **tables,
    }
    return TableSource(tables=json.dumps(entries))


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


def scans(frame: DataFrame) -> list[tuple[str, str]]:
    """(node name, pushed filters) of every leaf of the frame's physical plan."""
    leaves = frame._jdf.queryExecution().sparkPlan().collectLeaves()
    found = []
    for index in range(leaves.size()):
        leaf = leaves.apply(index)
        pushed = leaf.metadata().get("PushedFilters")
        found.append((leaf.nodeName(), pushed.get() if pushed.isDefined() else ""))
    return found


def executed_plan(frame: DataFrame) -> str:
    return frame._jdf.queryExecution().executedPlan().toString()


def fields(frame: DataFrame | StructType) -> list[tuple[str, str]]:
    """Names and types (a literal's column is not nullable, which changes nothing downstream)."""
    schema = frame.schema if isinstance(frame, DataFrame) else frame
    return [(field.name, field.dataType.simpleString()) for field in schema]


def texts(frame: DataFrame, *columns: str) -> set[tuple[str | None, ...]]:
    return {tuple(row[column] for column in columns) for row in frame.collect()}


# -- a Parquet path with a timestamp column ---------------------------------------------------

# 3 days, 2 machines, 00:00, 05:00 and 23:00 UTC; volt = day * 100 + hour + machine / 4 (exact
# in binary, so its text is known), rotate one third (a double whose text must read back).
TELEMETRY = [
    (utc(2015, 1, d, h), m, d * 100 + h + m / 4, 1 / 3)
    for d in (1, 2, 3)
    for h in (0, 5, 23)
    for m in (1, 2)
]
THIRD = "0.3333333333333333"


@pytest.fixture(scope="module")
def telemetry_path(spark: SparkSession, tmp_path_factory: pytest.TempPathFactory) -> str:
    path = str(tmp_path_factory.mktemp("tables") / "telemetry")
    # One reading without a time, which only the first partition's read takes.
    rows = [*TELEMETRY, (None, 1, 150.0, 1 / 3)]
    spark.createDataFrame(rows, TELEMETRY_SCHEMA).write.parquet(path)
    return path


def test_parquet_window_is_one_scan_with_the_time_predicate_pushed(
    spark: SparkSession, telemetry_path: str
) -> None:
    fleet = tiny_fleet()
    tables = source(telemetry={"path": telemetry_path, "format": "parquet"})
    frame = tables.read_events(spark, fleet, "telemetry", day(2), include_history=False)

    assert fields(frame) == fields(raw_schema(fleet.source_columns("telemetry")))
    assert texts(frame, "datetime", "machineID", "volt", "rotate") == {
        ("2015-01-02 00:00:00", "1", "200.25", THIRD),
        ("2015-01-02 00:00:00", "2", "200.5", THIRD),
        ("2015-01-02 05:00:00", "1", "205.25", THIRD),
        ("2015-01-02 05:00:00", "2", "205.5", THIRD),
        ("2015-01-02 23:00:00", "1", "223.25", THIRD),
        ("2015-01-02 23:00:00", "2", "223.5", THIRD),
    }
    row = frame.where(F.col("volt") == "205.25").first()
    assert row is not None
    assert (row["source_file"], row["line"], row["field_count"], row["header_fields"]) == (
        telemetry_path,
        None,
        None,
        None,
    )
    raw = json.loads(row["raw"])
    assert (raw["machineID"], raw["volt"], raw["datetime"]) == (
        1,
        205.25,
        "2015-01-02T05:00:00.000Z",
    )

    found = scans(frame)
    assert len(found) == 1, found
    name, pushed = found[0]
    assert name.startswith("Scan parquet"), found
    # Both window edges reach the Parquet reader (the literals print in the JVM's zone).
    assert "GreaterThanOrEqual(datetime," in pushed and "LessThan(datetime," in pushed, pushed
    plan = executed_plan(frame)
    assert plan.count("FileScan") == 1, plan
    assert re.search(r"PushedFilters: \[[^\]]*datetime", plan), plan


def test_parquet_rows_validate_back_to_the_same_instants(
    spark: SparkSession, telemetry_path: str
) -> None:
    fleet = tiny_fleet()
    tables = source(telemetry={"path": telemetry_path, "format": "parquet"})
    frame = tables.read_events(spark, fleet, "telemetry", day(2), include_history=False)
    validated = validate_events(frame, "telemetry", day(2), fleet=fleet)
    # No field count on a table row: the field-count check must not quarantine it.
    assert validated.counts() == (6, {})
    typed = {
        (from_spark(row["datetime"]), row["machine_id"], row["volt"], row["rotate"])
        for row in validated.valid.collect()
    }
    assert typed == {(t, m, v, r) for t, m, v, r in TELEMETRY if t.day == 2}


def test_history_takes_earlier_rows_and_null_times_after_takes_later_rows(
    spark: SparkSession, telemetry_path: str
) -> None:
    fleet = tiny_fleet()
    tables = source(telemetry={"path": telemetry_path, "format": "parquet"})
    first = tables.read_events(spark, fleet, "telemetry", day(2), include_history=True)
    assert sorted(texts(first, "datetime", "volt"), key=str) == sorted(
        [
            *[
                (f"2015-01-0{d} {h:02d}:00:00", f"{d * 100 + h}.{q}")
                for d in (1, 2)
                for h in (0, 5, 23)
                for q in (25, 5)
            ],
            (None, "150.0"),
        ],
        key=str,
    )
    assert "IsNull(datetime)" in scans(first)[0][1]
    last = tables.read_events(spark, fleet, "telemetry", day(2), False, include_after=True)
    assert {text for text, _ in texts(last, "datetime", "volt")} == {
        f"2015-01-0{d} {h:02d}:00:00" for d in (2, 3) for h in (0, 5, 23)
    }


def test_doubles_read_back_exactly(spark: SparkSession, tmp_path: Path) -> None:
    values = [0.1, 1e-5, 1 / 3, 123456789012.5, 1e23, 5e-324, 1.7976931348623157e308, -0.0]
    rows = [(utc(2015, 1, 2, 5), index + 1, value, 1.0) for index, value in enumerate(values)]
    path = str(tmp_path / "doubles")
    spark.createDataFrame(rows, TELEMETRY_SCHEMA).write.parquet(path)
    frame = source(telemetry={"path": path, "format": "parquet"}).read_events(
        spark, tiny_fleet(), "telemetry", day(2), include_history=False
    )
    back = {int(row["machineID"]): (row["volt"], float(row["volt"])) for row in frame.collect()}
    assert {m: number for m, (_, number) in back.items()} == {
        index + 1: value for index, value in enumerate(values)
    }
    assert [back[m][0] for m in (1, 2, 3)] == ["0.1", "1.0E-5", THIRD]


# -- timestamps in a fleet zone that is not UTC -----------------------------------------------


def test_timestamp_column_becomes_wall_clock_text_of_the_fleet_zone(
    spark: SparkSession, tmp_path: Path
) -> None:
    fleet = tiny_fleet("Europe/Berlin")
    path = str(tmp_path / "failures")
    rows = [
        # 23:30 UTC on Jan 1 is 00:30 on Jan 2 in Berlin (UTC+1 in winter): it is Jan 1's row.
        (utc(2015, 1, 1, 23, 30), 1, "comp1"),
        (utc(2015, 1, 2, 0), 2, "comp2"),
        # A fraction of a second has no 'YYYY-MM-DD HH:MM:SS' text: kept in its own day, where
        # validation quarantines it.
        (datetime(2015, 1, 2, 10, 0, 0, 500000, tzinfo=UTC), 1, "comp2"),
    ]
    spark.createDataFrame(rows, "datetime timestamp, machineID long, failure string").write.parquet(
        path
    )
    tables = source(failures={"path": path, "format": "parquet"})

    jan1 = tables.read_events(spark, fleet, "failures", day(1), include_history=False)
    assert texts(jan1, "datetime", "machineID", "failure") == {
        ("2015-01-02 00:30:00", "1", "comp1")
    }
    validated = validate_events(jan1, "failures", day(1), fleet=fleet)
    assert [from_spark(row["datetime"]) for row in validated.valid.collect()] == [
        utc(2015, 1, 1, 23, 30)
    ]

    jan2 = tables.read_events(spark, fleet, "failures", day(2), include_history=False)
    assert texts(jan2, "datetime", "machineID") == {
        ("2015-01-02 01:00:00", "2"),
        ("2015-01-02 11:00:00.500000", "1"),
    }
    kept, quarantined = validate_events(jan2, "failures", day(2), fleet=fleet).counts()
    assert kept == 1
    assert list(quarantined) == ["datetime is missing or not 'YYYY-MM-DD HH:MM:SS'"]


def test_timestamp_ntz_column_is_wall_clock_of_the_fleet_zone(
    spark: SparkSession, tmp_path: Path
) -> None:
    fleet = tiny_fleet("Europe/Berlin")
    path = str(tmp_path / "failures_ntz")
    spark.createDataFrame(
        [("2015-01-02 00:30:00", 1, "comp1"), ("2015-01-02 01:00:00", 2, "comp2")],
        "datetime string, machineID int, failure string",
    ).withColumn("datetime", F.col("datetime").cast("timestamp_ntz")).write.parquet(path)
    tables = source(failures={"path": path, "format": "parquet"})
    jan1 = tables.read_events(spark, fleet, "failures", day(1), include_history=False)
    assert texts(jan1, "datetime", "machineID") == {("2015-01-02 00:30:00", "1")}
    assert "datetime" in scans(jan1)[0][1]


# -- a table of the session catalog with a text time column ----------------------------------

# Wall-clock text in Berlin (UTC+1 in January) and the UTC day each belongs to.
FAILURES_TEXT = [
    ("2015-01-01 12:00:00", "1", "comp1"),  # Jan 1 11:00 UTC
    ("2015-01-02 00:30:00", "1", "comp2"),  # Jan 1 23:30 UTC: Jan 1
    ("2015-01-02 01:00:00", "2", "comp1"),  # Jan 2 00:00 UTC
    ("2015-01-02 05:00:00", "2", "comp2"),  # Jan 2 04:00 UTC
    (" 2015-01-02 07:00:00", "1", "comp1"),  # a leading space, which validation trims
    ("2015-01-03 00:30:00", "1", "comp1"),  # Jan 2 23:30 UTC: Jan 2
    ("2015-01-03 01:00:00", "2", "comp1"),  # Jan 3 00:00 UTC
    ("2015-01-05 12:00:00", "2", "comp2"),  # Jan 5
    (None, "1", "comp1"),
    ("not a time", "2", "comp2"),
]


@pytest.fixture(scope="module")
def catalog_failures(
    spark: SparkSession, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """A table of Spark's session catalog, its database under a temp folder."""
    database = f"pdm_table_source_{uuid.uuid4().hex[:8]}"
    location = tmp_path_factory.mktemp("catalog") / database
    spark.sql(f"CREATE DATABASE {database} LOCATION '{location.as_uri()}'")
    try:
        frame = spark.createDataFrame(
            FAILURES_TEXT, "datetime string, machineID string, failure string"
        )
        frame.write.saveAsTable(f"{database}.failures")
        yield f"{database}.failures"
    finally:
        spark.sql(f"DROP DATABASE IF EXISTS {database} CASCADE")


def test_catalog_table_with_text_times_is_read_in_one_scan(
    spark: SparkSession, catalog_failures: str
) -> None:
    fleet = tiny_fleet("Europe/Berlin")
    tables = source(failures=catalog_failures)
    frame = tables.read_events(spark, fleet, "failures", day(2), include_history=False)
    assert texts(frame, "datetime", "machineID", "failure") == {
        ("2015-01-02 01:00:00", "2", "comp1"),
        ("2015-01-02 05:00:00", "2", "comp2"),
        (" 2015-01-02 07:00:00", "1", "comp1"),
        ("2015-01-03 00:30:00", "1", "comp1"),
    }
    assert {row["source_file"] for row in frame.collect()} == {catalog_failures}
    found = scans(frame)
    assert len(found) == 1, found
    # The text edges widened by a day; texts below '0' (leading spaces) pass the lower edge.
    pushed = found[0][1]
    assert "Or(GreaterThanOrEqual(datetime,2015-01-01),LessThan(datetime,0))" in pushed, pushed
    assert "LessThan(datetime,2015-01-04)" in pushed, pushed
    assert executed_plan(frame).count("FileScan") == 1


def test_catalog_table_history_and_after(spark: SparkSession, catalog_failures: str) -> None:
    fleet = tiny_fleet("Europe/Berlin")
    tables = source(failures=catalog_failures)
    first = tables.read_events(spark, fleet, "failures", day(2), include_history=True)
    assert {text for (text,) in texts(first, "datetime")} == {
        "2015-01-01 12:00:00",
        "2015-01-02 00:30:00",
        "2015-01-02 01:00:00",
        "2015-01-02 05:00:00",
        " 2015-01-02 07:00:00",
        "2015-01-03 00:30:00",
        None,
        "not a time",
    }
    last = tables.read_events(spark, fleet, "failures", day(1), False, include_after=True)
    assert {text for (text,) in texts(last, "datetime")} == {
        text for text, _, _ in FAILURES_TEXT if text is not None and text != "not a time"
    }
    # A middle day takes neither earlier rows nor rows without a time.
    assert {
        text
        for (text,) in texts(
            tables.read_events(spark, fleet, "failures", day(3), False), "datetime"
        )
    } == {"2015-01-03 01:00:00"}


# -- CSV paths, the machines table, errors ---------------------------------------------------


def test_csv_paths_and_machines_keep_their_text(spark: SparkSession, tmp_path: Path) -> None:
    (tmp_path / "machines.csv").write_text(
        "machineID,model,age,extra\n1,model3,18,x\n2,model4,7,y\n"
    )
    (tmp_path / "failures.csv").write_text(
        "datetime,machineID,failure\n2015-01-02 05:00:00,1,comp1\n2015-01-03 05:00:00,2,comp2\n"
    )
    tables = source(
        machines={"path": str(tmp_path / "machines.csv"), "format": "csv"},
        failures={"path": str(tmp_path / "failures.csv"), "format": "csv"},
    )
    fleet = tiny_fleet()
    machines = tables.read_machines(spark, fleet)
    assert fields(machines) == fields(raw_schema(fleet.source_columns("machines")))
    assert texts(machines, "machineID", "model", "age", "source_file") == {
        ("1", "model3", "18", str(tmp_path / "machines.csv")),
        ("2", "model4", "7", str(tmp_path / "machines.csv")),
    }
    assert json.loads(machines.where(F.col("machineID") == "2").first()["raw"]) == {  # type: ignore[index]
        "machineID": "2",
        "model": "model4",
        "age": "7",
    }
    failures = tables.read_events(spark, fleet, "failures", day(2), include_history=False)
    assert texts(failures, "datetime", "machineID", "failure") == {
        ("2015-01-02 05:00:00", "1", "comp1")
    }


def test_a_missing_column_names_the_table_and_the_column(
    spark: SparkSession, tmp_path: Path
) -> None:
    path = str(tmp_path / "no_rotate")
    spark.createDataFrame(
        [(utc(2015, 1, 2), 1, 1.0)], "datetime timestamp, machineID int, volt double"
    ).write.parquet(path)
    tables = source(telemetry={"path": path, "format": "parquet"})
    with pytest.raises(SourceFormatError, match=r"\(telemetry\): column 'rotate' missing") as error:
        tables.read_events(spark, tiny_fleet(), "telemetry", day(2), include_history=False)
    assert path in str(error.value)
    assert "needs datetime, machineID, volt, rotate" in str(error.value)


def test_column_names_match_ignoring_case_as_spark_does(
    spark: SparkSession, tmp_path: Path
) -> None:
    path = str(tmp_path / "upper")
    spark.createDataFrame(
        [(utc(2015, 1, 2), 7, "comp2")], "DATETIME timestamp, MachineId int, FAILURE string"
    ).write.parquet(path)
    frame = source(failures={"path": path, "format": "parquet"}).read_events(
        spark, tiny_fleet(), "failures", day(2), include_history=False
    )
    assert texts(frame, "datetime", "machineID", "failure") == {
        ("2015-01-02 00:00:00", "7", "comp2")
    }


def test_a_time_column_of_another_type_is_refused(spark: SparkSession, tmp_path: Path) -> None:
    path = str(tmp_path / "int_time")
    spark.createDataFrame(
        [(20150102, 1, "comp1")], "datetime int, machineID int, failure string"
    ).write.parquet(path)
    tables = source(failures={"path": path, "format": "parquet"})
    with pytest.raises(SourceFormatError, match=r"time column 'datetime' is int"):
        tables.read_events(spark, tiny_fleet(), "failures", day(2), include_history=False)


# -- the PDM_TABLES setting -------------------------------------------------------------------


def test_the_setting_parses_names_and_paths() -> None:
    text = (
        '{"telemetry": "main.pdm.telemetry", "failures": {"path": "s3://b/f", "format": "delta"},'
        ' "machines": {"path": "/data/m.csv", "format": "csv"}}'
    )
    mapping = parse_tables(text)
    assert mapping == {
        "telemetry": TableEntry(name="main.pdm.telemetry"),
        "failures": TableEntry(path="s3://b/f", format="delta"),
        "machines": TableEntry(path="/data/m.csv", format="csv"),
    }
    assert parse_tables(tables_json(mapping)) == mapping
    assert list(check_tables(mapping, tiny_fleet())) == ["telemetry", "failures", "machines"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("telemetry=x", "PDM_TABLES: not JSON"),
        ('["telemetry"]', "PDM_TABLES: expected a JSON object"),
        ('{"telemetri": "db.t"}', "PDM_TABLES: 'telemetri' is not a table"),
        ('{"errors": 3}', "PDM_TABLES.errors: expected a table name"),
        ('{"errors": " "}', "PDM_TABLES.errors: empty table name"),
        ('{"maint": {"format": "delta"}}', 'PDM_TABLES.maint: "path" must be'),
        ('{"maint": {"path": "/m"}}', "PDM_TABLES.maint: unknown format None"),
        (
            '{"failures": {"path": "/f", "format": "orc"}}',
            "PDM_TABLES.failures: unknown format 'orc'",
        ),
        (
            '{"failures": {"path": "/f", "format": "csv", "sep": ";"}}',
            "PDM_TABLES.failures: unknown key 'sep'",
        ),
    ],
)
def test_setting_errors_name_the_key(text: str, message: str) -> None:
    with pytest.raises(TableSettingError, match=re.escape(message)):
        parse_tables(text)
    # The resource refuses it when built (pydantic's error is a ValueError too).
    with pytest.raises(ValueError, match=re.escape(message)):
        TableSource(tables=text)


def test_a_table_the_fleet_needs_must_be_mapped() -> None:
    with pytest.raises(
        TableSettingError, match=r"no entry for failures, machines, which the fleet"
    ):
        check_tables(parse_tables('{"telemetry": "db.t", "errors": "db.e"}'), tiny_fleet())
