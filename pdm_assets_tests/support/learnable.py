"""Rows a classifier learns at once: for the model's tests, on a few machines and days."""

from __future__ import annotations

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import Window as SparkWindow
from pyspark.sql import functions as F

from pdm_assets.core.fleet import DEFAULT_FLEET
from pdm_assets_tests.support.frames import hour


def learnable_rows(spark: SparkSession) -> DataFrame:
    """80 rows: class k (0..4) where volt_mean_24h is 100 k; every other feature 1."""
    rows = []
    for index in range(80):
        label = index % 5
        values = {name: 1.0 for name in DEFAULT_FLEET.numeric_features}
        values["volt_mean_24h"] = 100.0 * label
        rows.append((label, "model1", *values.values()))
    frame = spark.createDataFrame(
        rows, ["label", *DEFAULT_FLEET.categorical_features, *DEFAULT_FLEET.numeric_features]
    )
    return frame.withColumn("age", F.col("age").cast("int"))


def labelled_history(spark: SparkSession) -> DataFrame:
    """The learnable rows of four machines, one every three days over 60 days before
    2015-03-01, with the columns of training rows (a failure 24 h after each failing row)."""
    rows = learnable_rows(spark).withColumn("_index", F.monotonically_increasing_id())
    ordered = rows.withColumn("_n", F.row_number().over(SparkWindow.orderBy("_index")) - 1)
    return (
        ordered.withColumn("machine_id", (F.col("_n") % 4 + 1).cast("int"))
        .withColumn(
            "datetime",
            F.timestamp_seconds(
                F.lit(int(hour(0).timestamp())) + F.floor(F.col("_n") / 4) * F.lit(3 * 86400)
            ),
        )
        .withColumn("hours_to_failure", F.when(F.col("label") > 0, F.lit(24.0)))
        .withColumn("censored", F.lit(False))
        .drop("_index", "_n")
    )
