"""The drift model_outcomes reports, on tiny feature tables in a folder warehouse."""

from __future__ import annotations

import math
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import dagster as dg
import pytest
from pyspark.sql import DataFrame, SparkSession

from pdm_assets.adapters.warehouse import FolderWarehouse
from pdm_assets.core.fleet import DEFAULT_FLEET
from pdm_assets.core.timewindow import Window
from pdm_assets.defs.monitoring.outcomes import drift_since_cutoff

DAY = date(2015, 2, 2)


def _one(day: date) -> Window:
    return Window.of_days(day, day + timedelta(days=1))


def _features(spark: SparkSession, rows: list[tuple[date, float]]) -> DataFrame:
    """One machine; volt_mean_12h as given, every other feature 1.0."""
    columns = ", ".join(f"{name} double" for name in DEFAULT_FLEET.numeric_features)
    records = [
        (
            1,
            datetime(day.year, day.month, day.day, tzinfo=UTC),
            day,
            *(volt if name == "volt_mean_12h" else 1.0 for name in DEFAULT_FLEET.numeric_features),
        )
        for day, volt in rows
    ]
    return spark.createDataFrame(
        records, f"machine_id int, datetime timestamp, date date, {columns}"
    )


def test_drift_is_measured_against_the_days_before_the_months_cutoff(
    spark: SparkSession, tmp_path: Path
) -> None:
    warehouse = FolderWarehouse(tmp_path)
    reference = [(date(2015, 1, 10), 1.0), (date(2015, 1, 20), 3.0)]
    # A day before the 28-day reference and one after the cutoff's day are not compared.
    ignored = [(date(2015, 1, 2), 100.0), (date(2015, 2, 1), 100.0)]
    for day, volt in [*reference, *ignored, (DAY, 4.0)]:
        warehouse.write_partitions("machine_features", _features(spark, [(day, volt)]), _one(day))
    drift, largest, compared = drift_since_cutoff(warehouse, spark, _one(DAY))
    # Reference mean 2, sample sd sqrt(2); the day's 4 is sqrt(2) sds away. Constant features
    # have no sd and no drift.
    assert drift == {"volt_mean_12h": pytest.approx(math.sqrt(2), rel=1e-12)}
    assert largest == pytest.approx(math.sqrt(2), rel=1e-12)
    assert compared == "features of 2015-02-02 .. 2015-02-02 against 2015-01-04 .. 2015-01-31"


def test_without_a_reference_drift_is_not_measured_and_a_missing_day_fails(
    spark: SparkSession, tmp_path: Path
) -> None:
    warehouse = FolderWarehouse(tmp_path)
    warehouse.write_partitions("machine_features", _features(spark, [(DAY, 4.0)]), _one(DAY))
    drift, largest, compared = drift_since_cutoff(warehouse, spark, _one(DAY))
    assert (drift, largest) == ({}, None)
    assert compared == "not measured: no machine_features in 2015-01-04 .. 2015-01-31"
    with pytest.raises(dg.Failure, match="machine_features lacks 1 of the 2 days"):
        drift_since_cutoff(warehouse, spark, Window.of_days(DAY, date(2015, 2, 4)))
