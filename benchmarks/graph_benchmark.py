"""Where the graph's time goes on a simulated fleet, beside a Polars yardstick.

Simulates a fleet of `--days` days plus five, lands the first `--days`, then in one process:

1. `ingest_days_job` over all landed days as one single-run backfill;
2. the same features and labels in Polars (`polars_yardstick.py`) on the same landing folder,
   timed and checked against the warehouse (largest |difference|);
3. `train_model_job` at the first of the month of the new day, with the model's defaults
   (skipped when that month start leaves less than `MIN_TRAIN_DAYS` days of history);
4. lands the next day and runs `landed_day_job` for it (skipped with the training).

The last four days stay unlanded for `daemon_latency.py`, which measures a day's way from its
`_COMPLETE` marker to its scores through the sensor and the daemon, in the same work folder.

Per run and per asset step it records wall seconds, rows written, the Spark jobs started and
their summed seconds (from Spark's event log), and the peak memory of the process tree (Python
and the JVM). The Spark session is started before the first run and its start is reported apart.

    .venv/bin/python benchmarks/graph_benchmark.py --machines 1000 --days 30 --seed 1

Writes benchmarks/results/graph-<machines>x<days>-seed<seed>[-label].json and prints it.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import psutil
from results_file import write_result

REPO = Path(__file__).resolve().parents[1]
RANGE_START = "dagster/asset_partition_range_start"
RANGE_END = "dagster/asset_partition_range_end"
START = date(2015, 1, 1)
# validation_days (21) + horizon (7) + a week of training rows.
MIN_TRAIN_DAYS = 35
SPARE_DAYS = 4
ENVIRONMENT_FILE = "environment.json"
# The gate is not what is measured here.
UNGATED = {"min_pr_auc_lift": 0.0, "champion_tolerance": 1.0}


class PeakMemory:
    """Samples the resident memory of this process and its children (the JVM) every 0.2 s."""

    def __init__(self) -> None:
        self.peak_bytes = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        me = psutil.Process()
        while not self._stop.is_set():
            total = 0
            for process in [me, *me.children(recursive=True)]:
                try:
                    total += process.memory_info().rss
                except psutil.Error:
                    continue
            self.peak_bytes = max(self.peak_bytes, total)
            self._stop.wait(0.2)

    def __enter__(self) -> PeakMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


@dataclass
class SparkJobs:
    """Jobs read from Spark's event log: (submitted, completed) in epoch seconds."""

    folder: Path
    jobs: list[tuple[float, float]] = field(default_factory=list)

    def refresh(self) -> None:
        started: dict[int, float] = {}
        self.jobs = []
        for log in (path for path in self.folder.rglob("*") if path.is_file()):
            with log.open() as lines:
                for line in lines:
                    if '"SparkListenerJob' not in line[:40]:
                        continue
                    event = json.loads(line)
                    if event["Event"] == "SparkListenerJobStart":
                        started[event["Job ID"]] = event["Submission Time"] / 1000
                    elif event["Event"] == "SparkListenerJobEnd" and event["Job ID"] in started:
                        ended = event["Completion Time"] / 1000
                        self.jobs.append((started[event["Job ID"]], ended))

    def between(self, first: float, last: float) -> tuple[int, float]:
        inside = [(s, e) for s, e in self.jobs if first <= s <= last]
        return len(inside), sum(e - s for s, e in inside)


def _load() -> tuple[float, float, float]:
    return os.getloadavg()


def run_job(
    defs: Any, instance: Any, job: str, spark_jobs: SparkJobs, **options: Any
) -> dict[str, Any]:
    """Run one job in process; its wall time, steps, rows and Spark jobs."""
    import dagster as dg

    load_before = _load()
    began = time.time()
    result = defs.resolve_job_def(job).execute_in_process(instance=instance, **options)
    wall = time.time() - began
    if not result.success:
        raise SystemExit(f"{job} failed")
    spark_jobs.refresh()
    step_start: dict[str, float] = {}
    steps: dict[str, dict[str, Any]] = {}
    rows: dict[str, int] = defaultdict(int)
    for record in instance.all_logs(result.run_id):
        event = record.dagster_event
        if event is None:
            continue
        if event.event_type == dg.DagsterEventType.STEP_START:
            step_start[event.step_key] = record.timestamp
        elif event.event_type == dg.DagsterEventType.STEP_SUCCESS:
            first = step_start[event.step_key]
            jobs, job_seconds = spark_jobs.between(first, record.timestamp)
            steps[event.step_key] = {
                "seconds": round(record.timestamp - first, 2),
                "spark_jobs": jobs,
                "spark_job_seconds": round(job_seconds, 2),
            }
        elif event.event_type == dg.DagsterEventType.ASSET_MATERIALIZATION:
            materialization = event.event_specific_data.materialization
            value = materialization.metadata.get("rows")
            if value is not None:
                # Every partition of a range run carries the run's row count.
                asset = materialization.asset_key.to_user_string()
                rows[asset] = max(rows[asset], int(value.value))
    for asset, count in rows.items():
        if asset in steps:
            steps[asset]["rows"] = count
    jobs, job_seconds = spark_jobs.between(began, began + wall)
    return {
        "seconds": round(wall, 2),
        "spark_jobs": jobs,
        "spark_job_seconds": round(job_seconds, 2),
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in _load()],
        "steps": steps,
    }


def _month_start(day: date) -> date:
    return day.replace(day=1)


def compare_with_yardstick(
    spark: Any, store: Any, landing: Path, first: date, end: date, repeats: int
) -> dict[str, Any]:
    """Time the Polars yardstick (median of `repeats`) and its largest difference from ours."""
    import polars_yardstick

    from pdm_assets.core.fleet import DEFAULT_FLEET
    from pdm_assets.core.timewindow import Window

    seconds = []
    for _ in range(repeats):
        began = time.perf_counter()
        features, labels = polars_yardstick.compute(landing, first, end)
        seconds.append(time.perf_counter() - began)
    keys = ["machine_id", "datetime"]
    window = Window.of_days(first, end)
    largest: dict[str, float] = {}
    for dataset, theirs, columns in (
        ("machine_features", features, DEFAULT_FLEET.numeric_features),
        ("failure_labels", labels, ["label", "hours_to_failure"]),
    ):
        ours = store.read_window(spark, dataset, window).toPandas().sort_values(keys)
        mine = ours.reset_index(drop=True)
        other = theirs.to_pandas().sort_values(keys).reset_index(drop=True)
        if len(mine) != len(other) or not (mine[keys] == other[keys]).all().all():
            largest[dataset] = float("inf")
            continue
        diffs = [
            float((mine[c].astype(float) - other[c].astype(float)).abs().max(skipna=True) or 0)
            for c in columns
        ]
        nulls_agree = all((mine[c].isna() == other[c].isna()).all() for c in columns)
        largest[dataset] = max(diffs) if nulls_agree else float("inf")
    return {
        "seconds_median": round(statistics.median(seconds), 3),
        "seconds": [round(s, 3) for s in seconds],
        "feature_rows": features.height,
        "label_rows": labels.height,
        "largest_difference": largest,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--machines", type=int, default=100)
    parser.add_argument("--days", type=int, default=59, help="days ingested from 2015-01-01")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--keep", type=Path, help="work folder to keep (default: a temp one)")
    parser.add_argument("--label", default="", help="suffix of the result file's name")
    parser.add_argument("--yardstick-repeats", type=int, default=3)
    parser.add_argument(
        "--in-memory-instance",
        action="store_true",
        help="Dagster's in-memory instance instead of sqlite under DAGSTER_HOME (the event log's "
        "cost per event apart; daemon_latency.py cannot use such a work folder)",
    )
    args = parser.parse_args(argv)
    work = args.keep or Path(tempfile.mkdtemp(prefix="pdm-graph-bench-"))
    home = work / "pdm"
    new_day = START + timedelta(days=args.days)
    # The fleet has SPARE_DAYS more days, left unlanded for daemon_latency.py.
    simulated_days = args.days + 1 + SPARE_DAYS
    environment = {
        "PDM_HOME": str(home),
        "DAGSTER_HOME": str(home / "dagster"),
        "PDM_SIM_MACHINES": str(args.machines),
        "PDM_SIM_DAYS": str(simulated_days),
        "PDM_SIM_SEED": str(args.seed),
        "PDM_PARTITIONS_END": (START + timedelta(days=simulated_days)).isoformat(),
    }
    os.environ.update(environment)
    for name in ("PDM_DATA_SOURCE", "PDM_CSV_DIR", "PDM_MLFLOW_TRACKING_URI", "PDM_ENV"):
        os.environ.pop(name, None)
    work.mkdir(parents=True, exist_ok=True)
    (work / ENVIRONMENT_FILE).write_text(json.dumps(environment, indent=2) + "\n")
    report: dict[str, Any] = {
        "fleet": {"machines": args.machines, "days": args.days, "seed": args.seed},
        "cpus": os.cpu_count(),
        "load_average_start": [round(x, 2) for x in _load()],
    }

    with PeakMemory() as memory:
        began = time.perf_counter()
        from pdm_assets.simulator.fleet_simulator import FleetSpec, simulate, write_landing

        spec = FleetSpec(machines=args.machines, start=START, days=simulated_days, seed=args.seed)
        fleet = simulate(spec)
        landing = home / "landing"
        write_landing(fleet, landing, fleet.days[: args.days])
        report["simulate_and_land_seconds"] = round(time.perf_counter() - began, 2)

        import dagster as dg

        from pdm_assets.adapters.spark import SparkResource
        from pdm_assets.adapters.warehouse import open_store
        from pdm_assets.definitions import build_definitions
        from pdm_assets.defs.instance_config import ensure_instance_yaml
        from pdm_assets.defs.jobs import INGEST_JOB, LANDED_DAY_JOB, TRAIN_JOB
        from pdm_assets.settings import load_settings

        settings = load_settings()
        event_logs = work / "spark-events"
        event_logs.mkdir(parents=True, exist_ok=True)
        began = time.perf_counter()
        conf = {
            **settings.spark_conf,
            "spark.eventLog.enabled": "true",
            "spark.eventLog.dir": event_logs.as_uri(),
            "spark.eventLog.rolling.enabled": "false",
            "spark.eventLog.compress": "false",
        }
        spark = SparkResource(master=settings.spark_master, conf=conf).get_session()
        report["spark_start_seconds"] = round(time.perf_counter() - began, 2)
        spark_jobs = SparkJobs(event_logs)
        defs = build_definitions(settings)
        runs: dict[str, Any] = {}
        # On disk under DAGSTER_HOME, so that daemon_latency.py's `dagster dev` sees the runs.
        ensure_instance_yaml(settings.dagster_home, postgres=settings.dagster_postgres)
        instance_context = (
            dg.DagsterInstance.ephemeral()
            if args.in_memory_instance
            else dg.DagsterInstance.local_temp(str(settings.dagster_home))
        )
        report["dagster_instance"] = "in memory" if args.in_memory_instance else "sqlite"
        with instance_context as instance:
            last = (new_day - timedelta(days=1)).isoformat()
            runs["ingest"] = run_job(
                defs,
                instance,
                INGEST_JOB,
                spark_jobs,
                tags={RANGE_START: START.isoformat(), RANGE_END: last},
            )
            # Before the new day lands: its failures would change the last week's labels.
            store = open_store(settings.warehouse, settings.warehouse_format)
            report["yardstick"] = compare_with_yardstick(
                spark, store, landing, START, new_day, args.yardstick_repeats
            )
            cutoff = _month_start(new_day)
            if (cutoff - START).days >= MIN_TRAIN_DAYS:
                model_config = {"ops": {"failure_model": {"config": UNGATED}}}
                runs["train"] = run_job(
                    defs,
                    instance,
                    TRAIN_JOB,
                    spark_jobs,
                    partition_key=cutoff.isoformat(),
                    run_config=model_config,
                )
                runs["train"]["cutoff"] = cutoff.isoformat()
                write_landing(fleet, landing, [new_day])
                runs["daily_scoring"] = run_job(
                    defs, instance, LANDED_DAY_JOB, spark_jobs, partition_key=new_day.isoformat()
                )
                runs["daily_scoring"]["day"] = new_day.isoformat()
            else:
                runs["train"] = f"skipped: {cutoff} leaves fewer than {MIN_TRAIN_DAYS} days"
        report["runs"] = runs
    report["peak_memory_megabytes"] = round(memory.peak_bytes / 2**20)
    ingest_steps = runs["ingest"]["steps"]
    graph_feature_seconds = sum(
        ingest_steps[name]["seconds"] for name in ("machine_features", "failure_labels")
    )
    yardstick_seconds = report["yardstick"]["seconds_median"]
    report["ratios_to_yardstick"] = {
        "features_and_labels_steps": round(graph_feature_seconds / yardstick_seconds, 1),
        "ingest_run": round(runs["ingest"]["seconds"] / yardstick_seconds, 1),
    }
    report["load_average_end"] = [round(x, 2) for x in _load()]
    report["work"] = str(work)
    suffix = f"-{args.label}" if args.label else ""
    write_result(f"graph-{args.machines}x{args.days}-seed{args.seed}{suffix}.json", report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
