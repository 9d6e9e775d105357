"""Source CSV files read as numbered text lines, each split into fields without guessing.

Spark's own CSV reader is lenient in ways that change data: a row with one field too many
(a decimal comma, `160,89`) loses its last token and keeps its values shifted one column to the
left, and nothing says which file or line a bad row came from. Here each file is read whole,
split into lines (LF or CRLF) numbered from 1, and each line into fields at the commas outside
double quotes. A row keeps its file, its line number, its text and its field count, so
validation can quarantine a row whose field count differs from the header's, with its origin.

Headers are checked in Python before Spark reads a row: a file whose header lacks a required
column fails with one line naming the file and the column. The columns may come in any order;
which columns a table needs is the fleet description's (`Fleet.source_columns`).
"""

from __future__ import annotations

import gzip
import io
from collections import defaultdict
from collections.abc import Sequence
from functools import reduce
from pathlib import Path

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import IntegerType, StringType, StructField, StructType

from pdm_assets.core import filesystem

# A comma followed by an even number of double quotes up to the end of the line is a separator.
_SEPARATOR = ',(?=(?:[^"]*"[^"]*")*[^"]*$)'
# What each row carries besides the table's columns (and its `raw` text).
PROVENANCE_TYPES = {
    "source_file": StringType(),
    "line": IntegerType(),
    "field_count": IntegerType(),
    "header_fields": IntegerType(),
}


class SourceFormatError(ValueError):
    """A source file that cannot be read as its table: a missing column, an empty file."""


def raw_schema(columns: Sequence[str]) -> StructType:
    """The rows a source returns: the table's columns as text, then where each row came from."""
    return StructType(
        [
            *[StructField(name, StringType(), True) for name in columns],
            *[StructField(name, kind, True) for name, kind in PROVENANCE_TYPES.items()],
            StructField("raw", StringType(), True),
        ]
    )


def _clean_name(name: str) -> str:
    return name.strip().lstrip("\ufeff").strip().strip('"').strip()


def read_header(path: Path | str) -> list[str]:
    """The column names of a CSV file's first line (gzip-compressed files too), read through
    the file-system layer, so an object-store URI works as a local path does."""
    try:
        with filesystem.open_binary(str(path)) as raw:
            binary = gzip.GzipFile(fileobj=raw) if str(path).endswith(".gz") else raw
            with io.TextIOWrapper(binary, encoding="utf-8", newline="") as handle:
                first = handle.readline()
    except (OSError, UnicodeDecodeError, EOFError) as error:
        raise SourceFormatError(f"{path}: cannot read its header ({error})") from error
    if not first.strip():
        raise SourceFormatError(f"{path}: empty file, no header line")
    if first.endswith("\r"):
        # Python's text mode ends a line at a lone CR; Spark's reader (and the row split here)
        # only at LF or CRLF, so the whole file would be one header line and no rows.
        raise SourceFormatError(
            f"{path}: its lines end in CR alone (old Mac line endings); only LF or CRLF line "
            "endings are read. Convert the file (e.g. tr '\\r' '\\n') and land it again"
        )
    return [_clean_name(name) for name in first.rstrip("\r\n").split(",")]


def column_positions(path: Path | str, columns: Sequence[str]) -> tuple[tuple[int, ...], int]:
    """Where each of the table's columns sits in the file's header, and the header's width."""
    header = read_header(path)
    positions = []
    for column in columns:
        if column not in header:
            raise SourceFormatError(
                f"{path}: column '{column}' missing from the header "
                f"(found {', '.join(header)}; the fleet description needs "
                f"{', '.join(columns)})"
            )
        positions.append(header.index(column))
    return tuple(positions), len(header)


def _unquote(field: Column) -> Column:
    # Most fields carry no quote; the two regular expressions cost more than the split itself.
    unquoted = F.regexp_replace(F.regexp_replace(field, r'^\s*"(.*)"\s*$', "$1"), '""', '"')
    return F.when(field.contains('"'), unquoted).otherwise(field)


def _read_group(
    spark: SparkSession,
    paths: Sequence[str],
    columns: Sequence[str],
    positions: tuple[int, ...],
    width: int,
) -> DataFrame:
    files = spark.read.text(list(paths), wholetext=True).select(
        F.regexp_replace(F.col("_metadata.file_path"), "^file:", "").alias("source_file"),
        "value",
    )
    lines = files.select(
        "source_file", F.posexplode(F.split("value", r"\r?\n")).alias("index", "raw")
    )
    # Line 1 is the header; blank lines (the one after a final newline) carry no row.
    lines = lines.where((F.col("index") > 0) & (F.trim(F.col("raw")) != ""))
    # The look-ahead that skips quoted commas rescans the rest of the line at every comma; a
    # line without a quote splits at every comma, the same fields at a fraction of the cost.
    fields = F.when(F.col("raw").contains('"'), F.split(F.col("raw"), _SEPARATOR, -1)).otherwise(
        F.split(F.col("raw"), ",", -1)
    )
    return lines.select(
        *[
            _unquote(F.get(fields, position)).alias(column)
            for column, position in zip(columns, positions, strict=True)
        ],
        "source_file",
        (F.col("index") + 1).cast("int").alias("line"),
        F.size(fields).cast("int").alias("field_count"),
        F.lit(width).cast("int").alias("header_fields"),
        "raw",
    )


def read_rows(
    spark: SparkSession, paths: Sequence[Path | str], columns: Sequence[str]
) -> DataFrame:
    """Every data row of `paths` as text `columns` plus file, line, field count and raw text."""
    if not paths:
        return spark.createDataFrame([], raw_schema(columns))
    by_header: dict[tuple[tuple[int, ...], int], list[str]] = defaultdict(list)
    for path in paths:
        by_header[column_positions(path, columns)].append(str(path))
    parts = [
        _read_group(spark, group, columns, positions, width)
        for (positions, width), group in sorted(by_header.items())
    ]
    return reduce(DataFrame.unionByName, parts)
