"""Where raw rows come from: a landing folder (filled by a producer, or by the fleet simulator
into its own folder), a folder of CSV files in the public data set's five-file layout, or tables
(tables.py).

A source returns rows as the files have them, every column a string, with the column names of
the fleet description (`Fleet.source_columns`), plus the file and line each came from
(raw_text.py); typing and validation happen in one place (validation.py) whatever the source. A
table the fleet does not have (no error codes, no maintenance log) is read as no rows, without
looking for a file.

A day is known only once its data has landed: a landing day with its `_COMPLETE` marker, or a
day inside the range a CSV source's files cover. Asking a source for a day it does not know is
an error naming the day, never an empty day: an empty failures partition would read as "no
failure that day" and turn the labels of the week before into wrong zeros. Only the simulator
source ever writes, and only into its own folder.
"""

import functools
import logging
from datetime import date, timedelta
from pathlib import Path

import dagster as dg
from pydantic import Field
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from pdm_assets.core import feedback, filesystem, landing
from pdm_assets.core.csv_lines import raw_schema, read_rows
from pdm_assets.core.fleet import Fleet
from pdm_assets.core.timewindow import Window, day_ranges, from_spark, midnight, timestamp_literal
from pdm_assets.core.validation import parse_datetime
from pdm_assets.simulator.fleet_simulator import FleetSpec, SimulatedFleet, simulate, write_landing

log = logging.getLogger(__name__)

PUBLIC_FILES = {
    "telemetry": "PdM_telemetry",
    "errors": "PdM_errors",
    "maint": "PdM_maint",
    "failures": "PdM_failures",
    "machines": "PdM_machines",
}
FEEDBACK_FILE = "PdM_feedback"


class MissingSourceDataError(LookupError):
    """A day was asked for that the source does not have (not landed, or past the data's end)."""


class RawSource(dg.ConfigurableResource):
    """Where the raw assets read from: rows as text, with the fleet description's column names."""

    def read_events(
        self,
        spark: SparkSession,
        fleet: Fleet,
        table: str,
        window: Window,
        include_history: bool,
        include_after: bool = False,
    ) -> DataFrame:
        """Rows of `table` for the days of `window`; with `include_history`, also earlier rows,
        with `include_after` also later rows (the window ends at the last partition).

        Raises MissingSourceDataError naming the days of `window` that have not landed. A table
        the fleet does not have gives no rows.
        """
        if table not in fleet.event_tables:
            return spark.createDataFrame([], raw_schema(fleet.source_columns(table)))
        return self._read_events(spark, fleet, table, window, include_history, include_after)

    def _read_events(
        self,
        spark: SparkSession,
        fleet: Fleet,
        table: str,
        window: Window,
        include_history: bool,
        include_after: bool,
    ) -> DataFrame:
        raise NotImplementedError

    def read_machines(self, spark: SparkSession, fleet: Fleet) -> DataFrame:
        raise NotImplementedError

    def read_feedback(self, spark: SparkSession) -> DataFrame:
        """The planner's feedback rows as text (`feedback.COLUMNS`, with provenance); no rows
        where none was recorded. Read whole: it is small, and any row may acknowledge an alert
        of any later day."""
        return spark.createDataFrame([], raw_schema(feedback.COLUMNS))


class LandingFolderSource(RawSource):
    """Daily folders of CSV files under `landing_dir` (layout in landing.py), which a producer
    fills; this source only reads them.

    The rows of day D are the files of `date=D`; the first partition also takes the replacement
    history written before the first day (history/maint.csv). A day is read once its
    `_COMPLETE` marker and files are there, and only if the files hold the rows the marker
    counts. `landing_dir` may be a local folder or an object-store URI (filesystem.py).
    """

    landing_dir: str = Field(description="Folder (or URI) of date=YYYY-MM-DD/ day folders.")

    def prepare(self, fleet: Fleet, days: list[date]) -> None:
        """Make sure the files of `days` exist; a producer's landing folder only waits for them."""

    def missing_hint(self, fleet: Fleet) -> str:
        files = ", ".join(f"{table}.csv" for table in fleet.event_tables)
        return f"a day is read once its folder has {files} and _COMPLETE"

    def _read_events(
        self,
        spark: SparkSession,
        fleet: Fleet,
        table: str,
        window: Window,
        include_history: bool,
        include_after: bool,
    ) -> DataFrame:
        # Day folders after the last partition are the sensor's business (it ignores them and
        # says so); a range read never reaches past its window.
        self.prepare(fleet, window.days)
        tables = fleet.event_tables
        missing = [
            d for d in window.days if not landing.is_day_complete(self.landing_dir, d, tables)
        ]
        if missing:
            raise MissingSourceDataError(
                f"{table}: no complete landing folder for {day_ranges(missing)} under "
                f"{self.landing_dir} ({self.missing_hint(fleet)})"
            )
        for day in window.days:
            landing.check_day(self.landing_dir, day, [table])
        paths = [landing.table_path(self.landing_dir, day, table) for day in window.days]
        if include_history and table in landing.HISTORY_TABLES:
            history = landing.history_path(self.landing_dir, table)
            if filesystem.is_file(history):
                paths.append(history)
        return read_rows(spark, paths, fleet.source_columns(table))

    def read_machines(self, spark: SparkSession, fleet: Fleet) -> DataFrame:
        self.prepare(fleet, [])
        path = landing.machines_path(self.landing_dir)
        if not filesystem.is_file(path):
            raise FileNotFoundError(f"no machines table at {path}")
        return read_rows(spark, [path], fleet.source_columns("machines"))

    def read_feedback(self, spark: SparkSession) -> DataFrame:
        paths = landing.feedback_paths(self.landing_dir)
        return read_rows(spark, paths, feedback.COLUMNS)


@functools.lru_cache(maxsize=2)
def _simulated_fleet(spec: FleetSpec, fleet: Fleet) -> SimulatedFleet:
    return simulate(spec, fleet)


class SimulatedFleetSource(LandingFolderSource):
    """The embedded default: a deterministic simulated fleet of the described shape, written
    into the simulator's own landing folder under the project home (never a producer's).

    Days of the simulated range that have no landing folder yet are simulated and written on
    first read, so materialising any partition works on a fresh home.
    """

    machines: int = Field(default=100, description="Number of simulated machines.")
    start: str = Field(default="2015-01-01", description="First simulated day (YYYY-MM-DD).")
    days: int = Field(default=120, description="Number of simulated days.")
    seed: int = Field(default=42, description="Random seed; the same seed gives the same files.")

    @property
    def spec(self) -> FleetSpec:
        return FleetSpec(
            machines=self.machines,
            start=date.fromisoformat(self.start),
            days=self.days,
            seed=self.seed,
        )

    def prepare(self, fleet: Fleet, days: list[date]) -> None:
        spec = self.spec
        simulated = {spec.start + timedelta(days=offset) for offset in range(spec.days)}
        wanted = [day for day in days if day in simulated]
        tables = fleet.event_tables
        to_write = [d for d in wanted if not landing.is_day_complete(self.landing_dir, d, tables)]
        if not filesystem.is_file(landing.machines_path(self.landing_dir)) or to_write:
            log.info(
                "simulating %d machines, writing %d landing days", spec.machines, len(to_write)
            )
            write_landing(_simulated_fleet(spec, fleet), Path(self.landing_dir), to_write)

    def missing_hint(self, fleet: Fleet) -> str:
        spec = self.spec
        last = spec.start + timedelta(days=spec.days - 1)
        return f"the simulated fleet covers {spec.start} .. {last} (PDM_SIM_DAYS)"


class CsvFolderSource(RawSource):
    """A folder of files in the public data set's five-file layout, PdM_<table>.csv or .csv.gz,
    with the fleet description's columns.

    Each read selects the window's rows from the whole file; rows before the first partition (the
    maintenance log starts in 2014) and rows whose datetime cannot be parsed go to the first
    partition, where validation keeps the former and quarantines the latter.
    """

    csv_dir: str = Field(description="Folder holding PdM_telemetry.csv[.gz] and the others.")
    partitions_start: str = Field(
        default="2015-01-01", description="First daily partition; earlier rows are history."
    )

    def _file(self, table: str) -> str:
        for suffix in (".csv", ".csv.gz"):
            candidate = filesystem.join(self.csv_dir, f"{PUBLIC_FILES[table]}{suffix}")
            if filesystem.is_file(candidate):
                return candidate
        raise FileNotFoundError(f"no {PUBLIC_FILES[table]}.csv or .csv.gz in {self.csv_dir}")

    def covered_days(self, spark: SparkSession, fleet: Fleet) -> tuple[date, date]:
        """The days this source knows: from the first day any table has rows for to the last
        whole day of telemetry, or later where another table logs rows after the last reading
        (a run-to-failure fleet logs its last failures after its last readings)."""
        files = tuple(self._file(table) for table in fleet.event_tables)
        versions = tuple(_version(path) for path in files)
        columns = fleet.columns
        cadence = fleet.telemetry.cadence_minutes
        return _covered_days(spark, files, versions, columns.time, columns.timezone, cadence)

    def _read_events(
        self,
        spark: SparkSession,
        fleet: Fleet,
        table: str,
        window: Window,
        include_history: bool,
        include_after: bool,
    ) -> DataFrame:
        first, last = self.covered_days(spark, fleet)
        unknown = [day for day in window.days if not first <= day <= last]
        if unknown:
            raise MissingSourceDataError(
                f"{table}: {day_ranges(unknown)} outside the days the CSV files cover "
                f"({first} .. {last}, from "
                f"{', '.join(PUBLIC_FILES[name] for name in fleet.event_tables)})"
            )
        rows = read_rows(spark, [self._file(table)], fleet.source_columns(table))
        moment = parse_datetime(F.col(fleet.columns.time), fleet.columns.timezone)
        selected = window.contains(moment)
        if include_history:
            # Rows before the first partition (the maintenance log starts in 2014) and rows
            # whose datetime cannot be read at all go to the first partition, where validation
            # keeps the former and quarantines the latter.
            history_end = timestamp_literal(midnight(date.fromisoformat(self.partitions_start)))
            selected = selected | moment.isNull() | (moment < history_end)
        if include_after:
            selected = selected | (moment >= timestamp_literal(window.end))
        return rows.where(selected)

    def read_machines(self, spark: SparkSession, fleet: Fleet) -> DataFrame:
        return read_rows(spark, [self._file("machines")], fleet.source_columns("machines"))

    def read_feedback(self, spark: SparkSession) -> DataFrame:
        """PdM_feedback.csv[.gz] beside the other files, where the planner keeps one."""
        for suffix in (".csv", ".csv.gz"):
            candidate = filesystem.join(self.csv_dir, f"{FEEDBACK_FILE}{suffix}")
            if filesystem.is_file(candidate):
                return read_rows(spark, [candidate], feedback.COLUMNS)
        return super().read_feedback(spark)


def _version(path: str) -> str:
    """What changes when a file is replaced: its size and modification time where known."""
    fs, inner = filesystem.fs_and_path(path)
    info = fs.info(inner)
    return f"{info.get('size')}:{info.get('mtime', info.get('LastModified', ''))}"


@functools.lru_cache(maxsize=8)
def _covered_days(
    spark: SparkSession,
    files: tuple[str, ...],
    versions: tuple[str, ...],
    time_column: str,
    timezone: str,
    cadence_minutes: int,
) -> tuple[date, date]:
    """From the first day of any table to the last day whose last reading slot (23:00 for
    hourly telemetry) is in the telemetry file, or the day of any other table's last row if that
    row comes after the last reading: a day cut short (the public files end at 05:00) is not
    known yet, so nothing reads it as complete. `files[0]` is the telemetry. Cached by the
    files' versions: a changed file is read again."""
    bounds = []
    for path in files:
        moment = parse_datetime(F.col(time_column), timezone)
        found = (
            read_rows(spark, [path], [time_column])
            .agg(F.min(moment).alias("first"), F.max(moment).alias("last"))
            .first()
        )
        bounds.append((found["first"], found["last"]) if found else (None, None))
    first_reading, last_found = bounds[0]
    if first_reading is None or last_found is None:
        raise MissingSourceDataError(f"{files[0]} has no readable telemetry row")
    # Collected timestamps are naive local datetimes (timewindow.py): read back as UTC.
    firsts = [from_spark(first) for first, _ in bounds if first is not None]
    last_reading = from_spark(last_found)
    # The day after the last reading's slot ends is the first day not wholly read.
    last_whole_day = (last_reading + timedelta(minutes=cadence_minutes)).date() - timedelta(days=1)
    later = [
        from_spark(last).date()
        for _, last in bounds[1:]
        if last is not None and from_spark(last) > last_reading
    ]
    return min(firsts).date(), max([last_whole_day, *later])
