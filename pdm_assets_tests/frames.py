"""Builders of tiny typed frames for hand-computed tests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

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
