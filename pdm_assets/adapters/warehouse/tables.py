"""Warehouse storage on an object store (abfss://, s3://, dbfs:/) or any Hadoop file system URI.

The folder store (folder.py) swaps symlinks, which object stores do not have. Here each asset
is one table under the root, partitioned by `date`:

    <root>/<dataset>                 the rows, partitioned by date (Delta or Parquet)
    <root>/_partitions/<dataset>     one row per materialised day: rows written, schema

Delta (the default on Databricks) replaces a window of days in one transaction with
`replaceWhere`, and refuses rows outside the window itself. Parquet has no transactions: the
window's `date=` folders are deleted, then the new rows appended, so a reader during the write
can see the window empty; use it only where Delta is not available. Two Parquet writers of one
dataset would each delete and then append, and the rows of both would stay: so each write holds
a lease, `<root>/_locks/<dataset>`, created with the file system's create-if-absent (atomic on
local and HDFS paths, ABFS and GCS; on S3 only with conditional writes), waits while another
writer holds it (and says so), and takes over a lease older than LEASE_SECONDS (its writer
died). Delta needs none: its transactions conflict instead.

The same store also writes to a catalog instead of paths: a root `uc://<catalog>.<schema>` (Unity
Catalog on Databricks, or any catalog of the Spark session) makes each asset a table of that
schema by name, `<catalog>.<schema>.<dataset>`, partitioned by `date`, and its manifest the table
`<dataset>__partitions` beside it; the catalog governs access, so no storage key is needed. In
Delta a window is one `replaceWhere` transaction, as for paths. In Parquet (a catalog's plain
tables, and the form tested here) the window's days with rows are replaced with a dynamic
partition overwrite and its days without rows dropped: not one transaction, and with no lease
(an overwrite of a partition replaces it, so two writers cannot leave both their rows).

A step's raw table and its quarantine are two tables here, so two transactions: a kill between
them leaves the quarantine of one read beside the rows of another until the step runs again.

The manifest is what says a day is materialised, including days without rows (a Parquet or Delta
table has no folder for them) and the schema to return for a window with no rows.
"""

from __future__ import annotations

import json
import logging
import os
import re
import socket
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, date, datetime
from urllib.parse import urlparse

from pyspark.errors import AnalysisException
from pyspark.sql import DataFrame, DataFrameWriter, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import StructType

from pdm_assets.adapters.warehouse.protocol import (
    DATE_COLUMN,
    MissingDatasetError,
    ReadVersion,
    Staged,
    by_day,
    read_all,
    rows_in_window,
)
from pdm_assets.core.timewindow import Window

MANIFEST = "_partitions"
LOCKS = "_locks"
CATALOG_SCHEME = "uc://"
_CATALOG_ROOT = re.compile(r"^uc://([A-Za-z0-9_]+)\.([A-Za-z0-9_]+)/?$")
LEASE_SECONDS = 6 * 3600
LEASE_POLL_SECONDS = 0.5

log = logging.getLogger(__name__)


def _active_session() -> SparkSession:
    session = SparkSession.getActiveSession()
    if session is None:
        raise RuntimeError("the table warehouse needs an active Spark session")
    return session


@dataclass(frozen=True)
class TableWarehouse:
    """Date-partitioned tables under a URI root, in Delta or Parquet."""

    root: str
    table_format: str = "delta"

    def __post_init__(self) -> None:
        if self.root.startswith(CATALOG_SCHEME) and not _CATALOG_ROOT.match(self.root):
            raise ValueError(
                f"a catalog warehouse is uc://<catalog>.<schema> (letters, digits, _), "
                f"got {self.root!r}"
            )

    @property
    def schema(self) -> str | None:
        """`<catalog>.<schema>` of a catalog root (uc://...); None for a path root."""
        match = _CATALOG_ROOT.match(self.root)
        return f"{match.group(1)}.{match.group(2)}" if match else None

    def dataset_location(self, dataset: str) -> str:
        if self.schema is not None:
            return f"{self.schema}.{dataset}"
        return f"{self.root.rstrip('/')}/{dataset}"

    def _manifest_location(self, dataset: str) -> str:
        if self.schema is not None:
            return f"{self.schema}.{dataset}__partitions"
        return f"{self.root.rstrip('/')}/{MANIFEST}/{dataset}"

    def _load(self, spark: SparkSession, location: str) -> DataFrame | None:
        if self.schema is not None:
            return spark.table(location) if spark.catalog.tableExists(location) else None
        try:
            return spark.read.format(self.table_format).load(location)
        except AnalysisException as error:
            # No table there yet; for Parquet also a folder written with zero rows (no files).
            absent = ("PATH_NOT_FOUND", "UNABLE_TO_INFER_SCHEMA", "is not a Delta table")
            if any(marker in str(error) for marker in absent):
                return None
            raise

    def _save(self, writer: DataFrameWriter, location: str) -> None:
        """A table of the catalog by name, or a table at a path."""
        if self.schema is not None:
            writer.saveAsTable(location)
        else:
            writer.save(location)

    def _manifest(self, spark: SparkSession, dataset: str) -> DataFrame | None:
        return self._load(spark, self._manifest_location(dataset))

    def partition_dates(self, dataset: str) -> list[date]:
        """Days of the dataset whose partition is materialised, sorted."""
        manifest = self._manifest(_active_session(), dataset)
        if manifest is None:
            return []
        return sorted(row[DATE_COLUMN] for row in manifest.select(DATE_COLUMN).collect())

    def write_partitions(self, dataset: str, frame: DataFrame, window: Window) -> dict[date, int]:
        """Replace every day of `window` with the rows of `frame`; returns rows per day.

        Rows dated outside the window are refused with an error rather than dropped.
        """
        if DATE_COLUMN not in frame.columns:
            raise ValueError(f"{dataset}: a partitioned dataset needs a '{DATE_COLUMN}' column")
        days = window.days
        inside = F.col(DATE_COLUMN).between(F.lit(days[0]), F.lit(days[-1]))
        spark = frame.sparkSession
        if self.table_format == "parquet":
            outside = frame.where(~inside | F.col(DATE_COLUMN).isNull())
            strays = [row[DATE_COLUMN] for row in outside.select(DATE_COLUMN).distinct().collect()]
            if strays:
                raise ValueError(
                    f"{dataset}: rows with a date outside the partition window "
                    f"{days[0]}..{days[-1]} ({sorted(map(str, strays))}); refusing to drop them"
                )
        with self._writer_lease(spark, dataset):
            return self._write_window(spark, dataset, frame, window)

    def _write_window(
        self, spark: SparkSession, dataset: str, frame: DataFrame, window: Window
    ) -> dict[date, int]:
        days = window.days
        inside = F.col(DATE_COLUMN).between(F.lit(days[0]), F.lit(days[-1]))
        self._replace_days(spark, self.dataset_location(dataset), frame, window)
        written = self._load(spark, self.dataset_location(dataset))
        counts = {day: 0 for day in days}
        if written is not None:
            per_day = written.where(inside).groupBy(DATE_COLUMN).count().collect()
            counts.update({row[DATE_COLUMN]: int(row["count"]) for row in per_day})
        schema_json = frame.schema.json()
        now = datetime.now(UTC)
        manifest = spark.createDataFrame(
            [(day, counts[day], schema_json, now) for day in days],
            "date date, rows long, schema string, written_at timestamp",
        )
        self._replace_days(spark, self._manifest_location(dataset), manifest, window)
        return counts

    @contextmanager
    def _writer_lease(self, spark: SparkSession, dataset: str) -> Iterator[None]:
        """Hold `<root>/_locks/<dataset>` while writing Parquet (nothing for Delta or tables of
        a catalog)."""
        if self.table_format != "parquet" or self.schema is not None:
            yield
            return
        lease = Lease(spark, f"{self.root.rstrip('/')}/{LOCKS}/{dataset}", dataset)
        lease.acquire()
        try:
            yield
        finally:
            lease.release()

    def _replace_days(
        self, spark: SparkSession, location: str, frame: DataFrame, window: Window
    ) -> None:
        days = window.days
        if self.table_format == "delta":
            # One transaction; Delta itself rejects rows that do not match the predicate.
            predicate = f"{DATE_COLUMN} >= '{days[0]}' AND {DATE_COLUMN} <= '{days[-1]}'"
            writer = (
                by_day(frame)
                .write.format("delta")
                .mode("overwrite")
                .option("replaceWhere", predicate)
                .partitionBy(DATE_COLUMN)
            )
            self._save(writer, location)
            return
        if self.schema is not None:
            _replace_table_days(spark, location, frame, days)
            return
        _delete_day_folders(spark, location, days)
        by_day(frame).write.mode("append").partitionBy(DATE_COLUMN).parquet(location)

    def write_table(self, dataset: str, frame: DataFrame) -> int:
        """Replace an unpartitioned dataset (one Delta transaction); returns its row count."""
        location = self.dataset_location(dataset)
        self._save(frame.write.format(self.table_format).mode("overwrite"), location)
        return self.read_table(frame.sparkSession, dataset).count()

    def stage_partitions(self, dataset: str, frame: DataFrame, window: Window) -> Staged:
        """Writes (and so commits) at once: each table's window is its own transaction."""
        counts = self.write_partitions(dataset, frame, window)
        return Staged(dataset, {}, {day: rows for day, rows in counts.items()})

    def stage_table(self, dataset: str, frame: DataFrame) -> Staged:
        return Staged(dataset, {}, {None: self.write_table(dataset, frame)})

    def commit(self, staged: Sequence[Staged], read: Sequence[ReadVersion] = ()) -> None:
        """Nothing left to do (see stage_partitions); inputs are not checked here."""

    def read_window(
        self,
        spark: SparkSession,
        dataset: str,
        window: Window,
        read: list[ReadVersion] | None = None,
    ) -> DataFrame:
        """All rows of the days in `window`, as one read pruned by the date partitions."""
        manifest = self._manifest(spark, dataset)
        if manifest is None:
            raise MissingDatasetError(
                f"dataset '{dataset}' has no materialised partition under "
                f"{self.dataset_location(dataset)}; materialise the upstream asset first"
            )
        rows = self._load(spark, self.dataset_location(dataset))
        if rows is None:
            # Every materialised day was empty, so no data file exists; the manifest has the schema.
            latest = manifest.orderBy(F.col("written_at").desc()).first()
            assert latest is not None
            schema = StructType.fromJson(json.loads(latest["schema"]))
            return spark.createDataFrame([], schema)
        return rows_in_window(rows, window)

    def read_all(self, spark: SparkSession, dataset: str) -> DataFrame:
        return read_all(self, spark, dataset)

    def read_table(
        self, spark: SparkSession, dataset: str, read: list[ReadVersion] | None = None
    ) -> DataFrame:
        rows = self._load(spark, self.dataset_location(dataset))
        if rows is None:
            raise MissingDatasetError(
                f"dataset '{dataset}' was never materialised (no table at "
                f"{self.dataset_location(dataset)}); materialise it first"
            )
        return rows


def _replace_table_days(
    spark: SparkSession, table: str, frame: DataFrame, days: list[date]
) -> None:
    """Replace `days` of a Parquet table of the catalog: the days with rows by a dynamic
    partition overwrite (only the partitions the rows fall in), then the others dropped."""
    if not spark.catalog.tableExists(table):
        by_day(frame).write.format("parquet").partitionBy(DATE_COLUMN).saveAsTable(table)
        return
    columns = spark.table(table).columns  # insertInto matches columns by position
    (
        by_day(frame.select(*columns))
        .write.option("partitionOverwriteMode", "dynamic")
        .insertInto(table, overwrite=True)
    )
    with_rows = {row[DATE_COLUMN] for row in frame.select(DATE_COLUMN).distinct().collect()}
    for day in days:
        if day not in with_rows:
            spark.sql(f"ALTER TABLE {table} DROP IF EXISTS PARTITION ({DATE_COLUMN} = '{day}')")


def _delete_day_folders(spark: SparkSession, location: str, days: list[date]) -> None:
    """Delete `date=` folders through the Hadoop file system of the location (any scheme)."""
    jvm = getattr(spark, "_jvm", None)
    if jvm is None:
        raise RuntimeError(
            "the Parquet table warehouse needs Spark Classic (it deletes folders through the JVM); "
            "use PDM_WAREHOUSE_FORMAT=delta with Spark Connect"
        )
    hadoop_conf = spark._jsc.hadoopConfiguration()  # type: ignore[attr-defined]
    for day in days:
        path = jvm.org.apache.hadoop.fs.Path(f"{location}/{DATE_COLUMN}={day.isoformat()}")
        path.getFileSystem(hadoop_conf).delete(path, True)


class Lease:
    """A writer's lease: a file created only if absent (O_EXCL for a local `file:` root,
    Hadoop's create without overwrite for any other scheme)."""

    def __init__(self, spark: SparkSession, location: str, dataset: str) -> None:
        self.dataset = dataset
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex}"
        self.local = urlparse(location).path if location.startswith("file:") else None
        if self.local is not None:
            os.makedirs(os.path.dirname(self.local), exist_ok=True)
            return
        jvm = getattr(spark, "_jvm", None)
        if jvm is None:
            raise RuntimeError(
                "the Parquet table warehouse needs Spark Classic (its lease is a Hadoop file); "
                "use PDM_WAREHOUSE_FORMAT=delta with Spark Connect"
            )
        self.path = jvm.org.apache.hadoop.fs.Path(location)
        self.fs = self.path.getFileSystem(spark._jsc.hadoopConfiguration())  # type: ignore[attr-defined]

    def _try_create(self) -> bool:
        if self.local is not None:
            try:
                descriptor = os.open(self.local, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            except FileExistsError:
                return False
            with os.fdopen(descriptor, "w") as handle:
                handle.write(self.owner)
            return True
        try:
            stream = self.fs.create(self.path, False)
        except Exception as error:  # py4j wraps Java's FileAlreadyExistsException
            if "AlreadyExists" in str(error) or "already exists" in str(error):
                return False
            raise
        stream.write(self.owner.encode())
        stream.close()
        return True

    def _age_seconds(self) -> float | None:
        try:
            if self.local is not None:
                return time.time() - os.stat(self.local).st_mtime
            status = self.fs.getFileStatus(self.path)
        except Exception:  # gone meanwhile
            return None
        return time.time() - status.getModificationTime() / 1000

    def _delete(self) -> None:
        if self.local is not None:
            with suppress(FileNotFoundError):
                os.unlink(self.local)
        else:
            self.fs.delete(self.path, False)

    def acquire(self, timeout_seconds: float = LEASE_SECONDS) -> None:
        started: float | None = None
        while not self._try_create():
            age = self._age_seconds()
            if age is not None and age > LEASE_SECONDS:
                log.warning("%s: taking over a writer lease %.0f s old", self.dataset, age)
                self._delete()
                continue
            if started is None:
                started = time.monotonic()
                log.warning("%s: another writer holds its lease; waiting for it", self.dataset)
            elif time.monotonic() - started > timeout_seconds:
                raise TimeoutError(f"{self.dataset}: another writer held its lease too long")
            time.sleep(LEASE_POLL_SECONDS)
        if started is not None:
            log.warning(
                "%s: waited %.1f s for another writer; this write now replaces its rows for "
                "the days both wrote",
                self.dataset,
                time.monotonic() - started,
            )

    def release(self) -> None:
        self._delete()
