"""A landed day's way to its scores through the sensor and the daemon, with or without warm Spark.

Runs in the work folder `graph_benchmark.py --keep WORK` left (its ingest, model and instance):
starts `dagster dev` there (and, unless `--cold`, the local Spark Connect server that `make ui`
starts), waits for the daemon's first evaluation of the landing sensor, lands the next unlanded
day of the same simulated fleet, waits for that day's `machine_scores` partition, and does the
same for the day after (`--days`).

    .venv/bin/python benchmarks/daemon_latency.py --work /tmp/gb/a100          # warm Spark
    .venv/bin/python benchmarks/daemon_latency.py --work /tmp/gb/a100 --cold   # a JVM per run

Records the seconds from the day's `_COMPLETE` marker to its scores, and from the run's start to
its scores; writes benchmarks/results/daemon-<machines>x<days>-seed<seed>-<warm|cold>.json.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import time
from datetime import date
from pathlib import Path
from typing import Any

from results_file import write_result

REPO = Path(__file__).resolve().parents[1]
START = date(2015, 1, 1)
SENSOR_EVALUATED = "Checking for new runs for sensor: landing_sensor"
TIMEOUT_SECONDS = 900


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _wait(what: str, found: Any, timeout: float = TIMEOUT_SECONDS) -> float:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if found():
            return time.time()
        time.sleep(0.25)
    raise SystemExit(f"no {what} after {timeout:.0f} s")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, required=True, help="graph_benchmark.py's --keep")
    parser.add_argument(
        "--cold", action="store_true", help="no Spark Connect server: a JVM per run"
    )
    parser.add_argument("--days", type=int, default=2, help="days landed one after the other")
    args = parser.parse_args(argv)
    environment = json.loads((args.work / "environment.json").read_text())
    os.environ.update(environment)
    home = Path(environment["PDM_HOME"])
    machines, days = int(environment["PDM_SIM_MACHINES"]), int(environment["PDM_SIM_DAYS"])
    seed = int(environment["PDM_SIM_SEED"])

    from pdm_assets.adapters import spark_server
    from pdm_assets.core import landing
    from pdm_assets.core.fleet import DEFAULT_FLEET
    from pdm_assets.simulator.fleet_simulator import FleetSpec, simulate, write_landing

    landed = set(landing.complete_days(home / "landing", DEFAULT_FLEET.event_tables))
    fleet = simulate(FleetSpec(machines=machines, start=START, days=days, seed=seed))
    unlanded = [day for day in fleet.days if day not in landed]
    if len(unlanded) < args.days:
        raise SystemExit(
            f"{args.work} has {len(unlanded)} unlanded days; run graph_benchmark again"
        )

    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.pop("PDM_SPARK_MASTER", None)
    if not args.cold:
        env["PDM_SPARK_MASTER"] = spark_server.start(home)
        env.update(spark_server.client_environment(home))
    log = args.work / f"dagster-dev-{unlanded[0]}.log"
    server = subprocess.Popen(
        [
            str(Path(sys.executable).parent / "dagster"),
            "dev",
            "-w",
            "workspace.yaml",
            "-h",
            "127.0.0.1",
            "-p",
            str(_free_port()),
        ],
        cwd=REPO,
        env=env,
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    latencies: list[tuple[date, float, float]] = []
    try:
        _wait("sensor evaluation", lambda: SENSOR_EVALUATED in log.read_text(errors="replace"))
        # One day after the other, as they would land: the first meets a server that has not
        # answered a query yet, the next ones the server as it is in daily operation.
        for day in unlanded[: args.days]:
            write_landing(fleet, home / "landing", [day])
            complete = (home / "landing" / f"date={day}" / "_COMPLETE").stat().st_mtime
            scores = home / "warehouse" / "machine_scores" / f"date={day}"
            _wait(f"scores of {day}", scores.exists)
            latencies.append((day, complete, scores.lstat().st_mtime))
    finally:
        os.killpg(server.pid, signal.SIGINT)
        try:
            server.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
        if not args.cold:
            spark_server.stop(home)

    import dagster as dg

    from pdm_assets.defs.jobs import LANDED_DAY_JOB

    measured = []
    with dg.DagsterInstance.from_config(environment["DAGSTER_HOME"]) as instance:
        for day, complete, scored in latencies:
            runs = instance.get_runs(
                dg.RunsFilter(job_name=LANDED_DAY_JOB, tags={"dagster/partition": str(day)})
            )
            run_start = instance.get_run_stats(runs[0].run_id).start_time if runs else None
            measured.append(
                {
                    "day": str(day),
                    "complete_to_scores_seconds": round(scored - complete, 1),
                    "run_start_to_scores_seconds": (
                        round(scored - run_start, 1) if run_start else None
                    ),
                }
            )
    report = {
        "fleet": {"machines": machines, "seed": seed},
        "spark": "per run (local[*])" if args.cold else "warm Spark Connect server",
        "days": measured,
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }
    write_result(f"daemon-{machines}-seed{seed}-{'cold' if args.cold else 'warm'}.json", report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
