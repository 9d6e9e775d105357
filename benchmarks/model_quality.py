"""Model quality on a simulated fleet: pdm_assets against the original notebooks' method.

Simulates a fleet, trains pdm_assets' model at a cutoff and scores the month after it, runs the
yardstick `seed_method.py` (the notebooks' method) on the same files, and evaluates both with
the yardstick `evaluate_scores.py` against leak-free labels, on the same rows. The yardsticks
are not part of this repository: `--yardsticks DIR` names the folder that holds
`landing_to_pdm.py`, `seed_method.py` and `evaluate_scores.py`, and they run in place there.

    python benchmarks/model_quality.py --yardsticks DIR --machines 300 --days 240 --seed 1 \
        --cutoff 2015-08-01

Writes benchmarks/results/model_quality-<machines>x<days>-seed<seed>.json and prints it.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

from results_file import write_result

YARDSTICK_SCRIPTS = ("landing_to_pdm.py", "seed_method.py", "evaluate_scores.py")
RANGE_START = "dagster/asset_partition_range_start"
RANGE_END = "dagster/asset_partition_range_end"
# The gate is not what is measured here, and a rerun's model must be the one scored.
UNGATED = {"min_pr_auc_lift": 0.0, "champion_tolerance": 1.0}


def _next_month(day: date) -> date:
    return (day.replace(day=28) + timedelta(days=4)).replace(day=1)


def _yardsticks_dir(value: str) -> Path:
    folder = Path(value).resolve()
    missing = [script for script in YARDSTICK_SCRIPTS if not (folder / script).is_file()]
    if missing:
        raise argparse.ArgumentTypeError(f"{folder} lacks {', '.join(missing)}")
    return folder


def _yardstick(yardsticks: Path, script: str, *args: str) -> dict[str, object]:
    completed = subprocess.run(
        [sys.executable, script, *args],
        cwd=yardsticks,
        capture_output=True,
        text=True,
        check=False,
    )
    if completed.returncode != 0:
        raise SystemExit(f"{script} failed:\n{completed.stderr[-3000:]}")
    # The evaluators end with one JSON line; the converter prints what it wrote.
    lines = [line for line in completed.stdout.splitlines() if line.startswith("{")]
    return json.loads(lines[-1]) if lines else {}


def run_pdm_assets(
    home: Path, args: argparse.Namespace, cutoff: date, last: date, ingest: bool
) -> Path:
    """Ingest every day up to the end of the scored month (unless `ingest` is False: the
    warehouse already holds them), train at the cutoff, score the month after it; the scores as
    Parquet."""
    os.environ.update(
        {
            "PDM_HOME": str(home),
            "PDM_SIM_MACHINES": str(args.machines),
            "PDM_SIM_DAYS": str(args.days),
            "PDM_SIM_SEED": str(args.seed),
            "PDM_PARTITIONS_END": (last + timedelta(days=1)).isoformat(),
        }
    )
    import dagster as dg

    from pdm_assets.definitions import build_definitions
    from pdm_assets.jobs import INGEST_JOB, SCORE_JOB, TRAIN_JOB
    from pdm_assets.settings import load_settings
    from pdm_assets.spark import SparkResource
    from pdm_assets.timewindow import Window
    from pdm_assets.warehouse import open_store

    settings = load_settings()
    defs = build_definitions(settings)
    scored_end = min(_next_month(cutoff), last + timedelta(days=1))
    # Days after the scored month are read only by the evaluator, from the CSV failures.
    ingest_last = (scored_end - timedelta(days=1)).isoformat()
    ingest_run = (INGEST_JOB, {"tags": {RANGE_START: "2015-01-01", RANGE_END: ingest_last}})
    runs = [
        *([ingest_run] if ingest else []),
        (
            TRAIN_JOB,
            {
                "partition_key": cutoff.isoformat(),
                "run_config": {"ops": {"failure_model": {"config": {**UNGATED, **args.model}}}},
            },
        ),
        (
            SCORE_JOB,
            {
                "tags": {
                    RANGE_START: cutoff.isoformat(),
                    RANGE_END: (scored_end - timedelta(days=1)).isoformat(),
                }
            },
        ),
    ]
    with dg.DagsterInstance.ephemeral() as instance:
        for job, options in runs:
            result = defs.resolve_job_def(job).execute_in_process(instance=instance, **options)
            if not result.success:
                raise SystemExit(f"pdm_assets {job} failed")
    spark = SparkResource(master=settings.spark_master).get_session()
    store = open_store(settings.warehouse, settings.warehouse_format)
    scores = store.read_window(spark, "machine_scores", Window.of_days(cutoff, scored_end))
    path = home / "scores.parquet"
    scores.select("machine_id", "datetime", "alert_component").toPandas().to_parquet(path)
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--yardsticks",
        type=_yardsticks_dir,
        required=True,
        metavar="DIR",
        help="folder holding " + ", ".join(YARDSTICK_SCRIPTS) + "; they run in place there",
    )
    parser.add_argument("--machines", type=int, default=300)
    parser.add_argument("--days", type=int, default=240, help="simulated days from 2015-01-01")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--cutoff", type=date.fromisoformat, required=True)
    parser.add_argument("--seed-trees", type=int, default=100, help="trees of seed_method.py")
    parser.add_argument("--keep", type=Path, help="work folder to keep (default: a temp one)")
    parser.add_argument(
        "--reuse",
        action="store_true",
        help="with --keep: reuse the fleet, the ingested warehouse and the yardstick's result "
        "a previous run left there; train and score pdm_assets again",
    )
    parser.add_argument(
        "--model",
        type=json.loads,
        default={},
        help='ModelConfig overrides as JSON, e.g. \'{"classifier": "gbt_one_vs_rest"}\'',
    )
    parser.add_argument("--label", default="", help="suffix of the result file's name")
    args = parser.parse_args(argv)
    if args.reuse and not args.keep:
        raise SystemExit("--reuse needs --keep DIR")
    start = date(2015, 1, 1)
    last = start + timedelta(days=args.days - 1)
    if not start < args.cutoff <= last or args.cutoff.day != 1:
        raise SystemExit(f"--cutoff must be the first of a month in {start + timedelta(1)}..{last}")
    # Absolute: the yardsticks run with their own folder as working directory.
    work = (args.keep or Path(tempfile.mkdtemp(prefix="pdm-quality-"))).resolve()
    work.mkdir(parents=True, exist_ok=True)
    timings: dict[str, float] = {}

    from pdm_assets.simulator import FleetSpec, simulate, write_landing

    landing = work / "pdm" / "landing"
    csv_dir = work / "csv"
    reused = args.reuse and (csv_dir / "PdM_failures.csv").exists()
    if not reused:
        began = time.perf_counter()
        spec = FleetSpec(machines=args.machines, start=start, days=args.days, seed=args.seed)
        write_landing(simulate(spec), landing)
        _yardstick(args.yardsticks, "landing_to_pdm.py", str(landing), str(csv_dir))
        timings["simulate_and_convert"] = time.perf_counter() - began

    began = time.perf_counter()
    ours = run_pdm_assets(work / "pdm", args, args.cutoff, last, ingest=not reused)
    timings["pdm_assets_train_and_score" if reused else "pdm_assets"] = time.perf_counter() - began

    seed_result = work / "seed_method.json"
    if reused and seed_result.exists():
        seed_run = json.loads(seed_result.read_text())
    else:
        began = time.perf_counter()
        seed_run = _yardstick(
            args.yardsticks,
            "seed_method.py",
            str(csv_dir),
            str(work / "seed"),
            "--trees",
            str(args.seed_trees),
            "--train-end",
            (args.cutoff - timedelta(days=1)).isoformat(),
            "--test-start",
            args.cutoff.isoformat(),
        )
        seed_result.write_text(json.dumps(seed_run))
        timings["seed_method"] = time.perf_counter() - began

    scored_to = min(_next_month(args.cutoff), last + timedelta(days=1)).isoformat()
    common = [
        "--horizon-h",
        "168",
        "--data-end",
        f"{last + timedelta(days=1)} 00:00:00",
        "--from",
        args.cutoff.isoformat(),
        "--to",
        scored_to,
    ]
    failures = str(csv_dir / "PdM_failures.csv")
    evaluation = {
        "pdm_assets": _yardstick(
            args.yardsticks,
            "evaluate_scores.py",
            str(ours),
            failures,
            "--machine",
            "machine_id",
            "--time",
            "datetime",
            "--pred",
            "alert_component",
            *common,
        ),
        "seed_method": _yardstick(
            args.yardsticks,
            "evaluate_scores.py",
            str(work / "seed" / "scores"),
            failures,
            "--machine",
            "machineID",
            "--time",
            "dt_truncated",
            "--pred",
            "pred_label",
            *common,
        ),
    }
    report = {
        "fleet": {"machines": args.machines, "days": args.days, "seed": args.seed},
        "cutoff": args.cutoff.isoformat(),
        "model_config": {**UNGATED, **args.model},
        "scored": [args.cutoff.isoformat(), scored_to],
        "evaluation": evaluation,
        "macro_f1_gain": round(
            float(evaluation["pdm_assets"]["macro_f1"])  # type: ignore[arg-type]
            - float(evaluation["seed_method"]["macro_f1"]),  # type: ignore[arg-type]
            3,
        ),
        "seed_method_holdout": seed_run,
        "seconds": {name: round(value, 1) for name, value in timings.items()},
        "work": str(work),
    }
    suffix = f"-{args.label}" if args.label else ""
    write_result(f"model_quality-{args.machines}x{args.days}-seed{args.seed}{suffix}.json", report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
