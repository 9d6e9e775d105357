"""The maintenance work list: each day's open alerts, most urgent first, with their reasons."""

from collections import defaultdict
from datetime import date

import dagster as dg
from pydantic import Field
from pyspark.sql import DataFrame, Row
from pyspark.sql import functions as F

from pdm_assets.adapters.sources import RawSource
from pdm_assets.adapters.spark import SparkResource, StepLauncherParam
from pdm_assets.adapters.worklist_files import WorklistFiles
from pdm_assets.core import feedback, worklist
from pdm_assets.defs.instance_config import WAREHOUSE_POOL
from pdm_assets.defs.io_manager import ALLOW_MISSING_PARTITIONS, WarehouseReader, require_every_day
from pdm_assets.defs.metadata import column_schema
from pdm_assets.defs.partitions import GraphPartitions, partition_window

SCORING_GROUP = "scoring"
# Earlier days of scores read to count how long an alert has held.
HISTORY_DAYS = 7


class WorklistConfig(dg.Config):
    """How the work list treats the planner's feedback."""

    acknowledge_days: int = Field(
        default=7,
        description="An alert with feedback (inspected, replaced, false_alarm) on its machine "
        "and component recorded in this many days before it leaves the work list.",
    )


def build_worklist_asset(partitions: GraphPartitions) -> dg.AssetsDefinition:
    fleet = partitions.fleet

    @dg.asset(
        pool=WAREHOUSE_POOL,
        group_name=SCORING_GROUP,
        description=(
            "The day's maintenance work list: one row per (machine, component) that alerted, "
            "at its latest alerting observation of the day, ranked by urgency (probability / "
            "the cut it passed), with the consecutive observations the alert has held, its "
            "three reasons (the features that added most to the probability, with their value "
            "and typical value), the days since the component's last replacement and the "
            "model version. Alerts the planner acknowledged in the feedback table leave it for "
            "acknowledge_days. Also written as CSV (PDM_WORKLISTS) for people outside Dagster."
        ),
        metadata={"dagster/column_schema": column_schema(worklist.SCHEMA)},
        partitions_def=partitions.daily,
        backfill_policy=dg.BackfillPolicy.single_run(),
        io_manager_key="warehouse_io_manager",
        kinds={"spark", "csv"},
        ins={
            "machine_scores": dg.AssetIn(
                partition_mapping=dg.TimeWindowPartitionMapping(
                    start_offset=-HISTORY_DAYS, allow_nonexistent_upstream_partitions=True
                ),
                # The days before the window only lengthen the held counts: scored or not.
                metadata={ALLOW_MISSING_PARTITIONS: True},
            )
        },
    )
    def maintenance_worklist(
        context: dg.AssetExecutionContext,
        step_launcher: StepLauncherParam,
        config: WorklistConfig,
        spark: SparkResource,
        warehouse: WarehouseReader,
        source: RawSource,
        worklist_files: WorklistFiles,
        machine_scores: DataFrame,
    ) -> dg.Output[DataFrame]:
        window = partition_window(context.partition_time_window)
        # The window's own days must be scored: a missing day would read as "no alerts".
        require_every_day(warehouse.store, "machine_scores", window)
        session = spark.get_session()
        planner = feedback.validate(source.read_feedback(session), fleet)
        rejected = planner.rejected.limit(20).collect()
        if rejected:
            context.log.warning(f"feedback rows not read: {[row.asDict() for row in rejected]}")
        lists = worklist.worklists(
            machine_scores,
            window.days,
            planner.valid,
            config.acknowledge_days,
            HISTORY_DAYS,
            fleet,
        ).localCheckpoint(eager=True)
        rows = lists.orderBy("date", "rank").collect()
        by_day: dict[date, list[Row]] = defaultdict(list)
        for row in rows:
            by_day[row["date"]].append(row)
        files = {
            day: worklist_files.write(day, worklist.to_csv(by_day[day])) for day in window.days
        }
        last = window.days[-1]
        return dg.Output(
            lists,
            metadata={
                "dagster/row_count": len(rows),
                "open_alerts_by_day": dg.MetadataValue.json(
                    {day.isoformat(): len(by_day[day]) for day in window.days}
                ),
                "top_of_the_list": dg.MetadataValue.md(
                    f"**{last.isoformat()}**\n\n{worklist.markdown(by_day[last])}"
                ),
                "csv": dg.MetadataValue.path(files[last]),
                "acknowledged_alerts": _acknowledged_count(machine_scores, window.days, rows),
                "feedback_rows_not_read": len(rejected),
            },
        )

    return maintenance_worklist


def _acknowledged_count(scores: DataFrame, days: list[date], listed: list[Row]) -> int:
    """Alerting (machine, component, day) triples the list left out for their feedback."""
    alerting = (
        scores.where(F.col("date").isin(*days) & F.col("alert"))
        .select("date", "machine_id", "alert_component_name")
        .distinct()
        .count()
    )
    return alerting - len(listed)
