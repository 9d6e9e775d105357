"""The demo's progress lines, from a real in-process run of two tiny assets (no Spark)."""

import io
import re

import dagster as dg

from pdm_assets.dev.progress import Progress
from pdm_assets_tests.support.environment import range_tags


@dg.asset
def readings() -> dg.Output[int]:
    return dg.Output(3, metadata={"rows_written": 1234})


@dg.asset
def summary(readings: int) -> int:
    return readings + 1


def test_each_step_prints_start_and_end_with_rows_and_the_overall_count() -> None:
    out = io.StringIO()
    progress = Progress(total=3, out=out)
    job = dg.define_asset_job("tiny_job", selection=[readings, summary])
    defs = dg.Definitions(assets=[readings, summary], jobs=[job])
    resolved = defs.resolve_job_def("tiny_job").with_logger_defs({"progress": progress.logger()})
    assert resolved.execute_in_process(run_config={"loggers": {"progress": {}}}).success
    progress.start("report")
    progress.end("report", ": 2 rows")
    lines = [re.sub(r"\d+\.\d s", "X s", line) for line in out.getvalue().splitlines()]
    assert lines == [
        "[step 1 of 3] readings ...",
        "[step 1 of 3] readings done in X s: readings 1,234 rows",
        "[step 2 of 3] summary ...",
        "[step 2 of 3] summary done in X s",
        "[step 3 of 3] report ...",
        "[step 3 of 3] report done in X s: 2 rows",
    ]
    assert progress.lines == out.getvalue().splitlines()


DAYS = dg.DailyPartitionsDefinition(start_date="2015-01-01", end_date="2015-01-10")


@dg.asset(partitions_def=DAYS, backfill_policy=dg.BackfillPolicy.single_run())
def daily_readings(context: dg.AssetExecutionContext) -> dg.Output[None]:
    # The window's total, as the warehouse IO manager reports it for a range.
    return dg.Output(None, metadata={"rows_written": 10 * len(context.partition_keys)})


def test_a_range_run_counts_the_window_once_with_its_partitions() -> None:
    out = io.StringIO()
    progress = Progress(total=1, out=out)
    job = dg.define_asset_job("daily_job", selection=[daily_readings], partitions_def=DAYS)
    defs = dg.Definitions(assets=[daily_readings], jobs=[job])
    resolved = defs.resolve_job_def("daily_job").with_logger_defs({"progress": progress.logger()})
    tags = range_tags("2015-01-02", "2015-01-04")
    result = resolved.execute_in_process(run_config={"loggers": {"progress": {}}}, tags=tags)
    assert result.success
    last = re.sub(r"\d+\.\d s", "X s", out.getvalue().splitlines()[-1])
    assert (
        last == "[step 1 of 1] daily_readings done in X s: daily_readings 30 rows in 3 partitions"
    )
