"""The IO manager that stores Spark DataFrames as warehouse datasets, and the warehouse resource."""

from dataclasses import dataclass, field
from datetime import date

import dagster as dg
from pydantic import Field
from pyspark.sql import DataFrame

from pdm_assets.adapters.spark import SparkResource
from pdm_assets.adapters.warehouse.choice import open_store
from pdm_assets.adapters.warehouse.protocol import DatasetStore, ReadVersion, Staged
from pdm_assets.core.timewindow import Window, day_ranges
from pdm_assets.defs.partitions import partition_window
from pdm_assets.defs.retries import fail_without_retry

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


@dataclass
class _StepWrites:
    """What one step has read, staged and committed: its outputs commit together once the last
    of them is staged."""

    read: list[ReadVersion] = field(default_factory=list)
    staged: dict[str, Staged] = field(default_factory=dict)
    committed: set[str] = field(default_factory=set)


# Per attempt of a step of a run, in this process: a step runs in one process (its own under the
# multiprocess executor, the cluster's under the Databricks step launcher), and its outputs are
# handled in that process one after the other. A retried step starts afresh.
_STEPS: dict[tuple[str, str, int], _StepWrites] = {}


def _step_writes(context: dg.InputContext | dg.OutputContext) -> _StepWrites:
    try:
        step = context.step_context
    except dg.DagsterInvariantViolationError:
        # A context built by hand (build_output_context): one output, committed at once.
        return _StepWrites()
    return _STEPS.setdefault(
        (step.run_id, step.step.key, step.previous_attempt_count), _StepWrites()
    )


def _outputs_to_commit_together(context: dg.OutputContext) -> set[str]:
    """The step's outputs this IO manager stores that the step must yield: the selected asset
    outputs under the same IO manager key (not its asset checks' outputs, nor optional ones)."""
    try:
        step = context.step_context
    except dg.DagsterInvariantViolationError:
        return {context.name}
    layer = step.job_def.asset_layer
    ours = step.op_def.output_def_named(context.name).io_manager_key
    together = set()
    for name in step.selected_output_names:
        output = step.op_def.output_def_named(name)
        if (
            layer.get_asset_key_for_node_output(step.node_handle, name) is not None
            and output.io_manager_key == ours
            and output.is_required
        ):
            together.add(name)
    return together | {context.name}


class WarehouseReader(dg.ConfigurableResource):
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


class WarehouseIOManager(dg.ConfigurableIOManager):
    """Writes each asset to `<warehouse>/<asset>`; daily assets as atomic `date=` partitions.

    Inputs are read as one pruned read of the upstream partitions the partition mapping selects
    (for example the two days before a features partition), so a range backfill or a lookback is
    a single Spark scan, not one per day.
    """

    warehouse_resource: WarehouseReader
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
            staged = self.warehouse.stage_partitions(dataset, obj, window)
        else:
            staged = self.warehouse.stage_table(dataset, obj)
        self._commit_when_last(context, staged)
        rows = sum(staged.counts.values())
        partitions = (
            {"partitions_written": len(staged.counts)} if context.has_asset_partitions else {}
        )
        context.add_output_metadata(
            {"path": dg.MetadataValue.path(path), **partitions, "rows_written": rows}
        )

    def _commit_when_last(self, context: dg.OutputContext, staged: Staged) -> None:
        """Commit the step's outputs together once the last is staged (a raw table and its
        quarantine, from one read of the source), refusing them if an input changed meanwhile."""
        step = _step_writes(context)
        step.staged[context.name] = staged
        if not _outputs_to_commit_together(context) <= step.committed | set(step.staged):
            return
        self.warehouse.commit(list(step.staged.values()), step.read)
        step.committed |= set(step.staged)
        step.staged.clear()

    def load_input(self, context: dg.InputContext) -> DataFrame:
        upstream = context.upstream_output
        if upstream is None or upstream.asset_key is None:
            raise ValueError("WarehouseIOManager only loads asset inputs")
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
            return self.warehouse.read_window(session, dataset, window, _step_writes(context).read)
        return self.warehouse.read_table(session, dataset, _step_writes(context).read)
