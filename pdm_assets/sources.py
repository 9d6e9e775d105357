"""Where raw rows come from: the landing folder (fed by the fleet simulator) or public CSV files.

A source returns rows as the files have them, every column a string, with the public data set's
column names, plus the file and line each came from (raw_text.py); typing and validation happen
in one place (validation.py) whatever the source.

A day is known only once its data has landed: a landing day with its `_COMPLETE` marker, or a
day inside the range a CSV source's telemetry covers. Asking a source for a day it does not know
is an error naming the day, never an empty day: an empty failures partition would read as "no
failure that day" and turn the labels of the week before into wrong zeros.
"""

import functools
import logging
from datetime import date, timedelta
from pathlib import Path

import dagster as dg
from pydantic import Field
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from pdm_assets import landing
from pdm_assets.raw_text import read_rows
from pdm_assets.simulator import Fleet, FleetSpec, simulate, write_landing
from pdm_assets.timewindow import Window, day_ranges, midnight, timestamp_literal
from pdm_assets.validation import parse_datetime

log = logging.getLogger(__name__)

PUBLIC_FILES = {
    "telemetry": "PdM_telemetry",
    "errors": "PdM_errors",
    "maint": "PdM_maint",
    "failures": "PdM_failures",
    "machines": "PdM_machines",
}


class MissingSourceDataError(LookupError):
    """A day was asked for that the source does not have (not landed, or past the data's end)."""


class RawSource(dg.ConfigurableResource):
    """Where the raw assets read from: rows as text, with the public data set's column names."""

    def read_events(
        self,
        spark: SparkSession,
        table: str,
        window: Window,
        include_history: bool,
        include_after: bool = False,
    ) -> DataFrame:
        """Rows of `table` for the days of `window`; with `include_history`, also earlier rows,
        with `include_after` also later rows (the window ends at the last partition).

        Raises MissingSourceDataError naming the days of `window` that have not landed.
        """
        raise NotImplementedError

    def read_machines(self, spark: SparkSession) -> DataFrame:
        raise NotImplementedError


class LandingFolderSource(RawSource):
    """Daily folders of CSV files under `landing_dir` (layout in landing.py).

    The rows of day D are the files of `date=D`; the first partition also takes the replacement
    history written before the first day (history/maint.csv).
    """

    landing_dir: str = Field(description="Folder of date=YYYY-MM-DD/ day folders.")

    @property
    def landing_path(self) -> Path:
        return Path(self.landing_dir)

    def prepare(self, days: list[date]) -> None:
        """Make sure the files of `days` exist; a plain landing folder only waits for them."""

    def missing_hint(self) -> str:
        return "a day is read once its folder has the four table files and _COMPLETE"

    def read_events(
        self,
        spark: SparkSession,
        table: str,
        window: Window,
        include_history: bool,
        include_after: bool = False,
    ) -> DataFrame:
        # Day folders after the last partition are the sensor's business (it ignores them and
        # says so); a range read never reaches past its window.
        self.prepare(window.days)
        missing = [d for d in window.days if not landing.is_day_complete(self.landing_path, d)]
        if missing:
            raise MissingSourceDataError(
                f"{table}: no complete landing folder for {day_ranges(missing)} under "
                f"{self.landing_path} ({self.missing_hint()})"
            )
        paths = [landing.table_path(self.landing_path, day, table) for day in window.days]
        if include_history and table in landing.HISTORY_TABLES:
            history = landing.history_path(self.landing_path, table)
            if history.exists():
                paths.append(history)
        return read_rows(spark, paths, table)

    def read_machines(self, spark: SparkSession) -> DataFrame:
        self.prepare([])
        path = landing.machines_path(self.landing_path)
        if not path.exists():
            raise FileNotFoundError(f"no machines table at {path}")
        return read_rows(spark, [path], "machines")


@functools.lru_cache(maxsize=2)
def _simulated_fleet(spec: FleetSpec) -> Fleet:
    return simulate(spec)


class SimulatedFleetSource(LandingFolderSource):
    """The embedded default: a deterministic simulated fleet written into the landing folder.

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

    def prepare(self, days: list[date]) -> None:
        spec = self.spec
        simulated = {spec.start + timedelta(days=offset) for offset in range(spec.days)}
        wanted = [day for day in days if day in simulated]
        to_write = [d for d in wanted if not landing.is_day_complete(self.landing_path, d)]
        if not landing.machines_path(self.landing_path).exists() or to_write:
            log.info(
                "simulating %d machines, writing %d landing days", spec.machines, len(to_write)
            )
            write_landing(_simulated_fleet(spec), self.landing_path, to_write)

    def missing_hint(self) -> str:
        spec = self.spec
        last = spec.start + timedelta(days=spec.days - 1)
        return f"the simulated fleet covers {spec.start} .. {last} (PDM_SIM_DAYS)"


class CsvFolderSource(RawSource):
    """A folder of the public data set's files, PdM_<table>.csv or .csv.gz.

    Each read selects the window's rows from the whole file; rows before the first partition (the
    maintenance log starts in 2014) and rows whose datetime cannot be parsed go to the first
    partition, where validation keeps the former and quarantines the latter.
    """

    csv_dir: str = Field(description="Folder holding PdM_telemetry.csv[.gz] and the others.")
    partitions_start: str = Field(
        default="2015-01-01", description="First daily partition; earlier rows are history."
    )

    def _file(self, table: str) -> Path:
        folder = Path(self.csv_dir)
        for suffix in (".csv", ".csv.gz"):
            candidate = folder / f"{PUBLIC_FILES[table]}{suffix}"
            if candidate.exists():
                return candidate
        raise FileNotFoundError(f"no {PUBLIC_FILES[table]}.csv or .csv.gz in {folder}")

    def covered_days(self, spark: SparkSession) -> tuple[date, date]:
        """The first and last complete day of the telemetry file: the days this source knows."""
        path = self._file("telemetry")
        stat = path.stat()
        return _covered_days(spark, str(path), stat.st_size, stat.st_mtime_ns)

    def read_events(
        self,
        spark: SparkSession,
        table: str,
        window: Window,
        include_history: bool,
        include_after: bool = False,
    ) -> DataFrame:
        first, last = self.covered_days(spark)
        unknown = [day for day in window.days if not first <= day <= last]
        if unknown:
            raise MissingSourceDataError(
                f"{table}: {day_ranges(unknown)} outside the days the CSV files cover "
                f"({first} .. {last}, the range of {self._file('telemetry').name})"
            )
        rows = read_rows(spark, [self._file(table)], table)
        moment = parse_datetime(F.col("datetime"))
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

    def read_machines(self, spark: SparkSession) -> DataFrame:
        return read_rows(spark, [self._file("machines")], "machines")


@functools.lru_cache(maxsize=8)
def _covered_days(spark: SparkSession, path: str, size: int, mtime_ns: int) -> tuple[date, date]:
    """From the first telemetry day to the last day whose 23:00 reading is in the file: a day cut
    short (the public files end at 05:00) is not known yet, so nothing reads it as complete.
    Cached by the file's size and modification time: a changed file is read again."""
    moment = parse_datetime(F.col("datetime"))
    bounds = (
        read_rows(spark, [Path(path)], "telemetry")
        .agg(
            F.min(F.to_date(moment)).alias("first"),
            F.to_date(F.max(moment) + F.expr("INTERVAL 1 HOUR")).alias("end"),
        )
        .first()
    )
    if bounds is None or bounds["first"] is None:
        raise MissingSourceDataError(f"{path} has no readable telemetry row")
    return bounds["first"], bounds["end"] - timedelta(days=1)
