"""Warehouse storage: one Parquet dataset per asset, `date=` partitions replaced atomically.

Layout of a dataset (a local folder):

    <warehouse>/<dataset>/date=2015-01-01  -> _versions/date=2015-01-01/<uuid>   (a symlink)
    <warehouse>/<dataset>/_versions/date=2015-01-01/<uuid>/part-*.parquet
    <warehouse>/<dataset>/current          -> _versions/current/<uuid>            (unpartitioned)

A partition is written in full into a new version folder, then the `date=` symlink is swapped with
one rename(2), which is atomic: a reader sees the old rows or the new ones, never a mix, and a
run killed while writing leaves the old version in place. Spark skips `_`-prefixed folders when it
discovers partitions, so versions are invisible to readers. Reading a window of days is a single
read of exactly the versions the window's `date=` links point at when the read starts.

Writers of one dataset take turns: each write holds an exclusive lock on `<dataset>/_writer.lock`
(flock(2), released by the kernel when its process dies, even by kill -9). Two runs writing the
same partitions at once therefore replace them one whole window after the other, and the one
that waited says so in its log. Holding the lock, a writer knows that no other write of the
dataset is in progress, so it sweeps what a killed writer left: `_staging-*` folders at once, and
versions no `date=` link points at once they are older than `keep_replaced_seconds`
(PDM_KEEP_REPLACED_HOURS, 24 hours by default, at least one). A version that a swap replaced is
kept that long too: another run may be reading it (Spark reads lazily, long after it listed the
files), and the rows and quarantine of a day landed again stay on disk that long, to compare or
restore. So a crash leaves at most one staged copy of the window it was writing, until the first
write of that dataset after that time.

A step's outputs are committed together, or not at all (`commit`). Each output is first staged
(written under its dataset's lock and moved into version folders no link points at yet); then,
holding `<warehouse>/_commit.lock` exclusively, the writer writes one journal,
`_commits/<uuid>.json`, naming every link of every output and the version it gets (the commit
point: one rename), swaps the links, and deletes the journal. Readers resolve links holding the
same lock shared, so they see a step's raw table and its quarantine, and every day of its window,
all from before the commit or all from after. A journal that outlives its lock was left by a
writer killed mid-swap: whoever takes the lock next (reader or writer) finishes its swaps first.

The commit also refuses rows computed from inputs that changed meanwhile: the IO manager names
the versions of the inputs the step read (`ReadVersion`), and if another run replaced one of
them since, nothing is committed and the step fails (its retry reads the new rows). Runs of the
sensor never meet this (they queue on one pool); runs launched around the queue can.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import shutil
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from pyspark.sql import DataFrame, Observation, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.pandas.types import to_arrow_schema

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

log = logging.getLogger(__name__)

VERSIONS = "_versions"
UNPARTITIONED = "current"
LOCK_FILE = "_writer.lock"
STAGING_PREFIX = "_staging-"
COMMITS = "_commits"
COMMIT_LOCK = "_commit.lock"
LOCK_TIMEOUT_SECONDS = 6 * 3600
# Readers need an hour at least; a day by default, to look at what a re-landed day replaced.
MIN_KEEP_REPLACED_SECONDS = 3600
DEFAULT_KEEP_REPLACED_SECONDS = 24 * 3600
_DAY_IN_PATH = r"/date=(\d{4}-\d{2}-\d{2})/"


class RowsNotVisibleError(RuntimeError):
    """Spark wrote rows that the driver does not find where they were written."""


class StaleInputError(RuntimeError):
    """An input of the step was replaced by another run after the step read it."""


def _link_name(day: date) -> str:
    return f"{DATE_COLUMN}={day.isoformat()}"


@dataclass(frozen=True)
class FolderWarehouse:
    """Parquet datasets under a local root folder."""

    root: Path
    keep_replaced_seconds: float = DEFAULT_KEEP_REPLACED_SECONDS

    def __post_init__(self) -> None:
        if self.keep_replaced_seconds < MIN_KEEP_REPLACED_SECONDS:
            raise ValueError(
                f"replaced versions must be kept an hour at least (readers may still read them), "
                f"not {self.keep_replaced_seconds / 3600:g} h"
            )

    def dataset_path(self, dataset: str) -> Path:
        return self.root / dataset

    def dataset_location(self, dataset: str) -> str:
        return str(self.dataset_path(dataset))

    def partition_dates(self, dataset: str) -> list[date]:
        """Days of the dataset whose partition is materialised, sorted."""
        with self._reading():
            return self._partition_dates(dataset)

    def _partition_dates(self, dataset: str) -> list[date]:
        path = self.dataset_path(dataset)
        if not path.exists():
            return []
        days = []
        for entry in path.iterdir():
            if entry.name.startswith(f"{DATE_COLUMN}=") and entry.is_symlink() and entry.exists():
                days.append(date.fromisoformat(entry.name.split("=", 1)[1]))
        return sorted(days)

    def write_partitions(self, dataset: str, frame: DataFrame, window: Window) -> dict[date, int]:
        """Replace every day of `window` with the rows of `frame` for that day, all at once.

        `frame` must have a `date` column, and every row must fall inside the window: a row
        outside would otherwise be dropped without a trace. Days without rows become empty
        partitions, which record "materialised, nothing happened that day"; but the rows Spark
        counted as it wrote must all be found in staging, or nothing is committed (a day whose
        rows went where the driver cannot see them would otherwise become an empty partition).
        Returns rows per day.
        """
        staged = self.stage_partitions(dataset, frame, window)
        self.commit([staged])
        return {day: rows for day, rows in staged.counts.items() if day is not None}

    def write_table(self, dataset: str, frame: DataFrame) -> int:
        """Replace an unpartitioned dataset atomically; returns its row count."""
        staged = self.stage_table(dataset, frame)
        self.commit([staged])
        return sum(staged.counts.values())

    def stage_partitions(self, dataset: str, frame: DataFrame, window: Window) -> Staged:
        """Write the days of `window` (as `write_partitions` describes) without committing."""
        if DATE_COLUMN not in frame.columns:
            raise ValueError(f"{dataset}: a partitioned dataset needs a '{DATE_COLUMN}' column")
        with self.writer_lock(dataset):
            return self._stage_partitions(dataset, frame, window)

    def stage_table(self, dataset: str, frame: DataFrame) -> Staged:
        """Write an unpartitioned dataset's new version without committing."""
        dataset_path = self.dataset_path(dataset)
        with self.writer_lock(dataset):
            version = dataset_path / VERSIONS / UNPARTITIONED / uuid.uuid4().hex
            frame.write.parquet(str(version))
            return Staged(
                dataset,
                {UNPARTITIONED: os.path.relpath(version, dataset_path)},
                {None: _parquet_rows(version)},
            )

    def _stage_partitions(self, dataset: str, frame: DataFrame, window: Window) -> Staged:
        days = window.days
        dataset_path = self.dataset_path(dataset)
        staging = dataset_path / VERSIONS / f"{STAGING_PREFIX}{uuid.uuid4().hex}"
        # Counted as Spark writes, in the same job: compared below with what the driver finds in
        # staging, so rows written where the driver cannot see them fail the step.
        observed = Observation(f"rows_written_{staging.name}")
        by_day(frame).observe(observed, F.count(F.lit(1)).alias("rows")).write.partitionBy(
            DATE_COLUMN
        ).parquet(str(staging))
        # Spark wrote one folder per date it saw; a folder outside the window (or the folder of
        # null dates) holds rows that no partition of this run would keep.
        expected = {_link_name(day) for day in days}
        # (No staging folder at all: the driver saw none of the writes; counted below.)
        entries = list(staging.iterdir()) if staging.is_dir() else []
        unexpected = sorted(
            entry.name for entry in entries if entry.is_dir() and entry.name not in expected
        )
        if unexpected:
            shutil.rmtree(staging, ignore_errors=True)
            raise ValueError(
                f"{dataset}: rows with a date outside the partition window {days[0]}..{days[-1]} "
                f"({', '.join(unexpected)}); refusing to drop them silently"
            )
        data_schema = to_arrow_schema(frame.drop(DATE_COLUMN).schema, timezone="UTC")
        staged = {
            day: _parquet_rows(staging / _link_name(day))
            for day in days
            if (staging / _link_name(day)).exists()
        }
        spark_rows = int(observed.get["rows"])
        if sum(staged.values()) != spark_rows:
            shutil.rmtree(staging, ignore_errors=True)
            raise RowsNotVisibleError(
                f"{dataset}: Spark wrote {spark_rows} rows but {sum(staged.values())} are in "
                f"{staging} as this process sees it; nothing was committed. The executors write "
                "to a path this driver does not see (a folder warehouse on a cluster needs a "
                "path every node shares; use an object-store URI or a Unity Catalog volume)"
            )
        links: dict[str, str] = {}
        try:
            # Out of staging (which the next writer sweeps at once) into fresh version folders,
            # which a sweep leaves alone for keep_replaced_seconds: time enough to commit.
            for day in days:
                version = dataset_path / VERSIONS / _link_name(day) / uuid.uuid4().hex
                version.parent.mkdir(parents=True, exist_ok=True)
                written = staging / _link_name(day)
                if written.exists():
                    os.replace(written, version)
                else:
                    _write_empty_parquet(version, data_schema)
                links[_link_name(day)] = os.path.relpath(version, dataset_path)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return Staged(dataset, links, {day: staged.get(day, 0) for day in days})

    def commit(self, staged: Sequence[Staged], read: Sequence[ReadVersion] = ()) -> None:
        """Point every link of `staged` at its new version, all in one commit, or none.

        Refused (StaleInputError, nothing changed, the staged versions removed) when a link in
        `read` no longer points at the version the step read: its rows were computed from
        inputs another run has replaced since.
        """
        self.root.mkdir(parents=True, exist_ok=True)
        with self._links_lock(exclusive=True):
            replaced = [
                f"{pin.dataset} {pin.link}" for pin in read if self._current(pin) != pin.version
            ]
            if replaced:
                for output in staged:
                    for version in output.links.values():
                        shutil.rmtree(
                            self.dataset_path(output.dataset) / version, ignore_errors=True
                        )
                raise StaleInputError(
                    f"another run replaced {', '.join(sorted(replaced))} after this step read "
                    f"it; nothing of {', '.join(o.dataset for o in staged)} was committed (rows "
                    "computed from the older inputs would replace newer ones). Run the step again"
                )
            journal = self._journal_folder() / f"{time.time_ns():020d}-{uuid.uuid4().hex}.json"
            journal.parent.mkdir(exist_ok=True)
            entries = [[o.dataset, link, v] for o in staged for link, v in o.links.items()]
            temporary = journal.with_name(f".{journal.name}")
            temporary.write_text(json.dumps(entries))
            # The commit point: from here on the swaps happen, by this writer or the next one.
            os.replace(temporary, journal)
            self._apply(journal)

    def _current(self, pin: ReadVersion) -> str | None:
        link = self.dataset_path(pin.dataset) / pin.link
        return os.readlink(link) if link.is_symlink() else None

    def _journal_folder(self) -> Path:
        return self.root / COMMITS

    def _apply(self, journal: Path) -> None:
        for dataset, link, version in json.loads(journal.read_text()):
            dataset_path = self.dataset_path(dataset)
            if (dataset_path / version).is_dir():
                self._swap_link(dataset_path, link, dataset_path / version)
            else:
                log.error("%s: %s, committed for %s, is gone; link left", dataset, version, link)
        journal.unlink()

    @contextmanager
    def _links_lock(self, exclusive: bool) -> Iterator[None]:
        """Hold the warehouse's commit lock; first finish the swaps of a commit whose writer
        died (its journal is still there, and no live writer holds the lock)."""
        with open(self.root / COMMIT_LOCK, "a+") as handle:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
            try:
                folder = self._journal_folder()
                left = sorted(folder.glob("[0-9]*.json")) if folder.is_dir() else []
                if left:
                    if not exclusive:
                        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
                    # Another reader may have finished them while this one waited.
                    for journal in sorted(folder.glob("[0-9]*.json")):
                        log.warning("finishing commit %s of a writer that died", journal.name)
                        self._apply(journal)
                    if not exclusive:
                        fcntl.flock(handle.fileno(), fcntl.LOCK_SH)
                yield
            finally:
                fcntl.flock(handle.fileno(), fcntl.LOCK_UN)

    @contextmanager
    def _reading(self) -> Iterator[bool]:
        """Links stay put while held (shared with other readers); False: no warehouse yet."""
        if not self.root.is_dir():
            yield False
            return
        with self._links_lock(exclusive=False):
            yield True

    @contextmanager
    def writer_lock(
        self, dataset: str, timeout_seconds: float = LOCK_TIMEOUT_SECONDS
    ) -> Iterator[None]:
        """Hold the dataset's writer lock; wait (and say so) while another writer holds it.

        Once held, whatever a dead writer left behind is swept.
        """
        dataset_path = self.dataset_path(dataset)
        dataset_path.mkdir(parents=True, exist_ok=True)
        with open(dataset_path / LOCK_FILE, "a+") as handle:
            _acquire(handle.fileno(), dataset, timeout_seconds)
            try:
                # A dead writer's commit is finished before its versions could look unlinked.
                with self._links_lock(exclusive=True):
                    pass
                _sweep_dead_writers(dataset_path, self.keep_replaced_seconds)
                yield
            finally:
                fcntl.flock(handle.fileno(), fcntl.LOCK_UN)

    def read_window(
        self,
        spark: SparkSession,
        dataset: str,
        window: Window,
        read: list[ReadVersion] | None = None,
    ) -> DataFrame:
        """All rows of the days in `window`, as one scan of exactly those days' versions.

        The `date=` links are resolved here, once, under the commit lock: Spark opens files
        lazily, and a path through a link would name the files of whatever version the link
        points at by then (another run may swap it meanwhile). A replaced version stays on disk
        for `keep_replaced_seconds`, so the read finishes on the rows it started with. The
        versions read are appended to `read`, for `commit` to check.
        """
        path = self.dataset_path(dataset)
        with self._reading():
            materialised = self._partition_dates(dataset)
            if not materialised:
                raise MissingDatasetError(
                    f"dataset '{dataset}' has no materialised partition under {path}; "
                    "materialise the upstream asset first"
                )
            wanted = set(window.days)
            days = [day for day in materialised if day in wanted] or materialised[:1]
            links = {_link_name(day): os.readlink(path / _link_name(day)) for day in days}
        if read is not None:
            read.extend(ReadVersion(dataset, link, version) for link, version in links.items())
        versions = [str((path / version).resolve()) for version in links.values()]
        rows = spark.read.parquet(*versions).withColumn(
            DATE_COLUMN,
            F.to_date(F.regexp_extract(F.col("_metadata.file_path"), _DAY_IN_PATH, 1)),
        )
        return rows_in_window(rows, window)

    def read_all(self, spark: SparkSession, dataset: str) -> DataFrame:
        return read_all(self, spark, dataset)

    def read_table(
        self, spark: SparkSession, dataset: str, read: list[ReadVersion] | None = None
    ) -> DataFrame:
        path = self.dataset_path(dataset) / UNPARTITIONED
        with self._reading():
            if not path.exists():
                raise MissingDatasetError(
                    f"dataset '{dataset}' was never materialised (no {path}); materialise it first"
                )
            version = os.readlink(path)
        if read is not None:
            read.append(ReadVersion(dataset, UNPARTITIONED, version))
        # Resolved once, as in read_window: the rows stay those of the version read.
        return spark.read.parquet(str((path.parent / version).resolve()))

    @staticmethod
    def _swap_link(dataset_path: Path, name: str, version: Path) -> None:
        link = dataset_path / name
        previous = link.resolve() if link.is_symlink() else None
        if link.exists() and not link.is_symlink():
            raise RuntimeError(f"{link} is not a symlink written by pdm_assets; move it away")
        temporary = dataset_path / f".{name}.{uuid.uuid4().hex}"
        os.symlink(os.path.relpath(version, dataset_path), temporary)
        os.replace(temporary, link)
        if previous is not None and previous != version.resolve() and previous.exists():
            # Another run may still be reading the old version: it is swept by a later write,
            # once the dataset's keep_replaced_seconds have passed from now.
            os.utime(previous)


def _acquire(descriptor: int, dataset: str, timeout_seconds: float) -> None:
    started: float | None = None
    while True:
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if started is None:
                started = time.monotonic()
                log.warning(
                    "%s: another run is writing this dataset; waiting for it to finish", dataset
                )
            elif time.monotonic() - started > timeout_seconds:
                raise TimeoutError(
                    f"{dataset}: another writer held its lock for over {timeout_seconds:.0f} s"
                ) from None
            time.sleep(0.2)
            continue
        if started is None:
            return
        log.warning(
            "%s: waited %.1f s for another run's write; this run's rows now replace its rows "
            "for the days both wrote",
            dataset,
            time.monotonic() - started,
        )
        return


def _sweep_dead_writers(
    dataset_path: Path, grace_seconds: float = DEFAULT_KEEP_REPLACED_SECONDS
) -> list[Path]:
    """Remove what writers killed mid-write left (staging folders, half-made links) and the
    versions no link points at that are older than `grace_seconds`. Only called under the writer
    lock, so no live writer owns any of them."""
    cutoff = time.time() - grace_seconds
    linked = {
        entry.resolve()
        for entry in dataset_path.iterdir()
        if entry.is_symlink() and not entry.name.startswith(".")
    }
    swept: list[Path] = []
    for entry in dataset_path.iterdir():
        if entry.name.startswith(".") and entry.is_symlink():
            entry.unlink(missing_ok=True)
            swept.append(entry)
    versions = dataset_path / VERSIONS
    if versions.is_dir():
        for folder in versions.iterdir():
            if folder.name.startswith(STAGING_PREFIX):
                candidates = [folder]
            elif folder.is_dir():
                candidates = [
                    version
                    for version in folder.iterdir()
                    if version.resolve() not in linked and version.stat().st_mtime < cutoff
                ]
            else:
                candidates = []
            for candidate in candidates:
                shutil.rmtree(candidate, ignore_errors=True)
                swept.append(candidate)
    if swept:
        log.warning(
            "%s: removed %d folders left by dead writers or replaced over %.0f h ago",
            dataset_path.name,
            len(swept),
            grace_seconds / 3600,
        )
    return swept


def _write_empty_parquet(folder: Path, schema: pa.Schema) -> None:
    folder.mkdir(parents=True)
    pq.write_table(schema.empty_table(), folder / "part-00000-empty.parquet")


def _parquet_rows(folder: Path) -> int:
    return sum(pq.ParquetFile(part).metadata.num_rows for part in folder.glob("*.parquet"))
