"""A fleet of any shape through the whole graph, from a CSV folder and its fleet description, and
the quality of its alerts.

With nothing but the settings a user sets (PDM_FLEET, PDM_DATA_SOURCE=csv, PDM_CSV_DIR and the
partitions), in one process and a fresh home: `ingest_days_job` over every day, then
`train_model_job` for each month from `--first-cutoff` on (the model's defaults), then
`score_days_job` over the scored days and `outcomes_job` over the last `--outcomes-days` (30)
whose horizon has passed.
It reports per month whether the model passed its gate, that every feature row was scored, and:

* at each machine's last scored observation, F1 of "fails within the horizon" (an alert, i.e.
  `alert_component` > 0, against a failure in (t, t + H]), the metric run-to-failure benchmarks
  publish;
* over every scored observation with a known label: pooled precision, recall, F1, alert rate.

    .venv/bin/python benchmarks/fleet_quality.py --fleet /tmp/engines/fleet.toml \\
        --csv-dir /tmp/engines --start 2015-01-01 --end 2016-04-01 --first-cutoff 2015-05-01

Writes benchmarks/results/fleet-quality-<fleet name>.json and prints it.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from results_file import write_result

RANGE_START = "dagster/asset_partition_range_start"
RANGE_END = "dagster/asset_partition_range_end"


def _months(first: date, last: date) -> list[date]:
    months, month = [], first.replace(day=1)
    while month <= last:
        months.append(month)
        month = (month.replace(day=28) + timedelta(days=4)).replace(day=1)
    return months


def _f1(tp: int, fp: int, fn: int) -> dict[str, float]:
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1": f1, "tp": tp, "fp": fp, "fn": fn}


def run(args: argparse.Namespace) -> dict[str, Any]:
    home = Path(args.work or tempfile.mkdtemp(prefix="pdm-fleet-quality-"))
    os.environ.update(
        {
            "PDM_HOME": str(home),
            "PDM_FLEET": str(args.fleet.resolve()),
            "PDM_DATA_SOURCE": "csv",
            "PDM_CSV_DIR": str(args.csv_dir.resolve()),
            "PDM_PARTITIONS_START": args.start.isoformat(),
            "PDM_PARTITIONS_END": args.end.isoformat(),
        }
    )
    # Imported after the settings are in the environment they read.
    import dagster as dg
    from pyspark.sql import functions as F

    from pdm_assets.adapters.spark import SparkResource
    from pdm_assets.adapters.warehouse import open_store
    from pdm_assets.core.timewindow import Window
    from pdm_assets.definitions import build_definitions
    from pdm_assets.defs.jobs import INGEST_JOB, OUTCOMES_JOB, SCORE_JOB, TRAIN_JOB
    from pdm_assets.settings import load_settings

    settings = load_settings()
    fleet = settings.fleet
    defs = build_definitions(settings)
    last_day = args.end - timedelta(days=1)
    timings: dict[str, float] = {}
    gates: dict[str, Any] = {}
    with dg.DagsterInstance.ephemeral() as instance:

        def job(name: str, **kwargs: Any) -> dg.ExecuteInProcessResult:
            began = time.perf_counter()
            result = defs.resolve_job_def(name).execute_in_process(
                instance=instance, raise_on_error=False, **kwargs
            )
            timings[f"{name} {kwargs.get('partition_key') or kwargs.get('tags')}"] = round(
                time.perf_counter() - began, 1
            )
            return result

        def days(first: date, last: date) -> dict[str, Any]:
            return {"tags": {RANGE_START: first.isoformat(), RANGE_END: last.isoformat()}}

        assert job(INGEST_JOB, **days(args.start, last_day)).success, "ingest failed"
        for month in _months(args.first_cutoff, last_day):
            # A model that fails its blocking gate fails its run: read the verdict either way.
            result = job(TRAIN_JOB, partition_key=month.isoformat())
            checks = result.get_asset_check_evaluations()
            gates[month.isoformat()] = (
                {"passed": checks[0].passed, **{k: v.value for k, v in checks[0].metadata.items()}}
                if checks
                else {"passed": False, "error": "training failed before its gate"}
            )
        assert job(SCORE_JOB, **days(args.first_cutoff, last_day)).success, "scoring failed"
        settled = last_day - timedelta(days=fleet.horizon_days)
        # model_outcomes measures day by day (a few Spark jobs per day): the last settled days.
        first_settled = max(args.first_cutoff, settled - timedelta(days=args.outcomes_days - 1))
        if settled >= first_settled:
            assert job(OUTCOMES_JOB, **days(first_settled, settled)).success

    spark = SparkResource(master=settings.spark_master).get_session()
    store = open_store(settings.warehouse, settings.warehouse_format)
    scored_days = Window.of_days(args.first_cutoff, args.end)
    scores = store.read_window(spark, "machine_scores", scored_days)
    labels = store.read_window(spark, "failure_labels", scored_days)
    features = store.read_window(spark, "machine_features", scored_days)
    joined = scores.join(
        labels.select("machine_id", "datetime", "label", "censored"), ["machine_id", "datetime"]
    )
    known = joined.where(~F.col("censored"))
    alert, fails = F.col("alert_component") > 0, F.col("label") > 0

    def confusion(frame: Any) -> dict[str, float]:
        row = frame.agg(
            F.sum((alert & fails).cast("int")).alias("tp"),
            F.sum((alert & ~fails).cast("int")).alias("fp"),
            F.sum((~alert & fails).cast("int")).alias("fn"),
        ).first()
        return _f1(int(row["tp"] or 0), int(row["fp"] or 0), int(row["fn"] or 0))

    last_times = joined.groupBy("machine_id").agg(F.max("datetime").alias("datetime"))
    at_last = joined.join(last_times, ["machine_id", "datetime"])
    return {
        "fleet": f"{fleet.name} ({fleet.fingerprint})",
        "csv_dir": str(args.csv_dir),
        "partitions": f"{args.start} .. {last_day}",
        "scored": f"{args.first_cutoff} .. {last_day}",
        "gates": gates,
        "feature_rows": features.count(),
        "scored_rows": scores.count(),
        "unscored_feature_rows": features.join(
            scores, ["machine_id", "datetime"], "left_anti"
        ).count(),
        "at_last_reading": {
            "machines": at_last.count(),
            "censored": at_last.where(F.col("censored")).count(),
            **confusion(at_last.where(~F.col("censored"))),
        },
        "every_observation": {
            "rows_with_known_labels": known.count(),
            "alert_rate": known.where(alert).count() / max(known.count(), 1),
            **confusion(known),
        },
        "seconds": timings,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--fleet", type=Path, required=True, help="the fleet description")
    parser.add_argument("--csv-dir", type=Path, required=True, help="the PdM_*.csv folder")
    parser.add_argument("--start", type=date.fromisoformat, required=True)
    parser.add_argument("--end", type=date.fromisoformat, required=True, help="exclusive")
    parser.add_argument("--first-cutoff", type=date.fromisoformat, required=True)
    parser.add_argument("--work", type=Path, default=None, help="project home (default: temp)")
    parser.add_argument(
        "--outcomes-days", type=int, default=30, help="outcomes_job over the last N settled days"
    )
    args = parser.parse_args()
    report = run(args)
    name = report["fleet"].split(" ")[0]
    write_result(f"fleet-quality-{name}.json", report)


if __name__ == "__main__":
    main()
