"""The warehouse: partition layout, pruned window reads, and atomic replacement."""

from __future__ import annotations

import logging
import os
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import dagster as dg
import pytest
from pyspark.sql import DataFrame, DataFrameWriter, SparkSession
from pyspark.sql import functions as F

from pdm_assets.adapters.spark import SparkResource
from pdm_assets.adapters.warehouse import FolderWarehouse, MissingDatasetError, TableWarehouse
from pdm_assets.adapters.warehouse.folder import RowsNotVisibleError, StaleInputError
from pdm_assets.adapters.warehouse.protocol import ReadVersion
from pdm_assets.core.timewindow import Window
from pdm_assets.defs.io_manager import WarehouseIOManager, WarehouseReader


def _frame(spark: SparkSession, rows: list[tuple[str, int]]) -> DataFrame:
    return spark.createDataFrame(rows, "day string, value int").select(
        F.to_date("day").alias("date"), "value"
    )


def _values(frame: DataFrame) -> list[tuple[str, int]]:
    return sorted((str(row["date"]), row["value"]) for row in frame.collect())


JAN = Window.of_days(date(2015, 1, 1), date(2015, 1, 4))


def test_partitions_are_written_per_day_and_read_back_by_window(spark, tmp_path: Path) -> None:
    warehouse = FolderWarehouse(tmp_path)
    counts = warehouse.write_partitions(
        "t", _frame(spark, [("2015-01-01", 1), ("2015-01-01", 2), ("2015-01-03", 3)]), JAN
    )
    # The day without rows is an empty partition: "materialised, nothing happened".
    assert counts == {date(2015, 1, 1): 2, date(2015, 1, 2): 0, date(2015, 1, 3): 1}
    assert warehouse.partition_dates("t") == [date(2015, 1, 1), date(2015, 1, 2), date(2015, 1, 3)]
    window = Window.of_days(date(2015, 1, 2), date(2015, 1, 4))
    assert _values(warehouse.read_window(spark, "t", window)) == [("2015-01-03", 3)]


def test_a_window_spread_over_many_spark_partitions_makes_one_file_per_day(
    spark, tmp_path: Path
) -> None:
    rows = [(f"2015-01-0{1 + i % 3}", i) for i in range(60)]
    # Every one of the 6 partitions holds rows of every day: without the regrouping each would
    # write a file per day.
    frame = _frame(spark, rows).repartition(6)
    warehouse = FolderWarehouse(tmp_path)
    warehouse.write_partitions("t", frame, JAN)
    for day in ("2015-01-01", "2015-01-02", "2015-01-03"):
        files = list((tmp_path / "t" / f"date={day}").resolve().glob("*.parquet"))
        assert len(files) == 1, day
    assert len(_values(warehouse.read_window(spark, "t", JAN))) == 60


def test_window_read_is_one_scan_of_the_windows_versions_only(spark, tmp_path: Path) -> None:
    warehouse = FolderWarehouse(tmp_path)
    warehouse.write_partitions("t", _frame(spark, [("2015-01-01", 1), ("2015-01-03", 3)]), JAN)
    window = Window.of_days(date(2015, 1, 3), date(2015, 1, 4))
    frame = warehouse.read_window(spark, "t", window)
    plan = frame._jdf.queryExecution().executedPlan().toString()
    assert plan.count("FileScan parquet") == 1
    version = (tmp_path / "t" / "date=2015-01-03").resolve()
    assert frame.inputFiles() and all(str(version) in f for f in frame.inputFiles())


def test_a_read_started_before_a_swap_finishes_on_the_rows_it_started_with(
    spark, tmp_path: Path
) -> None:
    warehouse = FolderWarehouse(tmp_path)
    day = Window.of_days(date(2015, 1, 1), date(2015, 1, 2))
    warehouse.write_partitions("t", _frame(spark, [("2015-01-01", 1)]), day)
    before = warehouse.read_window(spark, "t", day)  # planned, not yet run
    # Another run replaces the day before this read runs (Spark reads lazily).
    warehouse.write_partitions("t", _frame(spark, [("2015-01-01", 2)]), day)
    assert _values(before) == [("2015-01-01", 1)]
    assert _values(warehouse.read_window(spark, "t", day)) == [("2015-01-01", 2)]


def test_rewriting_a_day_replaces_exactly_that_day(spark, tmp_path: Path) -> None:
    warehouse = FolderWarehouse(tmp_path)
    warehouse.write_partitions("t", _frame(spark, [("2015-01-01", 1), ("2015-01-02", 2)]), JAN)
    second = Window.of_days(date(2015, 1, 2), date(2015, 1, 3))
    warehouse.write_partitions("t", _frame(spark, [("2015-01-02", 20), ("2015-01-02", 21)]), second)
    assert _values(warehouse.read_window(spark, "t", JAN)) == [
        ("2015-01-01", 1),
        ("2015-01-02", 20),
        ("2015-01-02", 21),
    ]
    # The replaced version stays for runs still reading it and to compare or restore: 24 hours
    # by default (PDM_KEEP_REPLACED_HOURS); a later write after that sweeps it.
    versions = tmp_path / "t" / "_versions" / "date=2015-01-02"
    assert len(list(versions.iterdir())) == 2
    day3 = Window.of_days(date(2015, 1, 3), date(2015, 1, 4))
    _age_unlinked(tmp_path / "t", hours=23)
    warehouse.write_partitions("t", _frame(spark, [("2015-01-03", 3)]), day3)
    assert len(list(versions.iterdir())) == 2
    _age_unlinked(tmp_path / "t", hours=25)
    warehouse.write_partitions("t", _frame(spark, [("2015-01-03", 3)]), day3)
    assert len(list(versions.iterdir())) == 1
    # Kept as configured, never under an hour.
    assert FolderWarehouse(tmp_path, keep_replaced_seconds=2 * 3600).keep_replaced_seconds == 7200
    with pytest.raises(ValueError, match="an hour at least"):
        FolderWarehouse(tmp_path, keep_replaced_seconds=60)


def test_a_write_failing_midway_leaves_the_old_partition_intact(spark, tmp_path: Path) -> None:
    warehouse = FolderWarehouse(tmp_path)
    day = Window.of_days(date(2015, 1, 1), date(2015, 1, 2))
    warehouse.write_partitions("t", _frame(spark, [("2015-01-01", 1), ("2015-01-01", 2)]), day)

    # The new rows fail while Spark is writing them: raise_error fires inside the tasks, after
    # other rows of the same partition may already be in files.
    failing = (
        _frame(spark, [("2015-01-01", v) for v in range(100)])
        .repartition(4)
        .withColumn(
            "value",
            F.when(F.col("value") == 77, F.raise_error(F.lit("boom"))).otherwise(F.col("value")),
        )
    )
    with pytest.raises(Exception, match="boom"):
        warehouse.write_partitions("t", failing, day)
    assert _values(warehouse.read_window(spark, "t", day)) == [("2015-01-01", 1), ("2015-01-01", 2)]


def _kill_after_swaps(monkeypatch: pytest.MonkeyPatch, allowed: int) -> None:
    """The next commit dies (as kill -9 would, with no cleanup) after `allowed` link swaps."""
    swaps = {"done": 0}
    original = FolderWarehouse._swap_link

    def swap_then_die(dataset_path: Path, name: str, version: Path) -> None:
        if swaps["done"] == allowed:
            raise KeyboardInterrupt("killed")
        swaps["done"] += 1
        original(dataset_path, name, version)

    monkeypatch.setattr(FolderWarehouse, "_swap_link", staticmethod(swap_then_die))


@pytest.mark.any_zone
def test_a_window_killed_between_its_days_is_finished_by_the_next_reader(
    spark, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Finding 5 of issue 19: a window used to be committed day by day, so a kill between two
    swaps left it half new, half old. The commit's journal now lets the next reader finish it."""
    warehouse = FolderWarehouse(tmp_path)
    two_days = Window.of_days(date(2015, 1, 1), date(2015, 1, 3))
    warehouse.write_partitions("t", _frame(spark, [("2015-01-01", 1), ("2015-01-02", 2)]), two_days)
    _kill_after_swaps(monkeypatch, allowed=1)
    with pytest.raises(KeyboardInterrupt):
        warehouse.write_partitions(
            "t", _frame(spark, [("2015-01-01", 10), ("2015-01-02", 20)]), two_days
        )
    monkeypatch.undo()
    # On disk, day 1 is new and day 2 old, but the journal of the commit is still there.
    on_disk = {
        day: [
            row["value"]
            for row in spark.read.parquet(str((tmp_path / "t" / day).resolve())).collect()
        ]
        for day in ("date=2015-01-01", "date=2015-01-02")
    }
    assert on_disk == {"date=2015-01-01": [10], "date=2015-01-02": [2]}
    assert len(list((tmp_path / "_commits").glob("*.json"))) == 1
    with caplog.at_level(logging.WARNING, logger="pdm_assets.adapters.warehouse.folder"):
        assert _values(warehouse.read_window(spark, "t", two_days)) == [
            ("2015-01-01", 10),
            ("2015-01-02", 20),
        ]
    assert any("finishing commit" in record.getMessage() for record in caplog.records)
    assert list((tmp_path / "_commits").glob("*.json")) == []


@pytest.mark.any_zone
def test_a_step_killed_before_its_commit_leaves_every_output_as_it_was(
    spark, tmp_path: Path
) -> None:
    """A raw table and its quarantine are staged one after the other, then committed in one go:
    if the step dies after staging the first, readers still see both from the earlier run."""
    warehouse = FolderWarehouse(tmp_path)
    day = Window.of_days(date(2015, 1, 1), date(2015, 1, 2))
    warehouse.write_partitions("raw", _frame(spark, [("2015-01-01", 1)]), day)
    warehouse.write_partitions("quarantine", _frame(spark, [("2015-01-01", 100)]), day)

    staged = warehouse.stage_partitions("quarantine", _frame(spark, [("2015-01-01", 200)]), day)
    # (the step dies here, before staging raw)
    assert _values(warehouse.read_window(spark, "quarantine", day)) == [("2015-01-01", 100)]

    raw = warehouse.stage_partitions("raw", _frame(spark, [("2015-01-01", 2)]), day)
    warehouse.commit([staged, raw])
    assert _values(warehouse.read_window(spark, "quarantine", day)) == [("2015-01-01", 200)]
    assert _values(warehouse.read_window(spark, "raw", day)) == [("2015-01-01", 2)]


@pytest.mark.any_zone
def test_a_step_whose_input_was_replaced_meanwhile_commits_nothing(spark, tmp_path: Path) -> None:
    """Finding 4 of issue 19, for runs launched around the queue: a step that read an input,
    computed, and then found the input replaced by another run must not overwrite the rows that
    run computed from the newer input."""
    warehouse = FolderWarehouse(tmp_path)
    day = Window.of_days(date(2015, 1, 1), date(2015, 1, 2))
    warehouse.write_partitions("features", _frame(spark, [("2015-01-01", 1)]), day)
    warehouse.write_partitions("scores", _frame(spark, [("2015-01-01", 10)]), day)

    read: list[ReadVersion] = []
    old_input = warehouse.read_window(spark, "features", day, read)
    assert [(pin.dataset, pin.link) for pin in read] == [("features", "date=2015-01-01")]
    # Another run replaces the input and the output meanwhile.
    warehouse.write_partitions("features", _frame(spark, [("2015-01-01", 2)]), day)
    warehouse.write_partitions("scores", _frame(spark, [("2015-01-01", 20)]), day)

    stale = warehouse.stage_partitions(
        "scores", old_input.select("date", F.lit(10).alias("value")), day
    )
    with pytest.raises(StaleInputError, match="another run replaced features date=2015-01-01"):
        warehouse.commit([stale], read)
    assert _values(warehouse.read_window(spark, "scores", day)) == [("2015-01-01", 20)]
    # The refused version is removed at once, not left for the sweep.
    assert not (tmp_path / "scores" / stale.links["date=2015-01-01"]).exists()
    # Read again, the same step commits.
    read.clear()
    warehouse.read_window(spark, "features", day, read)
    fresh = warehouse.stage_partitions("scores", _frame(spark, [("2015-01-01", 21)]), day)
    warehouse.commit([fresh], read)
    assert _values(warehouse.read_window(spark, "scores", day)) == [("2015-01-01", 21)]


def test_rows_outside_the_window_are_refused_not_dropped(spark, tmp_path: Path) -> None:
    warehouse = FolderWarehouse(tmp_path)
    day = Window.of_days(date(2015, 1, 1), date(2015, 1, 2))
    with pytest.raises(ValueError, match="outside the partition window"):
        warehouse.write_partitions("t", _frame(spark, [("2015-01-05", 1)]), day)


@pytest.mark.any_zone
def test_rows_written_where_the_driver_cannot_see_them_fail_and_commit_nothing(
    spark, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Finding 6 of issue 19: executors on other hosts writing a local path the driver does not
    share leave staging without `date=` folders, which used to commit as empty days. Here the
    "other hosts" are another folder: every write lands beside the path it was given."""
    warehouse = FolderWarehouse(tmp_path / "warehouse")
    warehouse.write_partitions("t", _frame(spark, [("2015-01-01", 1)]), JAN)
    real_parquet = DataFrameWriter.parquet

    def elsewhere(self, path, *args, **kwargs):  # type: ignore[no-untyped-def]
        return real_parquet(self, str(tmp_path / "other-host" / Path(path).name), *args, **kwargs)

    monkeypatch.setattr(DataFrameWriter, "parquet", elsewhere)
    with pytest.raises(RowsNotVisibleError, match="Spark wrote 2 rows but 0 are in"):
        warehouse.write_partitions("t", _frame(spark, [("2015-01-01", 5), ("2015-01-02", 6)]), JAN)
    monkeypatch.undo()
    # Nothing committed: day 1 keeps its row, day 2 stays the empty day it was.
    assert _values(warehouse.read_window(spark, "t", JAN)) == [("2015-01-01", 1)]


@pytest.mark.any_zone
def test_reading_a_dataset_never_written_names_it(spark, tmp_path: Path) -> None:
    with pytest.raises(MissingDatasetError, match="'nothing'"):
        FolderWarehouse(tmp_path).read_window(spark, "nothing", JAN)


@pytest.mark.any_zone
def test_unpartitioned_tables_are_replaced_whole(spark, tmp_path: Path) -> None:
    warehouse = FolderWarehouse(tmp_path)
    assert warehouse.write_table("m", spark.createDataFrame([(1,), (2,)], "x int")) == 2
    assert warehouse.write_table("m", spark.createDataFrame([(3,)], "x int")) == 1
    assert [row["x"] for row in warehouse.read_table(spark, "m").collect()] == [3]


def _leftovers(dataset: Path) -> list[str]:
    """Everything of a dataset folder that is neither a live link nor a version one points at."""
    linked = {
        entry.resolve()
        for entry in dataset.iterdir()
        if entry.is_symlink() and not entry.name.startswith(".")
    }
    versions = dataset / "_versions"
    return sorted(
        str(path.relative_to(dataset))
        for folder in versions.iterdir()
        for path in ([folder] if folder.name.startswith("_staging-") else folder.iterdir())
        if path.resolve() not in linked
    ) + sorted(entry.name for entry in dataset.iterdir() if entry.name.startswith("."))


def _age_unlinked(dataset: Path, hours: float) -> None:
    """Make every version no link points at look `hours` old."""
    then = time.time() - hours * 3600
    for path in _leftovers(dataset):
        os.utime(dataset / path, (then, then))


@pytest.mark.any_zone
def test_what_a_killed_writer_left_is_swept_at_the_next_write(spark, tmp_path: Path) -> None:
    warehouse = FolderWarehouse(tmp_path, keep_replaced_seconds=3600)
    two_days = Window.of_days(date(2015, 1, 1), date(2015, 1, 3))
    warehouse.write_partitions("t", _frame(spark, [("2015-01-01", 1), ("2015-01-02", 2)]), two_days)
    dataset = tmp_path / "t"
    # What kill -9 leaves (no finally block runs): a staged window, a version moved into place
    # but never linked, a half-made link.
    (dataset / "_versions" / "_staging-dead" / "date=2015-01-01").mkdir(parents=True)
    (dataset / "_versions" / "date=2015-01-02" / "dead-version").mkdir()
    os.symlink("_versions/date=2015-01-02/dead-version", dataset / ".date=2015-01-02.dead")
    assert len(_leftovers(dataset)) == 3
    # The version of a dead writer looks like a replaced version someone may still be reading:
    # it goes once it is over an hour old. The staging folder and the link go at once.
    day3 = Window.of_days(date(2015, 1, 3), date(2015, 1, 4))
    warehouse.write_partitions("t", _frame(spark, [("2015-01-03", 3)]), day3)
    assert _leftovers(dataset) == ["_versions/date=2015-01-02/dead-version"]
    _age_unlinked(dataset, hours=2)

    # A later write of another day of the same dataset sweeps them all.
    day4 = Window.of_days(date(2015, 1, 4), date(2015, 1, 5))
    warehouse.write_partitions("t", _frame(spark, [("2015-01-04", 4)]), day4)
    assert _leftovers(dataset) == []
    everything = Window.of_days(date(2015, 1, 1), date(2015, 1, 5))
    assert _values(warehouse.read_window(spark, "t", everything)) == [
        ("2015-01-01", 1),
        ("2015-01-02", 2),
        ("2015-01-03", 3),
        ("2015-01-04", 4),
    ]


@pytest.mark.any_zone
def test_writers_of_one_dataset_take_turns_and_the_waiting_one_says_so(
    spark, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    warehouse = FolderWarehouse(tmp_path)
    day = Window.of_days(date(2015, 1, 1), date(2015, 1, 2))
    holding, released = threading.Event(), threading.Event()

    def other_writer() -> None:
        with warehouse.writer_lock("t"):
            holding.set()
            time.sleep(1.0)
            released.set()

    thread = threading.Thread(target=other_writer)
    thread.start()
    assert holding.wait(10)
    with caplog.at_level(logging.WARNING, logger="pdm_assets.adapters.warehouse.folder"):
        warehouse.write_partitions("t", _frame(spark, [("2015-01-01", 5)]), day)
    # The write could only start after the other writer let go.
    assert released.is_set()
    thread.join()
    messages = [record.getMessage() for record in caplog.records]
    assert any("another run is writing this dataset; waiting" in m for m in messages)
    assert any("waited" in m and "replace its rows" in m for m in messages)
    assert _values(warehouse.read_window(spark, "t", day)) == [("2015-01-01", 5)]


# The table warehouse (object stores): exercised here on a file: URI in Parquet, since Delta's
# jars are not available offline; Delta differs only in the write call (replaceWhere).


# The catalog form reads and writes the same dates as the path form: once, in the machine's zone.
@pytest.fixture(params=["path", pytest.param("unity_catalog", marks=pytest.mark.any_zone)])
def table_root(
    request: pytest.FixtureRequest, spark: SparkSession, tmp_path: Path
) -> Iterator[str]:
    """A URI of Parquet tables, or a schema of the session's catalog (as uc://<catalog>.<schema>
    names a Unity Catalog schema on Databricks), its managed tables under tmp_path."""
    if request.param == "path":
        yield tmp_path.as_uri()
        return
    schema = f"pdm_{uuid.uuid4().hex[:8]}"
    spark.sql(f"CREATE SCHEMA spark_catalog.{schema} LOCATION '{tmp_path / schema}'")
    try:
        yield f"uc://spark_catalog.{schema}"
    finally:
        spark.sql(f"DROP SCHEMA spark_catalog.{schema} CASCADE")


def test_table_warehouse_replaces_only_the_window(spark: SparkSession, table_root: str) -> None:
    tables = TableWarehouse(table_root, "parquet")
    if table_root.startswith("uc://"):
        schema = table_root.removeprefix("uc://")
        assert tables.dataset_location("scores") == f"{schema}.scores"
    else:
        assert tables.dataset_location("scores") == f"{table_root}/scores"
    first = _frame(spark, [("2015-01-01", 1), ("2015-01-02", 2), ("2015-01-03", 3)])
    assert tables.write_partitions("scores", first, JAN) == {
        date(2015, 1, 1): 1,
        date(2015, 1, 2): 1,
        date(2015, 1, 3): 1,
    }
    # Re-run of 2 Jan alone with new rows, and 3 Jan now without any: 1 Jan must stay.
    rerun = Window.of_days(date(2015, 1, 2), date(2015, 1, 4))
    counts = tables.write_partitions("scores", _frame(spark, [("2015-01-02", 20)]), rerun)
    assert counts == {date(2015, 1, 2): 1, date(2015, 1, 3): 0}
    assert _values(tables.read_window(spark, "scores", JAN)) == [
        ("2015-01-01", 1),
        ("2015-01-02", 20),
    ]
    # 3 Jan is materialised (empty), not missing.
    assert tables.partition_dates("scores") == [
        date(2015, 1, 1),
        date(2015, 1, 2),
        date(2015, 1, 3),
    ]
    assert _values(tables.read_all(spark, "scores")) == [("2015-01-01", 1), ("2015-01-02", 20)]
    if table_root.startswith("uc://"):
        # Tables of the schema by name, the manifest beside: what a catalog's users see.
        schema = table_root.removeprefix("uc://")
        names = {row.tableName for row in spark.sql(f"SHOW TABLES IN {schema}").collect()}
        assert names == {"scores", "scores__partitions"}
        assert spark.table(f"{schema}.scores").count() == 2
    assert tables.write_table("model_card", spark.createDataFrame([(1,)], "x int")) == 1
    assert tables.write_table("model_card", spark.createDataFrame([(2,), (3,)], "x int")) == 2


@pytest.mark.any_zone
def test_a_catalog_warehouse_names_a_schema(spark: SparkSession) -> None:
    with pytest.raises(ValueError, match=r"uc://<catalog>\.<schema>"):
        TableWarehouse("uc://main", "delta")
    assert TableWarehouse("uc://main.pdm", "delta").dataset_location("raw_telemetry") == (
        "main.pdm.raw_telemetry"
    )


def test_table_warehouse_refuses_rows_outside_the_window(
    spark: SparkSession, tmp_path: Path
) -> None:
    tables = TableWarehouse(tmp_path.as_uri(), "parquet")
    stray = _frame(spark, [("2015-01-01", 1), ("2015-02-01", 9)])
    with pytest.raises(ValueError, match=r"outside the partition window.*2015-02-01"):
        tables.write_partitions("scores", stray, JAN)
    assert tables.partition_dates("scores") == []


def test_table_warehouse_empty_days_and_missing_tables(spark: SparkSession, tmp_path: Path) -> None:
    tables = TableWarehouse(tmp_path.as_uri(), "parquet")
    with pytest.raises(MissingDatasetError, match="materialise the upstream asset first"):
        tables.read_window(spark, "failures", JAN)
    with pytest.raises(MissingDatasetError, match="never materialised"):
        tables.read_table(spark, "machines")
    # A window of days without a single row: no data file, yet readable with its schema.
    nothing = _frame(spark, []).where(F.lit(False))
    assert tables.write_partitions("failures", nothing, JAN) == {day: 0 for day in JAN.days}
    empty = tables.read_window(spark, "failures", JAN)
    assert empty.columns == ["date", "value"] and empty.count() == 0
    machines = spark.createDataFrame([(1, "model3"), (2, "model4")], "machine_id int, model string")
    assert tables.write_table("machines", machines) == 2
    assert tables.write_table("machines", machines.limit(1)) == 1


@pytest.mark.any_zone
def test_two_parquet_uri_writers_of_one_window_take_turns_and_leave_no_duplicate(
    spark: SparkSession, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Finding 7 of issue 19: each Parquet writer deleted the window's days, then appended, so
    two at once left both writers' rows. The test holds the lease until both writers wait."""
    tables = TableWarehouse(tmp_path.as_uri(), "parquet")
    lease = tmp_path / "_locks" / "t"
    lease.parent.mkdir()
    lease.write_text("the test")
    errors: list[BaseException] = []

    def writer(value: int) -> None:
        try:
            tables.write_partitions("t", _frame(spark, [("2015-01-01", value)] * 3), JAN)
        except BaseException as error:
            errors.append(error)

    with caplog.at_level(logging.WARNING, logger="pdm_assets.adapters.warehouse.tables"):
        writers = [threading.Thread(target=writer, args=(value,)) for value in (1, 2)]
        for thread in writers:
            thread.start()
        deadline = time.monotonic() + 60
        while sum("holds its lease; waiting" in r.getMessage() for r in caplog.records) < 2:
            assert time.monotonic() < deadline, "both writers should wait on the lease"
            time.sleep(0.1)
        lease.unlink()
        for thread in writers:
            thread.join(timeout=120)
    assert not errors, errors
    rows = _values(tables.read_window(spark, "t", JAN))
    # One writer's three rows, the last one's: never six.
    assert rows in ([("2015-01-01", 1)] * 3, [("2015-01-01", 2)] * 3), rows
    assert not lease.exists()


def _two_output_step(fail_between: bool) -> dg.AssetsDefinition:
    @dg.multi_asset(
        outs={
            "quarantine": dg.AssetOut(io_manager_key="warehouse_io_manager"),
            "raw": dg.AssetOut(io_manager_key="warehouse_io_manager"),
        },
        partitions_def=dg.DailyPartitionsDefinition(start_date="2015-01-01", end_date="2015-01-03"),
        # A check is an output of the step too, which the IO manager never sees.
        check_specs=[dg.AssetCheckSpec("rows", asset="raw")],
    )
    def step(
        spark: SparkResource,
    ) -> Iterator[dg.Output[DataFrame] | dg.AssetCheckResult]:
        session = spark.get_session()
        yield dg.Output(_frame(session, [("2015-01-01", 200)]), output_name="quarantine")
        if fail_between:
            raise RuntimeError("killed between the two outputs")
        yield dg.Output(_frame(session, [("2015-01-01", 2)]), output_name="raw")
        yield dg.AssetCheckResult(asset_key="raw", check_name="rows", passed=True)

    return step


@pytest.mark.any_zone
def test_the_io_manager_commits_a_steps_outputs_together(spark, tmp_path: Path) -> None:
    """Through Dagster: the quarantine a step yields first becomes visible only with the raw
    table it yields second; a step that fails between them changes neither."""
    warehouse = FolderWarehouse(tmp_path)
    day = Window.of_days(date(2015, 1, 1), date(2015, 1, 2))
    warehouse.write_partitions("raw", _frame(spark, [("2015-01-01", 1)]), day)
    warehouse.write_partitions("quarantine", _frame(spark, [("2015-01-01", 100)]), day)
    local = SparkResource(master="local[2]")
    resources = {
        "spark": local,
        "warehouse_io_manager": WarehouseIOManager(
            warehouse_resource=WarehouseReader(root=str(tmp_path)), spark=local
        ),
    }
    failed = dg.materialize(
        [_two_output_step(fail_between=True)],
        resources=resources,
        partition_key="2015-01-01",
        raise_on_error=False,
    )
    assert not failed.success
    assert _values(warehouse.read_window(spark, "quarantine", day)) == [("2015-01-01", 100)]
    assert _values(warehouse.read_window(spark, "raw", day)) == [("2015-01-01", 1)]

    done = dg.materialize(
        [_two_output_step(fail_between=False)], resources=resources, partition_key="2015-01-01"
    )
    assert done.success
    assert _values(warehouse.read_window(spark, "quarantine", day)) == [("2015-01-01", 200)]
    assert _values(warehouse.read_window(spark, "raw", day)) == [("2015-01-01", 2)]


@pytest.mark.any_zone
def test_the_io_manager_refuses_outputs_computed_from_replaced_inputs(
    spark, tmp_path: Path
) -> None:
    """A step whose input another run replaced while it computed fails and writes nothing; run
    again, it reads the new input."""
    warehouse = FolderWarehouse(tmp_path)
    day = Window.of_days(date(2015, 1, 1), date(2015, 1, 2))
    daily = dg.DailyPartitionsDefinition(start_date="2015-01-01", end_date="2015-01-03")
    warehouse.write_partitions("features", _frame(spark, [("2015-01-01", 1)]), day)
    other_run = {"replace": True}

    @dg.asset(partitions_def=daily, io_manager_key="warehouse_io_manager")
    def features() -> DataFrame:
        raise AssertionError("only read here")

    @dg.asset(partitions_def=daily, io_manager_key="warehouse_io_manager")
    def scores(features: DataFrame) -> DataFrame:
        if other_run["replace"]:
            warehouse.write_partitions("features", _frame(spark, [("2015-01-01", 2)]), day)
        return features.select("date", (F.col("value") * 10).alias("value"))

    local = SparkResource(master="local[2]")
    resources = {
        "warehouse_io_manager": WarehouseIOManager(
            warehouse_resource=WarehouseReader(root=str(tmp_path)), spark=local
        )
    }
    stale = dg.materialize(
        [features.to_source_asset(), scores],
        resources=resources,
        partition_key="2015-01-01",
        raise_on_error=False,
    )
    assert not stale.success
    failure = next(event for event in stale.all_events if event.is_step_failure)
    assert "another run replaced features date=2015-01-01" in str(failure.step_failure_data.error)
    assert warehouse.partition_dates("scores") == []

    other_run["replace"] = False
    dg.materialize(
        [features.to_source_asset(), scores], resources=resources, partition_key="2015-01-01"
    )
    assert _values(warehouse.read_window(spark, "scores", day)) == [("2015-01-01", 20)]
