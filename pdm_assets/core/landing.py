"""The landing folder: the file layout a data producer drops and the pipeline reads.

Layout (the contract between the simulator, or any other producer, and its readers)::

    <landing>/machines.csv                      the machine register
    <landing>/history/maint.csv                 replacements before the first daily folder
    <landing>/date=YYYY-MM-DD/telemetry.csv     rows with datetime in [day 00:00, day + 1 00:00)
    <landing>/date=YYYY-MM-DD/errors.csv        (only for a fleet with error codes)
    <landing>/date=YYYY-MM-DD/maint.csv         (only for a fleet with a maintenance log)
    <landing>/date=YYYY-MM-DD/failures.csv
    <landing>/date=YYYY-MM-DD/_COMPLETE         JSON {"rows": {"telemetry": n, ...}}, written last
    <landing>/feedback/*.csv                    the planner's feedback (feedback.py), any time

The columns of each file are the fleet description's (`Fleet.source_columns`). Every CSV has its
header even when it has no rows; datetimes are ``YYYY-MM-DD HH:MM:SS``. Every file is written to
a temporary name in its own folder and renamed into place, so a reader sees a whole file or
none, and a day is only to be read once its ``_COMPLETE`` marker exists. The marker's row counts
are checked against the files when a day is read: a file cut short is refused, not ingested.

Reading goes through `filesystem` (fsspec), so the landing folder may be an object-store URI;
writing (the simulator, a test) is to a local folder.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from collections.abc import Mapping, Sequence
from datetime import date
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv

from pdm_assets.core import filesystem
from pdm_assets.core.fleet import Fleet

logger = logging.getLogger(__name__)

HISTORY_TABLES: tuple[str, ...] = ("maint",)
DATETIME_FORMAT = "%Y-%m-%d %H:%M:%S"
COMPLETE_MARKER = "_COMPLETE"
DAY_DIR_PREFIX = "date="


class LandingError(ValueError):
    """A landed day that cannot be read as it is: a marker that does not match its files."""


def day_dir(landing: Path | str, day: date) -> str:
    """The folder of one day: ``<landing>/date=YYYY-MM-DD``."""
    return filesystem.join(str(landing), f"{DAY_DIR_PREFIX}{day.isoformat()}")


def table_path(landing: Path | str, day: date, table: str) -> str:
    """The CSV of one daily table of one day."""
    return filesystem.join(day_dir(landing, day), f"{table}.csv")


def machines_path(landing: Path | str) -> str:
    """The machine register, ``<landing>/machines.csv``."""
    return filesystem.join(str(landing), "machines.csv")


def feedback_paths(landing: Path | str) -> list[str]:
    """The planner's feedback files, ``<landing>/feedback/*.csv`` (any names, any number: a
    planner or a tool adds a file per batch of entries)."""
    return filesystem.child_files(filesystem.join(str(landing), "feedback"), ".csv")


def history_path(landing: Path | str, table: str) -> str:
    """Events from before the first daily folder, e.g. ``<landing>/history/maint.csv``."""
    if table not in HISTORY_TABLES:
        raise ValueError(f"unknown history table {table!r}; expected one of {HISTORY_TABLES}")
    return filesystem.join(str(landing), "history", f"{table}.csv")


def complete_marker(landing: Path | str, day: date) -> str:
    """The marker written after all tables of a day are in place."""
    return filesystem.join(day_dir(landing, day), COMPLETE_MARKER)


def is_day_complete(landing: Path | str, day: date, tables: Sequence[str]) -> bool:
    """True when the day's marker and the file of every one of `tables` exist."""
    if not filesystem.is_file(complete_marker(landing, day)):
        return False
    return all(filesystem.is_file(table_path(landing, day, table)) for table in tables)


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


def complete_days(landing: Path | str, tables: Sequence[str]) -> list[date]:
    """The complete days in a landing folder, sorted; folders that are not days are ignored."""
    return sorted(landed_days(landing, tables))


def landed_days(landing: Path | str, tables: Sequence[str]) -> dict[date, str]:
    """Each complete day of a landing folder with its fingerprint: a short hash that changes
    when the day is landed again (its marker and files written anew, a corrected day), even with
    the same row counts. One listing of the landing folder and one of each day folder, which
    the landing sensor makes every tick (on an object store, a call each)."""
    landed = {}
    for name in filesystem.child_dirs(str(landing)):
        day = parse_day_dir(name)
        if day is None:
            continue
        entries = filesystem.child_entries(day_dir(landing, day))
        files = [COMPLETE_MARKER, *(f"{table}.csv" for table in tables)]
        if all(entries.get(file, {}).get("type") == "file" for file in files):
            parts = [filesystem.identity_of(entries[file]) for file in files]
            landed[day] = hashlib.sha1("|".join(parts).encode()).hexdigest()[:16]
    return landed


def read_marker(landing: Path | str, day: date) -> dict[str, int] | None:
    """The row counts recorded in a day's ``_COMPLETE`` marker; None for a marker without
    counts (an empty file, as producers that only "touch" a marker write)."""
    marker = complete_marker(landing, day)
    text = filesystem.read_text(marker).strip()
    if not text:
        return None
    try:
        payload = json.loads(text)
        rows = payload["rows"]
        return {str(name): int(count) for name, count in rows.items()}
    except (ValueError, KeyError, TypeError, AttributeError) as error:
        raise LandingError(
            f"{marker}: not a marker this pipeline can read ({error}); expected empty or "
            '{"rows": {"telemetry": n, ...}}'
        ) from error


def check_day(landing: Path | str, day: date, tables: Sequence[str]) -> None:
    """Refuse a day whose files hold fewer or more rows than its marker says (a file cut short
    by a copy that died, or rewritten after the marker)."""
    counts = read_marker(landing, day)
    if counts is None:
        return
    for table in tables:
        if table not in counts:
            continue
        path = table_path(landing, day, table)
        found = max(filesystem.data_lines(path) - 1, 0)
        if found != counts[table]:
            raise LandingError(
                f"{path}: {found} rows where its _COMPLETE marker says {counts[table]} (a file "
                "cut short or changed after the marker); re-land the day"
            )


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


def write_machines(landing: Path, machines: pa.Table, fleet: Fleet) -> None:
    """Write the machine register."""
    write_csv_atomic(Path(machines_path(landing)), machines, fleet.source_columns("machines"))


def write_history(landing: Path, table: str, rows: pa.Table, fleet: Fleet) -> None:
    """Write the events of ``table`` from before the first day (only maint has a history)."""
    write_csv_atomic(Path(history_path(landing, table)), rows, fleet.source_columns(table))


def write_day(landing: Path, day: date, tables: Mapping[str, pa.Table], fleet: Fleet) -> None:
    """Write the fleet's tables of one day, then its ``_COMPLETE`` marker with their row counts.

    An existing marker is removed first, so a reader never takes a day that is being rewritten
    for complete while its files are a mix of old and new.
    """
    missing = [table for table in fleet.event_tables if table not in tables]
    if missing:
        raise ValueError(f"write_day({day}): tables {missing} missing")
    Path(complete_marker(landing, day)).unlink(missing_ok=True)
    for table in fleet.event_tables:
        path = Path(table_path(landing, day, table))
        write_csv_atomic(path, tables[table], fleet.source_columns(table))
    rows = {table: int(tables[table].num_rows) for table in fleet.event_tables}
    marker = Path(complete_marker(landing, day))
    write_text_atomic(marker, json.dumps({"rows": rows}, sort_keys=True))
    logger.debug("landed %s: %s", day.isoformat(), rows)
