"""Run the graph's jobs in a process of its own, settings from the PDM_* environment.

Used by the cluster test: a process holds one SparkContext, so the run against a standalone
master needs a fresh interpreter. A file, not `python -c`: pyspark's Spark Connect import
mistakes a `-c` main module for a doctest run and exits.

    python -m pdm_assets_tests.graph_runs train FIRST LAST CUTOFF
    python -m pdm_assets_tests.graph_runs score INGEST_FIRST SCORE_FIRST LAST

`score` prints one JSON line of wall times.

    python -m pdm_assets_tests.graph_runs steps ingest:FIRST:LAST train:CUTOFF score:FIRST:LAST

runs those jobs in order (each a range run, train with the small model) and prints one JSON line
of their wall times; it stops with an error at the first job that fails.
"""

import json
import sys
import time

import dagster as dg

from pdm_assets.definitions import build_definitions
from pdm_assets.jobs import INGEST_JOB, SCORE_JOB, TRAIN_JOB

RANGE_START = "dagster/asset_partition_range_start"
RANGE_END = "dagster/asset_partition_range_end"


SMALL_MODEL = {"num_trees": 5, "validation_days": 7, "min_pr_auc_lift": 0.0}


def run(defs: dg.Definitions, job: str, **kwargs: object) -> float:
    started = time.perf_counter()
    with dg.DagsterInstance.ephemeral() as instance:
        result = defs.resolve_job_def(job).execute_in_process(
            instance=instance,
            **kwargs,  # type: ignore[arg-type]
        )
    if not result.success:
        raise SystemExit(f"{job} {kwargs} failed")
    return time.perf_counter() - started


def run_range(defs: dg.Definitions, job: str, first: str, last: str) -> float:
    return run(defs, job, tags={RANGE_START: first, RANGE_END: last})


def run_steps(defs: dg.Definitions, steps: list[str]) -> dict[str, float]:
    jobs = {"ingest": INGEST_JOB, "score": SCORE_JOB}
    timings = {}
    for step in steps:
        name, *days = step.split(":")
        if name == "train":
            (cutoff,) = days
            timings[step] = run(
                defs,
                TRAIN_JOB,
                partition_key=cutoff,
                run_config={"ops": {"failure_model": {"config": SMALL_MODEL}}},
            )
        else:
            first, last = days
            timings[step] = run_range(defs, jobs[name], first, last)
    return timings


def main(argv: list[str]) -> int:
    command, *args = argv
    defs = build_definitions()
    if command == "steps":
        sys.stdout.write(json.dumps(run_steps(defs, args)) + "\n")
        return 0
    if command == "train":
        first, last, cutoff = args
        run_range(defs, INGEST_JOB, first, last)
        run(
            defs,
            TRAIN_JOB,
            partition_key=cutoff,
            run_config={"ops": {"failure_model": {"config": SMALL_MODEL}}},
        )
        return 0
    ingest_first, score_first, last = args
    timings = {
        "ingest_seconds": run_range(defs, INGEST_JOB, ingest_first, last),
        "score_seconds": run_range(defs, SCORE_JOB, score_first, last),
    }
    sys.stdout.write(json.dumps(timings) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
