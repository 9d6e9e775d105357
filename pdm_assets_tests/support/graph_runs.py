"""Run the graph's jobs in a process of its own, settings from the PDM_* environment.

Used by the cluster and time-zone tests: a process holds one SparkContext and one time zone, so
a run against a standalone master or under another `TZ` needs a fresh interpreter. A file, not
`python -c`: pyspark's Spark Connect import mistakes a `-c` main module for a doctest run and
exits.

    python -m pdm_assets_tests.support.graph_runs steps \
        ingest:FIRST:LAST train:CUTOFF score:FIRST:LAST

(and `machines`, the ingest job's machines only; `telemetry:FIRST:LAST`, its telemetry only,
over machines already ingested) runs those jobs in
order (each a range run, train with the small model) and prints one JSON line
of their wall times; it stops with an error at the first job that fails. `start` and `finish`
do that from a test.
"""

import json
import os
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path

import dagster as dg
import pytest

from pdm_assets.definitions import build_definitions
from pdm_assets.defs.jobs import INGEST_JOB, SCORE_JOB, TRAIN_JOB
from pdm_assets.settings import load_settings
from pdm_assets_tests.support.environment import range_tags
from pdm_assets_tests.support.models import model_run_config
from pdm_assets_tests.support.paths import REPO_ROOT


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


def run_range(defs: dg.Definitions, job: str, first: str, last: str, **kwargs: object) -> float:
    return run(defs, job, tags=range_tags(first, last), **kwargs)


MACHINES_ONLY = [dg.AssetKey(name) for name in ("raw_machines", "quarantine_machines")]
TELEMETRY_ONLY = [dg.AssetKey(name) for name in ("raw_telemetry", "quarantine_telemetry")]


def run_steps(defs: dg.Definitions, steps: list[str]) -> dict[str, float]:
    jobs = {"ingest": INGEST_JOB, "score": SCORE_JOB, "telemetry": INGEST_JOB}
    timings = {}
    for step in steps:
        name, *days = step.split(":")
        if name == "machines":
            timings[step] = run(defs, INGEST_JOB, asset_selection=MACHINES_ONLY)
        elif name == "train":
            (cutoff,) = days
            timings[step] = run(
                defs,
                TRAIN_JOB,
                partition_key=cutoff,
                run_config=model_run_config(),
            )
        else:
            first, last = days
            selection = {"asset_selection": TELEMETRY_ONLY} if name == "telemetry" else {}
            timings[step] = run_range(defs, jobs[name], first, last, **selection)
    return timings


def start(env: Mapping[str, str], steps: list[str], log: Path) -> subprocess.Popen[bytes]:
    """`steps` in a process of its own with `env`; its log (stderr) in `log`."""
    with log.open("wb") as stderr:
        return subprocess.Popen(
            [sys.executable, "-m", "pdm_assets_tests.support.graph_runs", "steps", *steps],
            cwd=REPO_ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=stderr,
        )


def run_here(env: Mapping[str, str], steps: list[str]) -> dict[str, float]:
    """`steps` in this process and its Spark, with `env`'s PDM_* settings only, as `start` would
    run them in a process of its own; each step's wall time."""
    with pytest.MonkeyPatch.context() as patch:
        for name in [name for name in os.environ if name.startswith("PDM_")]:
            patch.delenv(name)
        patch.delenv("DAGSTER_HOME", raising=False)
        for name, value in env.items():
            if name.startswith("PDM_"):
                patch.setenv(name, value)
        return run_steps(build_definitions(load_settings()), steps)


def finish(process: subprocess.Popen[bytes], log: Path, timeout: float = 900) -> dict[str, float]:
    """Wait for a process `start` began; the wall time of each of its steps."""
    out, _ = process.communicate(timeout=timeout)
    assert process.returncode == 0, log.read_text(errors="replace")[-4000:]
    return json.loads(out.decode().strip().splitlines()[-1])  # type: ignore[no-any-return]


def main(argv: list[str]) -> int:
    command, *steps = argv
    if command != "steps":
        raise SystemExit(f"usage: graph_runs steps JOB:DAYS ..., got {command!r}")
    sys.stdout.write(json.dumps(run_steps(build_definitions(), steps)) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
