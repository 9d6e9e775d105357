"""PDM_DATA_SOURCE=tables: each raw table is a Spark table name or a path with a format.

PDM_TABLES is a JSON object from table ("telemetry", "errors", "maint", "failures",
"machines") to either a table name that `spark.table` reads (metastore `db.table`, Unity Catalog
`catalog.schema.table`) or `{"path": "...", "format": "parquet" | "delta" | "csv"}`:

    {"telemetry": "main.pdm.telemetry",
     "failures": {"path": "abfss://raw@acct.dfs.core.windows.net/failures", "format": "delta"},
     "machines": {"path": "/data/machines.csv", "format": "csv"}}

Which tables are needed is the fleet description's (`Fleet.event_tables` and the machines
register); a needed table the mapping lacks fails with its name when the source reads.

Each read is one scan of the table with the partition's window as a predicate on the time column
(`columns.time`), applied before anything else so Parquet and Delta can skip files and row
groups. A timestamp column holds instants and is compared with the window's UTC edges (a few
hours wider in a zone with summer time); a timestamp_ntz or text column holds wall-clock times of
the fleet's zone (`columns.timezone`) and is compared with the edges widened by a day on each
side, since the zone's offset is not known to the predicate. The rows of the window are then
selected exactly on `parse_datetime` of their text, the time validation gives them, so each row
lands in the partition that keeps it. With history (the first partition) there is no lower edge
and rows without a readable time come too; in a text column those can sort anywhere, so that one
read scans the whole table. With rows after the window (the last partition) there is no upper
edge.

Nothing here knows which days have landed: a day without rows reads as no rows.

The rows come back as every other source returns them (raw_text.py): the fleet's source columns
as text, the table name or path as `source_file`, no line or field count (a table has neither),
and the row as JSON in `raw`. A timestamp becomes wall-clock text in the fleet's zone, which
`parse_datetime` turns back into the same instant, except in the hour repeated when summer time
ends, where one text names two instants (the text layout cannot tell them apart). Doubles become
Spark's text of them, which reads back as the same double.

csv is Spark's own CSV reader (header, every column text): unlike PDM_DATA_SOURCE=csv it does not
count fields per line, so prefer Parquet or Delta for tables, or the csv source for CSV files.
Delta tables and object-store paths (abfss://, s3://, gs://) go through the same code as local
Parquet; they are verified only where their JARs exist (Databricks), since they cannot be
installed here.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from pydantic import Field, field_validator
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import DataType, StringType, TimestampNTZType, TimestampType

from pdm_assets.adapters.sources import RawSource
from pdm_assets.core import feedback
from pdm_assets.core.csv_lines import PROVENANCE_TYPES, SourceFormatError
from pdm_assets.core.fleet import Fleet
from pdm_assets.core.timewindow import Window, timestamp_literal
from pdm_assets.core.validation import DATETIME_FORMAT, parse_datetime

# The planner's feedback is optional: without an entry the work list has no acknowledgements.
FEEDBACK_TABLE = "feedback"
TABLES = ("telemetry", "errors", "maint", "failures", "machines", FEEDBACK_TABLE)
FORMATS = ("parquet", "delta", "csv")
SETTING = "PDM_TABLES"
_ONE_DAY = timedelta(days=1)
# A wall-clock time repeated when summer time ends names two instants up to two hours apart
# (Antarctica/Troll moves its clocks by two hours); parse_datetime picks one of them. A timestamp
# predicate leaves that much room around the window so the exact selection on the parsed text,
# not the predicate, decides where such a row goes.
_REPEATED_HOUR_SLACK = timedelta(hours=3)
# Every text parse_datetime accepts starts with the date, after optional spaces; a space sorts
# before every digit, so "< '0'" lets those rows past the text predicate's lower edge.
_BEFORE_DIGITS = "0"


class TableSettingError(ValueError):
    """A PDM_TABLES setting that cannot be used; the message names the key that is wrong."""


@dataclass(frozen=True)
class TableEntry:
    """Where one raw table lives: a table name (`spark.table`), or a path and its format."""

    name: str | None = None
    path: str | None = None
    format: str | None = None

    @property
    def location(self) -> str:
        """The table name or the path: what `source_file` says a row came from."""
        location = self.name if self.name is not None else self.path
        assert location is not None
        return location

    def to_json(self) -> str | dict[str, str]:
        if self.name is not None:
            return self.name
        assert self.path is not None and self.format is not None
        return {"path": self.path, "format": self.format}


def _entry(key: str, value: Any) -> TableEntry:
    where = f"{SETTING}.{key}"
    if isinstance(value, str):
        if not value.strip():
            raise TableSettingError(f"{where}: empty table name")
        return TableEntry(name=value.strip())
    if not isinstance(value, dict):
        raise TableSettingError(
            f'{where}: expected a table name or {{"path": ..., "format": ...}}, '
            f"got {json.dumps(value)}"
        )
    unknown = sorted(set(value) - {"path", "format"})
    if unknown:
        raise TableSettingError(
            f"{where}: unknown key {', '.join(map(repr, unknown))} (an entry has path and format)"
        )
    path = value.get("path")
    if not isinstance(path, str) or not path.strip():
        raise TableSettingError(f'{where}: "path" must be a non-empty string, got {path!r}')
    kind = value.get("format")
    if kind not in FORMATS:
        raise TableSettingError(f"{where}: unknown format {kind!r} (one of {', '.join(FORMATS)})")
    return TableEntry(path=path.strip(), format=kind)


def parse_tables(text: str) -> dict[str, TableEntry]:
    """The PDM_TABLES JSON text as a table-to-entry mapping; TableSettingError names the key."""
    try:
        raw = json.loads(text)
    except ValueError as error:
        raise TableSettingError(f"{SETTING}: not JSON ({error}): {text!r}") from error
    if not isinstance(raw, dict):
        raise TableSettingError(
            f"{SETTING}: expected a JSON object from table to entry, got {text!r}"
        )
    entries = {}
    for key, value in raw.items():
        if key not in TABLES:
            raise TableSettingError(
                f"{SETTING}: {key!r} is not a table (one of {', '.join(TABLES)})"
            )
        entries[key] = _entry(key, value)
    return entries


def tables_json(mapping: Mapping[str, TableEntry]) -> str:
    """The JSON text of a mapping, the form `parse_tables` reads and `TableSource` stores."""
    return json.dumps({table: entry.to_json() for table, entry in mapping.items()})


def check_tables(mapping: Mapping[str, TableEntry], fleet: Fleet) -> dict[str, TableEntry]:
    """The entries of the tables `fleet` reads (its event tables and the machines register), in
    that order; TableSettingError names every needed table the mapping lacks. Entries of tables
    the fleet does not have are left unread."""
    needed = (*fleet.event_tables, "machines")
    missing = [table for table in needed if table not in mapping]
    if missing:
        raise TableSettingError(
            f"{SETTING} has no entry for {', '.join(missing)}, which the fleet description "
            f"{fleet.name!r} needs (it reads {', '.join(needed)})"
        )
    return {table: mapping[table] for table in needed}


class TableSource(RawSource):
    """Raw rows from Spark tables or paths (PDM_TABLES), one scan per read, pruned by the window.

    Nothing here knows which days have landed: a day without rows reads as no rows.
    """

    tables: str = Field(
        description=(
            "PDM_TABLES: JSON object from telemetry/errors/maint/failures/machines to a table "
            'name or {"path": ..., "format": "parquet"|"delta"|"csv"}.'
        )
    )

    @field_validator("tables")
    @classmethod
    def _parse(cls, value: str) -> str:
        # A bad setting fails when the resource is built, not at the first partition's read.
        parse_tables(value)
        return value

    def entry(self, fleet: Fleet, table: str) -> TableEntry:
        return check_tables(parse_tables(self.tables), fleet)[table]

    def _read_events(
        self,
        spark: SparkSession,
        fleet: Fleet,
        table: str,
        window: Window,
        include_history: bool,
        include_after: bool,
    ) -> DataFrame:
        entry = self.entry(fleet, table)
        frame = _load(spark, entry)
        columns = fleet.source_columns(table)
        found = _resolve(spark, frame, entry, table, columns)
        zone = fleet.columns.timezone
        time = _col(found[fleet.columns.time])
        kind = _time_kind(frame, entry, table, found[fleet.columns.time])
        pushed = _window_predicate(time, kind, zone, window, include_history, include_after)
        if pushed is not None:
            # On the table's own column, before any projection: what the scan can push down.
            frame = frame.where(pushed)
        # The exact selection, on the time validation will give each row.
        moment = parse_datetime(_time_text(time, kind, zone), zone)
        if not isinstance(kind, StringType):
            # A timestamp with a fraction of a second has no text validation reads: it goes to
            # the partition of its instant, which quarantines it, not to the first one.
            moment = F.coalesce(moment, _instant(time, kind, zone))
        selected = window.contains(moment)
        if include_history:
            # Earlier rows are history, and rows without a readable time go to the first
            # partition, where validation quarantines them (as the CSV source does).
            selected = selected | moment.isNull() | (moment < timestamp_literal(window.start))
        if include_after:
            selected = selected | (moment >= timestamp_literal(window.end))
        frame = frame.where(selected)
        return _as_text(frame, entry, columns, found, time_column=fleet.columns.time, zone=zone)

    def read_feedback(self, spark: SparkSession) -> DataFrame:
        entry = parse_tables(self.tables).get(FEEDBACK_TABLE)
        if entry is None:
            return super().read_feedback(spark)
        frame = _load(spark, entry)
        found = _resolve(spark, frame, entry, FEEDBACK_TABLE, feedback.COLUMNS)
        return _as_text(frame, entry, feedback.COLUMNS, found, time_column=None, zone="UTC")

    def read_machines(self, spark: SparkSession, fleet: Fleet) -> DataFrame:
        entry = self.entry(fleet, "machines")
        frame = _load(spark, entry)
        columns = fleet.source_columns("machines")
        found = _resolve(spark, frame, entry, "machines", columns)
        return _as_text(frame, entry, columns, found, time_column=None, zone="UTC")


def _load(spark: SparkSession, entry: TableEntry) -> DataFrame:
    """The one read of a call: nothing is computed, so later predicates reach the scan."""
    if entry.name is not None:
        return spark.table(entry.name)
    assert entry.path is not None and entry.format is not None
    reader = spark.read.format(entry.format)
    if entry.format == "csv":
        # Every column stays text: validation types it, as it does for the other sources.
        reader = reader.option("header", "true").option("inferSchema", "false")
    return reader.load(entry.path)


def _col(name: str) -> Column:
    # Backticks: a column name with a dot or a space is one column, not a struct field.
    return F.col("`" + name.replace("`", "``") + "`")


def _resolve(
    spark: SparkSession,
    frame: DataFrame,
    entry: TableEntry,
    table: str,
    columns: tuple[str, ...],
) -> dict[str, str]:
    """The frame's name of each of the fleet's columns, matched as Spark resolves names (ignoring
    case unless spark.sql.caseSensitive); SourceFormatError names the table and the column."""
    case_sensitive = (spark.conf.get("spark.sql.caseSensitive") or "false").lower() == "true"
    found: dict[str, str] = {}
    for column in columns:
        if column in frame.columns:
            found[column] = column
            continue
        matches = (
            []
            if case_sensitive
            else [name for name in frame.columns if name.lower() == column.lower()]
        )
        if len(matches) != 1:
            raise SourceFormatError(
                f"{entry.location} ({table}): column '{column}' missing "
                f"(found {', '.join(frame.columns) or 'no columns'}; the fleet description needs "
                f"{', '.join(columns)})"
            )
        found[column] = matches[0]
    return found


_TIME_TYPES = (StringType, TimestampType, TimestampNTZType)


def _time_kind(frame: DataFrame, entry: TableEntry, table: str, name: str) -> DataType:
    kind = frame.schema[name].dataType
    if not isinstance(kind, _TIME_TYPES):
        raise SourceFormatError(
            f"{entry.location} ({table}): time column '{name}' is {kind.simpleString()}; the "
            "fleet description's time column must be a timestamp or 'YYYY-MM-DD HH:MM:SS' text"
        )
    return kind


def _window_predicate(
    time: Column,
    kind: DataType,
    zone: str,
    window: Window,
    include_history: bool,
    include_after: bool,
) -> Column | None:
    """A predicate on the raw time column that Parquet and Delta can push down: every row of the
    window (and of history or after it when asked) passes, some neighbours may too. None: the
    call reads the whole table."""
    if isinstance(kind, StringType):
        if include_history:
            # A row whose time is not a readable date (text of any kind, anywhere in the text
            # order) belongs to the first partition: no text range holds them all, so the first
            # partition reads the whole table.
            return None
        # Text order is time order for 'yyyy-MM-dd ...'; a day's margin covers any zone offset.
        lower = (time >= F.lit((window.start - _ONE_DAY).date().isoformat())) | (
            time < F.lit(_BEFORE_DIGITS)
        )
        upper = time < F.lit((window.end + _ONE_DAY).date().isoformat())
    elif isinstance(kind, TimestampType):
        slack = timedelta(0) if zone == "UTC" else _REPEATED_HOUR_SLACK
        lower = time >= timestamp_literal(window.start - slack)
        upper = time < timestamp_literal(window.end + slack)
    else:
        # Wall-clock times without a zone: the fleet's zone is at most 14 hours from UTC.
        lower = time >= _wall_clock_literal(window.start - _ONE_DAY)
        upper = time < _wall_clock_literal(window.end + _ONE_DAY)
    if include_history and include_after:
        return None
    if include_history:
        # Rows before the window are history; a null time goes to the first partition.
        return upper | time.isNull()
    if include_after:
        return lower
    return lower & upper


def _wall_clock_literal(moment: datetime) -> Column:
    # A timestamp_ntz literal from text: a naive datetime literal would go through the machine's
    # local zone (timewindow.py).
    return F.lit(moment.strftime("%Y-%m-%d %H:%M:%S")).cast("timestamp_ntz")


def _time_text(time: Column, kind: DataType, zone: str) -> Column:
    """The time column as the wall-clock text parse_datetime reads in the fleet's zone."""
    if isinstance(kind, StringType):
        return time
    wall = F.from_utc_timestamp(time, zone) if isinstance(kind, TimestampType) else time
    # A fraction of a second is kept, so the row fails the time layout and is quarantined with
    # its text rather than silently moved onto the whole second.
    fraction = F.date_format(wall, "SSSSSS") != F.lit("000000")
    return F.when(fraction, F.date_format(wall, DATETIME_FORMAT + ".SSSSSS")).otherwise(
        F.date_format(wall, DATETIME_FORMAT)
    )


def _instant(time: Column, kind: DataType, zone: str) -> Column:
    """The UTC instant of a timestamp column (a timestamp_ntz is a wall clock of `zone`)."""
    if isinstance(kind, TimestampType):
        return time
    # The session runs in UTC (spark.py): the cast keeps the wall clock, read as UTC.
    wall = time.cast("timestamp")
    return wall if zone == "UTC" else F.to_utc_timestamp(wall, zone)


def _as_text(
    frame: DataFrame,
    entry: TableEntry,
    columns: tuple[str, ...],
    found: Mapping[str, str],
    time_column: str | None,
    zone: str,
) -> DataFrame:
    """The rows in raw_text's schema: the fleet's columns as text, then provenance and raw."""
    values = []
    for column in columns:
        source = _col(found[column])
        kind = frame.schema[found[column]].dataType
        # Spark's text of a double (Java's Double.toString) reads back as the same double.
        text = _time_text(source, kind, zone) if column == time_column else source.cast("string")
        values.append(text.alias(column))
    provenance = [
        F.lit(entry.location).alias("source_file"),
        *[
            F.lit(None).cast(PROVENANCE_TYPES[name]).alias(name)
            for name in ("line", "field_count", "header_fields")
        ],
    ]
    # The row as the table holds it, typed, for the quarantine to show.
    raw = F.to_json(F.struct(*[_col(found[column]).alias(column) for column in columns]))
    return frame.select(*values, *provenance, raw.alias("raw"))
