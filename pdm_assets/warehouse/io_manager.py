"""The IO manager that stores Spark DataFrames as warehouse datasets, and the warehouse resource."""

from datetime import date

import dagster as dg
from pydantic import Field
from pyspark.sql import DataFrame

from pdm_assets.partitions import partition_window
from pdm_assets.retries import fail_without_retry
from pdm_assets.spark import SparkResource
from pdm_assets.timewindow import Window, day_ranges
from pdm_assets.warehouse.store import DatasetStore
from pdm_assets.warehouse.stores import open_store

# Input metadata: this input may read a window with days not materialised (labels look ahead at
# failures that have not happened yet, and mark those rows censored instead).
ALLOW_MISSING_PARTITIONS = "pdm/allow_missing_partitions"


def require_every_day(store: DatasetStore, dataset: str, window: Window) -> set[date]:
    """Refuse to read a window of an upstream dataset that has holes; the dataset's materialised
    days otherwise.

    A lookback with a missing day gives features computed on short windows and "days since
    replacement" without the missing replacements, all without an error; so the step fails
    instead, naming the days to materialise first. Dagster clips the window at the first
    partition, so history before PDM_PARTITIONS_START is never asked for.
    """
    materialised = set(store.partition_dates(dataset))
    missing = [day for day in window.days if day not in materialised]
    if missing:
        raise dg.Failure(
            description=(
                f"{dataset} lacks {len(missing)} of the {len(window.days)} days this step reads "
                f"({window.label()}): {day_ranges(missing)}. A lookback with holes would give "
                f"wrong values silently; materialise those days first (e.g. ingest_days_job for "
                f"{missing[0]} .. {missing[-1]}), then run this step again."
            ),
            metadata={"missing_days": dg.MetadataValue.json([str(day) for day in missing])},
        )
    return materialised


def _dataset_name(asset_key: dg.AssetKey) -> str:
    return "__".join(asset_key.path)


class WarehouseResource(dg.ConfigurableResource):
    """The warehouse root, for assets that look at more than their loaded inputs (which days of
    raw_failures exist, for the labels' censoring; the outcomes' drift reference and trend)."""

    root: str = Field(description="A folder, or a URI such as abfss://, s3:// or dbfs:/.")
    table_format: str = Field(
        default="parquet", description="delta or parquet; used when the root is a URI."
    )
    keep_replaced_hours: float = Field(
        default=24,
        description=(
            "Folder warehouse: how long a replaced version of a day (rows and quarantine) stays "
            "on disk, for readers still on it and to compare or restore (at least 1)."
        ),
    )

    @property
    def store(self) -> DatasetStore:
        return open_store(self.root, self.table_format, self.keep_replaced_hours)


class SparkParquetIOManager(dg.ConfigurableIOManager):
    """Writes each asset to `<warehouse>/<asset>`; daily assets as atomic `date=` partitions.

    Inputs are read as one pruned read of the upstream partitions the partition mapping selects
    (for example the two days before a features partition), so a range backfill or a lookback is
    a single Spark scan, not one per day.
    """

    warehouse_resource: WarehouseResource
    spark: SparkResource

    @property
    def warehouse(self) -> DatasetStore:
        return self.warehouse_resource.store

    def handle_output(self, context: dg.OutputContext, obj: DataFrame) -> None:
        if not isinstance(obj, DataFrame):
            raise TypeError(
                f"{context.asset_key.to_user_string()} returned {type(obj).__name__}; "
                "this IO manager stores Spark DataFrames only"
            )
        dataset = _dataset_name(context.asset_key)
        path = self.warehouse.dataset_location(dataset)
        if context.has_asset_partitions:
            window = partition_window(context.asset_partitions_time_window)
            counts = self.warehouse.write_partitions(dataset, obj, window)
            context.add_output_metadata(
                {
                    "path": dg.MetadataValue.path(path),
                    "partitions_written": len(counts),
                    "rows_written": sum(counts.values()),
                }
            )
        else:
            rows = self.warehouse.write_table(dataset, obj)
            context.add_output_metadata({"path": dg.MetadataValue.path(path), "rows_written": rows})

    def load_input(self, context: dg.InputContext) -> DataFrame:
        upstream = context.upstream_output
        if upstream is None or upstream.asset_key is None:
            raise ValueError("SparkParquetIOManager only loads asset inputs")
        dataset = _dataset_name(upstream.asset_key)
        session = self.spark.get_session()
        if context.has_asset_partitions:
            window = partition_window(context.asset_partitions_time_window)
            if not context.definition_metadata.get(ALLOW_MISSING_PARTITIONS):
                try:
                    require_every_day(self.warehouse, dataset, window)
                except dg.Failure as failure:
                    # A retry would find the same hole: the sensor runs the day once it is filled.
                    step = context.step_context
                    raise fail_without_retry(step.instance, step.run_id, failure) from None
            return self.warehouse.read_window(session, dataset, window)
        return self.warehouse.read_table(session, dataset)
