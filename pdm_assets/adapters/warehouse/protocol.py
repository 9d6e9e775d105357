"""What every warehouse store offers the assets and the IO manager, and helpers they share.

Two stores implement `DatasetStore`: the folder store (folder.py, local folders with symlinked
day versions) and the table store (tables.py, Delta or Parquet tables on a URI); `open_store`
(stores.py) picks one from the warehouse root.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Protocol

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from pdm_assets.core.timewindow import Window

DATE_COLUMN = "date"
_ONE_DAY = timedelta(days=1)


class MissingDatasetError(LookupError):
    """Raised when an asset reads a dataset that was never materialised."""


@dataclass(frozen=True)
class Staged:
    """One output written but not yet visible to readers (until `commit`).

    `counts` are its rows per day (unpartitioned: one entry, under `None`). For the folder store,
    `links` maps each link of the dataset (`date=...` or `current`) to the version it gets at the
    commit, relative to the dataset folder; a table store commits each table as it writes it,
    and leaves `links` empty.
    """

    dataset: str
    links: dict[str, str]
    counts: dict[date | None, int]


@dataclass(frozen=True)
class ReadVersion:
    """The version of one day (or of the whole table) of a dataset that a step read; the folder
    store's `commit` refuses a step whose inputs changed since."""

    dataset: str
    link: str
    version: str


class DatasetStore(Protocol):
    """What assets and the IO manager need of a warehouse, local folder or object store."""

    def dataset_location(self, dataset: str) -> str: ...

    def partition_dates(self, dataset: str) -> list[date]: ...

    def write_partitions(
        self, dataset: str, frame: DataFrame, window: Window
    ) -> dict[date, int]: ...

    def write_table(self, dataset: str, frame: DataFrame) -> int: ...

    # A step with several outputs (a raw table and its quarantine) stages each, then commits
    # them together; write_partitions and write_table are both in one call.
    def stage_partitions(self, dataset: str, frame: DataFrame, window: Window) -> Staged: ...

    def stage_table(self, dataset: str, frame: DataFrame) -> Staged: ...

    def commit(self, staged: Sequence[Staged], read: Sequence[ReadVersion] = ()) -> None: ...

    def read_window(
        self,
        spark: SparkSession,
        dataset: str,
        window: Window,
        read: list[ReadVersion] | None = None,
    ) -> DataFrame: ...

    def read_all(self, spark: SparkSession, dataset: str) -> DataFrame: ...

    def read_table(
        self, spark: SparkSession, dataset: str, read: list[ReadVersion] | None = None
    ) -> DataFrame: ...


def rows_in_window(frame: DataFrame, window: Window) -> DataFrame:
    """The rows of a date-partitioned frame whose `date` lies in `window` (prunes partitions)."""
    return frame.where(
        (F.col(DATE_COLUMN) >= F.lit(window.start.date()))
        & (F.col(DATE_COLUMN) < F.lit(window.end.date()))
    )


def by_day(frame: DataFrame) -> DataFrame:
    """The frame with each day's rows in one Spark partition, so a partitioned write makes one
    file per day. Without it every task writes a file for every day it holds: 8 tasks x 365 days
    of small files, whose opening and closing cost more than the rows (7 s of an 8 s write)."""
    return frame.repartition(F.col(DATE_COLUMN))


def read_all(store: DatasetStore, spark: SparkSession, dataset: str) -> DataFrame:
    """Every row of a dataset of any store, partitioned or not."""
    dates = store.partition_dates(dataset)
    if not dates:
        return store.read_table(spark, dataset)
    return store.read_window(spark, dataset, Window.of_days(dates[0], dates[-1] + _ONE_DAY))
