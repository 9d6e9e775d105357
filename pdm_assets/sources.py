"""Where raw rows come from: the landing folder (fed by the fleet simulator) or public CSV files.

A source returns rows as the files have them, every column a string, with the public data set's
column names; typing and validation happen in one place (validation.py) whatever the source.
"""

import functools
import logging
from datetime import date, datetime, timedelta
from pathlib import Path

import dagster as dg
from pydantic import Field
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import StringType, StructField, StructType

from pdm_assets import landing
from pdm_assets.partitions import Window
from pdm_assets.simulator import Fleet, FleetSpec, simulate, write_landing

log = logging.getLogger(__name__)

PUBLIC_FILES = {
    "telemetry": "PdM_telemetry",
    "errors": "PdM_errors",
    "maint": "PdM_maint",
    "failures": "PdM_failures",
    "machines": "PdM_machines",
}
DATETIME_FORMAT = "yyyy-MM-dd HH:mm:ss"


def string_schema(table: str) -> StructType:
    return StructType(
        [StructField(name, StringType(), True) for name in landing.CSV_HEADERS[table]]
    )


def _read_csv(spark: SparkSession, paths: list[str], table: str) -> DataFrame:
    if not paths:
        return spark.createDataFrame([], string_schema(table))
    # enforceSchema=False makes Spark compare each file's header with the expected columns, so a
    # file with its columns swapped fails loudly instead of loading volt as rotate.
    return spark.read.csv(
        paths, header=True, schema=string_schema(table), enforceSchema=False, mode="PERMISSIVE"
    )


class RawSource(dg.ConfigurableResource):
    """Where the raw assets read from: rows as text, with the public data set's column names."""

    def read_events(
        self, spark: SparkSession, table: str, window: Window, include_history: bool
    ) -> DataFrame:
        """Rows of `table` for the days of `window`; with `include_history`, also earlier rows."""
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

    def read_events(
        self, spark: SparkSession, table: str, window: Window, include_history: bool
    ) -> DataFrame:
        self.prepare(window.days)
        complete = {day for day in window.days if landing.is_day_complete(self.landing_path, day)}
        paths = [
            str(landing.table_path(self.landing_path, day, table))
            for day in window.days
            if day in complete
        ]
        missing = [day for day in window.days if day not in complete]
        if missing:
            log.warning("%s: no complete landing folder for %s", table, [str(d) for d in missing])
        if include_history and table in landing.HISTORY_TABLES:
            history = landing.history_path(self.landing_path, table)
            if history.exists():
                paths.append(str(history))
        return _read_csv(spark, paths, table)

    def read_machines(self, spark: SparkSession) -> DataFrame:
        self.prepare([])
        path = landing.machines_path(self.landing_path)
        if not path.exists():
            raise FileNotFoundError(f"no machines table at {path}")
        return _read_csv(spark, [str(path)], "machines")


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

    def _file(self, table: str) -> str:
        folder = Path(self.csv_dir)
        for suffix in (".csv", ".csv.gz"):
            candidate = folder / f"{PUBLIC_FILES[table]}{suffix}"
            if candidate.exists():
                return str(candidate)
        raise FileNotFoundError(f"no {PUBLIC_FILES[table]}.csv or .csv.gz in {folder}")

    def read_events(
        self, spark: SparkSession, table: str, window: Window, include_history: bool
    ) -> DataFrame:
        rows = _read_csv(spark, [self._file(table)], table)
        moment = F.try_to_timestamp(F.col("datetime"), F.lit(DATETIME_FORMAT))
        in_window = (moment >= F.lit(window.start)) & (moment < F.lit(window.end))
        if include_history:
            first = datetime.fromisoformat(self.partitions_start)
            in_window = in_window | moment.isNull() | (moment < F.lit(first))
        return rows.where(in_window)

    def read_machines(self, spark: SparkSession) -> DataFrame:
        return _read_csv(spark, [self._file("machines")], "machines")
