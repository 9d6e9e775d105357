"""A soak of the daily operation through the real daemon, against a messy producer.

    .venv/bin/python benchmarks/soak.py --machines 5 --days 42 --seed 1 --keep /tmp/soak1
    .venv/bin/python benchmarks/soak.py ... --storage sqlite

On a fresh home: January is landed and ingested, and February's model trained, in this process
(the history a team starts from); then the webserver and the daemon start as the two services of
the production form (over a local Postgres server by default, `--storage sqlite` for the sqlite
instance `make ui` uses), their runs on a warm Spark Connect server as under `make ui`. A producer
then lands the remaining days against the landing folder:

* out of order and one day late (held back to the end);
* one day first with its telemetry file cut short (its marker says more rows), landed whole
  later;
* two days (one of January, one later) landed again with corrected telemetry values;
* the worker of one of the sensor's runs killed with -9 while it runs;
* two backfills of overlapping January ranges (raw tables, features, labels) started at once.

It waits until the daemon is idle (no unfinished run for `--quiet` seconds), then builds a clean
reference: the final landing files ingested in one run into a second home and scored with the
same model. It writes JSON (benchmarks/results/soak-<storage>-<machines>x<days>-seed<seed>.json):
days landed, runs started / failed / retried, runs failed for good, and per asset the partitions
lost (in the reference only), fabricated (in the soak only), partial (fewer rows) and differing
(other rows). Target: all zero.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import ExitStack, contextmanager
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import dagster as dg
import pyarrow as pa
import pyarrow.compute as pc
from pyspark.sql import DataFrame, SparkSession
from results_file import write_result

# The throwaway Postgres server and free ports are the tests' helpers (pdm_assets_tests is not
# installed): run from the checkout, as every benchmark is.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pdm_assets.adapters import spark_server
from pdm_assets.adapters.spark import SparkResource
from pdm_assets.adapters.warehouse import FolderWarehouse, MissingDatasetError
from pdm_assets.core import landing
from pdm_assets.definitions import build_definitions
from pdm_assets.defs.instance_config import ensure_instance_yaml
from pdm_assets.defs.jobs import INGEST_JOB, SCORE_JOB, TRAIN_JOB
from pdm_assets.defs.watchdog import worker_pid
from pdm_assets.settings import load_settings
from pdm_assets.simulator.fleet_simulator import FleetSpec, SimulatedFleet, simulate, write_landing
from pdm_assets_tests.support.models import model_run_config
from pdm_assets_tests.support.paths import REPO_ROOT, free_port
from pdm_assets_tests.support.postgres import local_postgres

START = date(2015, 1, 1)
CUTOFF = date(2015, 2, 1)
RANGE = ("dagster/asset_partition_range_start", "dagster/asset_partition_range_end")
COMPARED = (
    "raw_telemetry",
    "raw_errors",
    "raw_maintenance",
    "raw_failures",
    "quarantine_telemetry",
    "quarantine_errors",
    "quarantine_maint",
    "quarantine_failures",
    "machine_features",
    "failure_labels",
    "machine_scores",
)
UNFINISHED = [
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
    dg.DagsterRunStatus.CANCELING,
]
BIN = Path(sys.executable).parent


def log(text: str) -> None:
    sys.stderr.write(f"[soak {time.strftime('%H:%M:%S')}] {text}\n")
    sys.stderr.flush()


def home_env(home: Path, landing_dir: Path, args: argparse.Namespace) -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("PDM_") and key not in ("DAGSTER_HOME", spark_server.TOKEN_VARIABLE)
    }
    env.update(
        {
            "PDM_HOME": str(home),
            "DAGSTER_HOME": str(home / "dagster"),
            "PDM_DATA_SOURCE": "landing",
            "PDM_LANDING": str(landing_dir),
            "PDM_PARTITIONS_END": (START + timedelta(days=args.days)).isoformat(),
        }
    )
    return env


@contextmanager
def environment(env: Mapping[str, str]) -> Iterator[dg.Definitions]:
    """The definitions of `env`'s settings, built in this process."""
    saved = dict(os.environ)
    os.environ.clear()
    os.environ.update(env)
    try:
        yield build_definitions(load_settings())
    finally:
        os.environ.clear()
        os.environ.update(saved)


def run(defs: dg.Definitions, instance: dg.DagsterInstance, job: str, **kwargs: Any) -> None:
    result = defs.resolve_job_def(job).execute_in_process(instance=instance, **kwargs)
    if not result.success:
        raise SystemExit(f"{job} {kwargs} failed in the soak's own preparation")


def prepare(env: dict[str, str], fleet: SimulatedFleet, landing_dir: Path) -> None:
    """January landed and ingested, February's model trained, in this process."""
    january = [day for day in fleet.days if day < CUTOFF]
    write_landing(fleet, landing_dir, january)
    with environment(env) as defs, dg.DagsterInstance.from_config(env["DAGSTER_HOME"]) as inst:
        tags = dict(zip(RANGE, (january[0].isoformat(), january[-1].isoformat()), strict=True))
        run(defs, inst, INGEST_JOB, tags=tags)
        run(
            defs,
            inst,
            TRAIN_JOB,
            partition_key=CUTOFF.isoformat(),
            run_config=model_run_config(),
        )


def corrected(tables: dict[str, pa.Table], sensor: str) -> dict[str, pa.Table]:
    """The day's tables with every reading of `sensor` half a unit higher (a recalibration)."""
    telemetry = tables["telemetry"]
    index = telemetry.column_names.index(sensor)
    fixed = pc.add(telemetry.column(sensor), 0.5)
    return {**tables, "telemetry": telemetry.set_column(index, sensor, fixed)}


def land_truncated(landing_dir: Path, day: date, fleet: SimulatedFleet) -> None:
    landing.write_day(landing_dir, day, fleet.day_tables(day), fleet.fleet)
    path = Path(landing.table_path(landing_dir, day, "telemetry"))
    lines = path.read_text().splitlines(keepends=True)
    path.write_text("".join(lines[: max(2, len(lines) // 2)]))


def graphql(port: int, query: str, **variables: Any) -> dict[str, Any]:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/graphql",
        data=json.dumps({"query": query, "variables": variables}).encode(),
        headers={"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return json.loads(response.read())  # type: ignore[no-any-return]
    except urllib.error.HTTPError as error:
        raise SystemExit(
            f"GraphQL answered {error.code}: {error.read().decode()[:2000]}"
        ) from error


BACKFILL = """mutation Launch($days: [String!]) {
  launchPartitionBackfill(backfillParams: {
    assetSelection: [%s], partitionNames: $days
  }) {
    __typename ... on LaunchBackfillSuccess { backfillId } ... on PythonError { message }
  }
}"""
# Every compared asset but the scores; a raw table and its quarantine are one step, so a
# backfill takes both.
BACKFILLED = tuple(name for name in COMPARED if name != "machine_scores")


def start_backfills(port: int) -> list[str]:
    """Two backfills of overlapping January ranges, launched one right after the other."""
    selection = ", ".join(f'{{path: ["{name}"]}}' for name in BACKFILLED)
    ids = []
    for first, last in ((5, 15), (10, 20)):
        days = [date(2015, 1, day).isoformat() for day in range(first, last + 1)]
        reply = graphql(port, BACKFILL % selection, days=days)
        launched = reply.get("data", {}).get("launchPartitionBackfill") or reply
        if launched.get("__typename") != "LaunchBackfillSuccess":
            raise SystemExit(f"backfill not launched: {launched}")
        ids.append(launched["backfillId"])
    return ids


def kill_one_worker(instance_dir: str, stop: threading.Event, killed: list[str]) -> None:
    """Kill -9 the worker of the first sensor run seen running a step."""
    with dg.DagsterInstance.from_config(instance_dir) as instance:
        while not stop.is_set():
            runs = instance.get_runs(
                dg.RunsFilter(
                    statuses=[dg.DagsterRunStatus.STARTED],
                    tags={"dagster/sensor_name": "landing_sensor"},
                )
            )
            for candidate in runs:
                steps = instance.get_records_for_run(
                    candidate.run_id, of_type=dg.DagsterEventType.STEP_START
                ).records
                pid = worker_pid(instance, candidate.run_id)
                if steps and pid:
                    os.kill(pid, signal.SIGKILL)
                    log(f"killed the worker (pid {pid}) of run {candidate.run_id}")
                    killed.append(candidate.run_id)
                    return
            time.sleep(1)


def wait_idle(instance_dir: str, quiet: float, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    calm_since: float | None = None
    with dg.DagsterInstance.from_config(instance_dir) as instance:
        while time.monotonic() < deadline:
            busy = instance.get_runs_count(dg.RunsFilter(statuses=UNFINISHED))
            backfills = [
                b for b in instance.get_backfills() if b.status.value in ("REQUESTED", "CANCELING")
            ]
            if busy or backfills:
                calm_since = None
            elif calm_since is None:
                calm_since = time.monotonic()
            elif time.monotonic() - calm_since >= quiet:
                return True
            time.sleep(3)
    return False


def run_summary(instance_dir: str) -> dict[str, Any]:
    with dg.DagsterInstance.from_config(instance_dir) as instance:
        runs = instance.get_runs()
        by_status: dict[str, int] = {}
        for item in runs:
            by_status[item.status.value] = by_status.get(item.status.value, 0) + 1
        retried = [item for item in runs if "dagster/retry_number" in item.tags]
        succeeded_roots = {
            item.tags.get("dagster/root_run_id", item.run_id)
            for item in runs
            if item.status == dg.DagsterRunStatus.SUCCESS
        }
        for_good = [
            item.run_id
            for item in runs
            if item.status == dg.DagsterRunStatus.FAILURE
            and item.tags.get("dagster/will_retry") != "true"
            and item.tags.get("dagster/root_run_id", item.run_id) not in succeeded_roots
            and "dagster/auto_retry_run_id" not in item.tags
        ]
        # The one-writer pool: no two runs that write the warehouse were in progress at once.
        spans = sorted(
            (record.start_time, record.end_time or time.time(), record.dagster_run.run_id)
            for record in instance.get_run_records()
            if record.start_time is not None and record.dagster_run.job_name != TRAIN_JOB
        )
        overlapping = []
        latest_end, latest_run = float("-inf"), ""
        for begin, end, run_id in spans:
            if begin < latest_end:
                overlapping.append((latest_run, run_id))
            if end > latest_end:
                latest_end, latest_run = end, run_id
    return {
        "overlapping_writer_runs": len(overlapping),
        "runs_started": len(runs),
        "runs_by_status": by_status,
        "runs_retried": len(retried),
        "runs_failed_for_good": len(for_good),
        "failed_for_good": for_good[:20],
    }


def rows_by_day(spark: SparkSession, home: Path, dataset: str) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every materialised partition (an empty day is an empty list), sorted."""
    store = FolderWarehouse(home / "warehouse")
    try:
        frame: DataFrame = store.read_all(spark, dataset)
    except MissingDatasetError:
        return {}
    days: dict[str, list[tuple[Any, ...]]] = {
        str(day): [] for day in store.partition_dates(dataset)
    }
    columns = [name for name in frame.columns if name != "date"]
    for row in frame.select("date", *columns).collect():
        days[str(row["date"])].append(tuple(row[name] for name in columns))
    for rows in days.values():
        rows.sort(key=lambda values: tuple(str(value) for value in values if not _is_float(value)))
    return days


def _is_float(value: Any) -> bool:
    return isinstance(value, float)


def _same(a: Any, b: Any) -> bool:
    """Equal, doubles to 1e-9 as the tests allow: sums of doubles added in another order (a run
    over another range partitions its rows otherwise) differ in their last bits."""
    if _is_float(a) and _is_float(b):
        return bool(a == b or math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9) or (a != a and b != b))
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


def compare(spark: SparkSession, soak: Path, reference: Path) -> dict[str, dict[str, Any]]:
    result = {}
    for dataset in COMPARED:
        ours, theirs = rows_by_day(spark, soak, dataset), rows_by_day(spark, reference, dataset)
        both = sorted(set(ours) & set(theirs))
        differing = [day for day in both if not _same(ours[day], theirs[day])]
        result[dataset] = {
            "partitions": len(theirs),
            "lost": sorted(set(theirs) - set(ours)),
            "fabricated": sorted(set(ours) - set(theirs)),
            "partial": [day for day in differing if len(ours[day]) < len(theirs[day])],
            "differing": differing,
        }
    return result


def services(env: dict[str, str], port: int, logs: Path, stack: ExitStack) -> None:
    commands = {
        "webserver": [
            *(str(BIN / "dagster-webserver"), "-w", "workspace.yaml"),
            *("-h", "127.0.0.1", "-p", str(port)),
        ],
        "daemon": [str(BIN / "dagster-daemon"), "run", "-w", "workspace.yaml"],
    }
    for name, command in commands.items():
        handle = stack.enter_context((logs / f"{name}.log").open("wb"))
        process = subprocess.Popen(
            command, cwd=REPO_ROOT, env=env, stdout=handle, stderr=subprocess.STDOUT
        )

        def stop(process: subprocess.Popen[bytes] = process) -> None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()

        stack.callback(stop)
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        try:
            if "data" in graphql(port, "{ version }"):
                return
        except OSError:
            pass
        time.sleep(2)
    raise SystemExit("the webserver did not answer in 180 s")


def produce(
    landing_dir: Path, fleet: SimulatedFleet, rng: random.Random, port: int, instance_dir: str
) -> dict[str, Any]:
    later = [day for day in fleet.days if day >= CUTOFF]
    late = later[len(later) // 2]
    truncated = later[1]
    january_fix, later_fix = date(2015, 1, 20), later[-2]
    order = [day for day in later if day != late]
    # Out of order: neighbours swapped at random.
    for i in range(0, len(order) - 1, 2):
        if rng.random() < 0.6:
            order[i], order[i + 1] = order[i + 1], order[i]
    stop, killed = threading.Event(), []  # type: ignore[var-annotated]
    killer = threading.Thread(target=kill_one_worker, args=(instance_dir, stop, killed))
    killer.start()
    events = []
    backfills: list[str] = []
    for position, day in enumerate(order):
        if day == truncated:
            land_truncated(landing_dir, day, fleet)
            events.append(f"{day} truncated")
        else:
            write_landing(fleet, landing_dir, [day])
            events.append(f"{day} landed")
        if position == 2:
            backfills = start_backfills(port)
            events.append(f"backfills {backfills}")
        if position == 3:
            landing.write_day(
                landing_dir,
                january_fix,
                corrected(fleet.day_tables(january_fix), "volt"),
                fleet.fleet,
            )
            events.append(f"{january_fix} corrected")
        time.sleep(rng.uniform(2, 15))
    write_landing(fleet, landing_dir, [late])
    events.append(f"{late} landed late")
    time.sleep(10)
    landing.write_day(
        landing_dir, later_fix, corrected(fleet.day_tables(later_fix), "pressure"), fleet.fleet
    )
    events.append(f"{later_fix} corrected")
    time.sleep(20)
    write_landing(fleet, landing_dir, [truncated])
    events.append(f"{truncated} landed whole")
    stop.set()
    killer.join()
    return {"events": events, "killed_runs": killed, "backfills": backfills}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--machines", type=int, default=5)
    parser.add_argument("--days", type=int, default=42)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--keep", type=Path, required=True, help="a new folder for both homes")
    parser.add_argument("--storage", choices=("postgres", "sqlite"), default="postgres")
    parser.add_argument("--quiet", type=float, default=60, help="idle seconds that end it")
    parser.add_argument("--timeout", type=float, default=3600)
    args = parser.parse_args(argv)
    if args.days <= 33:
        raise SystemExit("--days must reach past February 2 (January is the history)")
    args.keep.mkdir(parents=True, exist_ok=False)
    soak, reference = args.keep / "soak", args.keep / "reference"
    landing_dir = soak / "landing"
    fleet = simulate(FleetSpec(machines=args.machines, start=START, days=args.days, seed=args.seed))
    rng = random.Random(args.seed)
    started = time.monotonic()
    with ExitStack() as stack:
        env = home_env(soak, landing_dir, args)
        if args.storage == "postgres":
            env["PDM_DAGSTER_POSTGRES_URL"] = stack.enter_context(local_postgres())
        os.environ.update({k: v for k, v in env.items() if k == "PDM_DAGSTER_POSTGRES_URL"})
        ensure_instance_yaml(soak / "dagster", postgres=args.storage == "postgres")
        log("landing and ingesting January, training February's model")
        prepare(env, fleet, landing_dir)
        url = spark_server.start(soak, port=free_port())
        stack.callback(spark_server.stop, soak)
        service_env = {**env, "PDM_SPARK_MASTER": url, **spark_server.client_environment(soak)}
        port = free_port()
        services(service_env, port, args.keep, stack)
        log(f"webserver on http://127.0.0.1:{port}; producing")
        produced = produce(landing_dir, fleet, rng, port, env["DAGSTER_HOME"])
        log("waiting for the daemon to be idle")
        idle = wait_idle(env["DAGSTER_HOME"], args.quiet, args.timeout)
        summary = run_summary(env["DAGSTER_HOME"])
    log("the reference: the final landing files in one run")
    reference_env = home_env(reference, landing_dir, args)
    reference_env["PDM_MLFLOW_TRACKING_URI"] = f"sqlite:///{soak / 'mlflow' / 'mlflow.db'}"
    last = fleet.days[-1].isoformat()
    with environment(reference_env) as defs, dg.DagsterInstance.ephemeral() as instance:
        run(
            defs,
            instance,
            INGEST_JOB,
            tags=dict(zip(RANGE, (START.isoformat(), last), strict=True)),
        )
        run(
            defs,
            instance,
            SCORE_JOB,
            tags=dict(zip(RANGE, (CUTOFF.isoformat(), last), strict=True)),
        )
    spark = SparkResource(master="local[2]").get_session()
    differences = compare(spark, soak, reference)
    totals = {
        kind: sum(len(item[kind]) for item in differences.values())
        for kind in ("lost", "fabricated", "partial", "differing")
    }
    report = {
        "machines": args.machines,
        "days": args.days,
        "seed": args.seed,
        "storage": args.storage,
        "idle": idle,
        "days_landed": len(fleet.days),
        **produced,
        **summary,
        "partitions_stuck": totals["lost"],
        **totals,
        "per_asset": differences,
        "seconds": round(time.monotonic() - started, 1),
    }
    write_result(f"soak-{args.storage}-{args.machines}x{args.days}-seed{args.seed}.json", report)
    # Runs may fail for good (the truncated day's, until it lands whole): what counts is that
    # no partition is lost, made up, partial or different once the daemon is idle.
    return 0 if idle and not any(totals.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
