"""Builders of tiny typed frames for hand-computed tests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql.types import (
    DoubleType,
    IntegerType,
    StringType,
    StructField,
    StructType,
    TimestampType,
)

# Aware UTC: PySpark reads a naive datetime in the machine's local zone.
ORIGIN = datetime(2015, 1, 1, tzinfo=UTC)

TELEMETRY_SCHEMA = StructType(
    [
        StructField("machine_id", IntegerType()),
        StructField("datetime", TimestampType()),
        *[StructField(name, DoubleType()) for name in ("volt", "rotate", "pressure", "vibration")],
    ]
)
ERRORS_SCHEMA = StructType(
    [
        StructField("machine_id", IntegerType()),
        StructField("datetime", TimestampType()),
        StructField("error_id", IntegerType()),
    ]
)
COMPONENT_SCHEMA = StructType(
    [
        StructField("machine_id", IntegerType()),
        StructField("datetime", TimestampType()),
        StructField("component", IntegerType()),
    ]
)
MACHINES_SCHEMA = StructType(
    [
        StructField("machine_id", IntegerType()),
        StructField("model", StringType()),
        StructField("age", IntegerType()),
    ]
)
OBSERVATIONS_SCHEMA = StructType(
    [StructField("machine_id", IntegerType()), StructField("datetime", TimestampType())]
)


def hour(h: float) -> datetime:
    """Hour h after 2015-01-01 00:00 UTC."""
    return ORIGIN + timedelta(hours=h)


def telemetry(spark: SparkSession, rows: list[tuple[int, float, float]]) -> DataFrame:
    """(machine, hour, volt) rows; the other sensors are volt * 2, + 1 and constant 40."""
    return spark.createDataFrame(
        [(m, hour(h), v, v * 2, v + 1, 40.0) for m, h, v in rows], TELEMETRY_SCHEMA
    )


def errors(spark: SparkSession, rows: list[tuple[int, float, int]]) -> DataFrame:
    return spark.createDataFrame([(m, hour(h), e) for m, h, e in rows], ERRORS_SCHEMA)


def components(spark: SparkSession, rows: list[tuple[int, float, int]]) -> DataFrame:
    return spark.createDataFrame([(m, hour(h), c) for m, h, c in rows], COMPONENT_SCHEMA)


def machines(spark: SparkSession, rows: list[tuple[int, str, int]]) -> DataFrame:
    return spark.createDataFrame(rows, MACHINES_SCHEMA)


def observations(spark: SparkSession, rows: list[tuple[int, float]]) -> DataFrame:
    return spark.createDataFrame([(m, hour(h)) for m, h in rows], OBSERVATIONS_SCHEMA)


def sorted_rows(frame: DataFrame) -> list[tuple[object, ...]]:
    """Every row as a tuple, sorted (the leading key columns decide the order)."""
    return sorted(tuple(row) for row in frame.collect())


def assert_same_rows(expected: DataFrame, actual: DataFrame) -> None:
    """Row for row equal; doubles to 1e-9, since sums of doubles may be added in another order
    (another partitioning, other executors)."""
    expected_rows, actual_rows = sorted_rows(expected), sorted_rows(actual)
    assert len(expected_rows) == len(actual_rows) > 0
    for expected_row, actual_row in zip(expected_rows, actual_rows, strict=True):
        for wanted, got in zip(expected_row, actual_row, strict=True):
            if isinstance(wanted, float):
                assert got == pytest.approx(wanted, rel=1e-9, abs=1e-9, nan_ok=True)
            else:
                assert got == wanted
