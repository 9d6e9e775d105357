"""The landing folder: the file layout a data producer drops and the pipeline reads.

Layout (the contract between the simulator, or any other producer, and its readers)::

    <landing>/machines.csv                      machineID,model,age
    <landing>/history/maint.csv                 replacements before the first daily folder
    <landing>/date=YYYY-MM-DD/telemetry.csv     rows with datetime in [day 00:00, day + 1 00:00)
    <landing>/date=YYYY-MM-DD/errors.csv
    <landing>/date=YYYY-MM-DD/maint.csv
    <landing>/date=YYYY-MM-DD/failures.csv
    <landing>/date=YYYY-MM-DD/_COMPLETE         JSON {"rows": {"telemetry": n, ...}}, written last

Every CSV has its header even when it has no rows; datetimes are ``YYYY-MM-DD HH:MM:SS``, the
format of the public Azure predictive-maintenance files. Every file is written to a temporary
name in its own folder and renamed into place, so a reader sees a whole file or none, and a day
is only to be read once its ``_COMPLETE`` marker exists.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from collections.abc import Mapping
from datetime import date
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv

logger = logging.getLogger(__name__)

DAILY_TABLES: tuple[str, ...] = ("telemetry", "errors", "maint", "failures")
HISTORY_TABLES: tuple[str, ...] = ("maint",)

CSV_HEADERS: dict[str, tuple[str, ...]] = {
    "telemetry": ("datetime", "machineID", "volt", "rotate", "pressure", "vibration"),
    "errors": ("datetime", "machineID", "errorID"),
    "maint": ("datetime", "machineID", "comp"),
    "failures": ("datetime", "machineID", "failure"),
    "machines": ("machineID", "model", "age"),
}

# The Arrow types a reader should parse each column as; "datetime" is a naive timestamp because
# the source data carries no time zone.
COLUMN_TYPES: dict[str, pa.DataType] = {
    "datetime": pa.timestamp("s"),
    "machineID": pa.int64(),
    "volt": pa.float64(),
    "rotate": pa.float64(),
    "pressure": pa.float64(),
    "vibration": pa.float64(),
    "errorID": pa.string(),
    "comp": pa.string(),
    "failure": pa.string(),
    "model": pa.string(),
    "age": pa.int64(),
}

DATETIME_FORMAT = "%Y-%m-%d %H:%M:%S"
COMPLETE_MARKER = "_COMPLETE"
DAY_DIR_PREFIX = "date="


def day_dir(landing: Path, day: date) -> Path:
    """The folder of one day: ``<landing>/date=YYYY-MM-DD``."""
    return Path(landing) / f"{DAY_DIR_PREFIX}{day.isoformat()}"


def table_path(landing: Path, day: date, table: str) -> Path:
    """The CSV of one daily table of one day."""
    if table not in DAILY_TABLES:
        raise ValueError(f"unknown daily table {table!r}; expected one of {DAILY_TABLES}")
    return day_dir(landing, day) / f"{table}.csv"


def machines_path(landing: Path) -> Path:
    """The machine register, ``<landing>/machines.csv``."""
    return Path(landing) / "machines.csv"


def history_path(landing: Path, table: str) -> Path:
    """Events from before the first daily folder, e.g. ``<landing>/history/maint.csv``."""
    if table not in HISTORY_TABLES:
        raise ValueError(f"unknown history table {table!r}; expected one of {HISTORY_TABLES}")
    return Path(landing) / "history" / f"{table}.csv"


def complete_marker(landing: Path, day: date) -> Path:
    """The marker written after all tables of a day are in place."""
    return day_dir(landing, day) / COMPLETE_MARKER


def is_day_complete(landing: Path, day: date) -> bool:
    """True when the day's marker and every one of its table files exist."""
    if not complete_marker(landing, day).is_file():
        return False
    return all(table_path(landing, day, table).is_file() for table in DAILY_TABLES)


def parse_day_dir(name: str) -> date | None:
    """The day of a ``date=YYYY-MM-DD`` folder name, or None for anything else."""
    if not name.startswith(DAY_DIR_PREFIX):
        return None
    text = name[len(DAY_DIR_PREFIX) :]
    # fromisoformat also accepts forms like 20150101; only the canonical spelling is a day folder.
    if len(text) != 10:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        return None


def complete_days(landing: Path) -> list[date]:
    """The complete days in a landing folder, sorted; folders that are not days are ignored."""
    root = Path(landing)
    if not root.is_dir():
        return []
    days: list[date] = []
    for entry in root.iterdir():
        if not entry.is_dir():
            continue
        day = parse_day_dir(entry.name)
        if day is not None and is_day_complete(root, day):
            days.append(day)
    return sorted(days)


def _header_line(columns: tuple[str, ...]) -> bytes:
    return (",".join(columns) + "\n").encode("ascii")


def write_csv_atomic(path: Path, table: pa.Table, columns: tuple[str, ...]) -> None:
    """Write ``table`` as CSV with exactly ``columns`` to ``path``, all at once or not at all.

    The header is written by hand because Arrow quotes header names, and values are unquoted
    because no value of this schema contains a comma or quote; timestamps come out as
    ``YYYY-MM-DD HH:MM:SS``.
    """
    if tuple(table.column_names) != columns:
        raise ValueError(f"{path.name}: columns {table.column_names} differ from {list(columns)}")
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(_header_line(columns))
            if table.num_rows:
                pacsv.write_csv(
                    table,
                    out,
                    write_options=pacsv.WriteOptions(include_header=False, quoting_style="none"),
                )
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise


def write_text_atomic(path: Path, text: str) -> None:
    """Write a small text file at ``path`` all at once or not at all."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            out.write(text)
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise


def write_machines(landing: Path, machines: pa.Table) -> None:
    """Write the machine register."""
    write_csv_atomic(machines_path(landing), machines, CSV_HEADERS["machines"])


def write_history(landing: Path, table: str, rows: pa.Table) -> None:
    """Write the events of ``table`` from before the first day (only maint has a history)."""
    write_csv_atomic(history_path(landing, table), rows, CSV_HEADERS[table])


def write_day(landing: Path, day: date, tables: Mapping[str, pa.Table]) -> None:
    """Write the four tables of one day, then its ``_COMPLETE`` marker.

    An existing marker is removed first, so a reader never takes a day that is being rewritten
    for complete while its files are a mix of old and new.
    """
    missing = [table for table in DAILY_TABLES if table not in tables]
    if missing:
        raise ValueError(f"write_day({day}): tables {missing} missing")
    complete_marker(landing, day).unlink(missing_ok=True)
    for table in DAILY_TABLES:
        write_csv_atomic(table_path(landing, day, table), tables[table], CSV_HEADERS[table])
    rows = {table: int(tables[table].num_rows) for table in DAILY_TABLES}
    write_text_atomic(complete_marker(landing, day), json.dumps({"rows": rows}, sort_keys=True))
    logger.debug("landed %s: %s", day.isoformat(), rows)


def read_marker(landing: Path, day: date) -> dict[str, int]:
    """The row counts recorded in a day's ``_COMPLETE`` marker."""
    payload = json.loads(complete_marker(landing, day).read_text(encoding="utf-8"))
    return {str(name): int(count) for name, count in payload["rows"].items()}


def read_csv(path: Path, table: str) -> pa.Table:
    """Read one landing CSV with the column types of ``COLUMN_TYPES``."""
    columns = CSV_HEADERS[table]
    convert = pacsv.ConvertOptions(
        column_types={name: COLUMN_TYPES[name] for name in columns},
        timestamp_parsers=[DATETIME_FORMAT],
        include_columns=list(columns),
    )
    return pacsv.read_csv(path, convert_options=convert)
