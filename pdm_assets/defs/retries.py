"""Failures that a retry cannot fix, marked so that the instance's run retries leave them alone.

Run retries (instance_config.py) re-execute a failed run. For a lookback with a hole, or a landed
file refused as cut short, the retry would fail the same way, and hold the one-writer pool while
it does; the landing sensor asks for that day again once its inputs change instead. Before such
a step fails it tags its run `dagster/retry_on_asset_or_op_failure=false`, Dagster's own run tag
for "retry this run only if its worker crashed", which the retry daemon reads at the failure.
"""

from __future__ import annotations

import dagster as dg
from dagster._core.storage.tags import RETRY_ON_ASSET_OR_OP_FAILURE_TAG


def fail_without_retry(
    instance: dg.DagsterInstance, run_id: str, failure: dg.Failure
) -> dg.Failure:
    """Tag the run so that its failure is not retried; the failure, to raise."""
    instance.add_run_tags(run_id, {RETRY_ON_ASSET_OR_OP_FAILURE_TAG: "false"})
    return failure
