"""What plain Spark costs on a fleet's landing files, with no Dagster, checks or metadata.

The floor under `graph_benchmark.py`'s ratios to the Polars yardstick: in one warm local Spark
session (the project's settings), on the landing folder a graph benchmark left behind
(`--keep`), it times with Spark alone, median of `--repeats` after one unmeasured warm-up:

- `features_and_labels`: the landing CSVs read with explicit schemas, `features.compute` and
  `labels.compute` run on them, every row computed and dropped (Spark's `noop` sink), the
  nearest Spark comes to what the yardstick does;
- `features_and_labels_written`: the same, both tables written as parquet by date;
- `ingest`: the five tables read from CSV and written as parquet by date, then features and
  labels from those files written the same way: the ingest run's work without validation,
  quarantine, lookback checks, metadata or Dagster steps.

The yardstick is timed in the same run. The first (cold) pass of each is reported apart.

    .venv/bin/python benchmarks/spark_floor.py --work /tmp/gb/d1000x30 --days 30

Writes benchmarks/results/spark-floor-<machines>x<days>.json and prints it.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from polars_yardstick import day_files
from results_file import write_result

START = date(2015, 1, 1)
EVENT = "datetime timestamp, machineID int"
SCHEMAS = {
    "telemetry": f"{EVENT}, volt double, rotate double, pressure double, vibration double",
    "errors": f"{EVENT}, errorID string",
    "maint": f"{EVENT}, comp string",
    "failures": f"{EVENT}, failure string",
}


def read_landing(spark: Any, landing: Path, end: date) -> dict[str, Any]:
    """The five tables as the graph's raw tables name them, straight from the CSVs."""
    from pyspark.sql import functions as F

    def csv(table: str, files: list[str]) -> Any:
        frame = spark.read.csv(files, header=True, schema=SCHEMAS[table])
        return frame.withColumnRenamed("machineID", "machine_id")

    def number(column: str, prefix: str) -> Any:
        return F.regexp_replace(column, prefix, "").cast("int")

    maint_files = [
        str(landing / "history" / "maint.csv"),
        *day_files(landing, "maint", START, end),
    ]
    failure_end = end + timedelta(days=8)
    return {
        "telemetry": csv("telemetry", day_files(landing, "telemetry", START, end)),
        "errors": csv("errors", day_files(landing, "errors", START, end)).select(
            "machine_id", "datetime", number("errorID", "error").alias("error_id")
        ),
        "maintenance": csv("maint", maint_files).select(
            "machine_id", "datetime", number("comp", "comp").alias("component")
        ),
        "failures": csv("failures", day_files(landing, "failures", START, failure_end)).select(
            "machine_id", "datetime", number("failure", "comp").alias("component")
        ),
        "machines": spark.read.csv(
            str(landing / "machines.csv"),
            header=True,
            schema="machineID int, model string, age int",
        ).withColumnRenamed("machineID", "machine_id"),
    }


def features_and_labels(tables: dict[str, Any], end: date) -> tuple[Any, Any]:
    from pdm_assets.core import features, labels
    from pdm_assets.core.timewindow import midnight

    rows = features.compute(
        tables["telemetry"],
        tables["errors"],
        tables["maintenance"],
        tables["failures"],
        tables["machines"],
        midnight(START),
        midnight(end),
    )
    horizon_hours = 7 * 24
    known_until = midnight(end + timedelta(days=7))
    label_rows = labels.compute(
        rows.select("machine_id", "datetime"), tables["failures"], horizon_hours, known_until
    )
    return rows, label_rows


def write_features_and_labels(rows: Any, label_rows: Any, folder: Path) -> None:
    rows.write.mode("overwrite").partitionBy("date").parquet(str(folder / "features"))
    label_rows.write.mode("overwrite").partitionBy("date").parquet(str(folder / "labels"))


def timed(action: Callable[[], None], repeats: int) -> dict[str, Any]:
    began = time.perf_counter()
    action()
    cold = time.perf_counter() - began
    seconds = []
    for _ in range(repeats):
        began = time.perf_counter()
        action()
        seconds.append(time.perf_counter() - began)
    return {
        "seconds_median": round(statistics.median(seconds), 2),
        "seconds": [round(s, 2) for s in seconds],
        "first_pass_seconds": round(cold, 2),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, required=True, help="a graph benchmark's --keep")
    parser.add_argument("--days", type=int, required=True, help="days from 2015-01-01")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    environment = json.loads((args.work / "environment.json").read_text())
    os.environ.update(environment)
    landing = Path(environment["PDM_HOME"]) / "landing"
    end = START + timedelta(days=args.days)

    import polars_yardstick

    from pdm_assets.adapters.spark import SparkResource
    from pdm_assets.settings import load_settings

    settings = load_settings()
    spark = SparkResource(master=settings.spark_master, conf=settings.spark_conf).get_session()
    scratch = Path(tempfile.mkdtemp(prefix="pdm-spark-floor-"))

    def yardstick() -> None:
        polars_yardstick.compute(landing, START, end)

    def compute_only() -> None:
        for frame in features_and_labels(read_landing(spark, landing, end), end):
            frame.write.format("noop").mode("overwrite").save()

    def written() -> None:
        rows, label_rows = features_and_labels(read_landing(spark, landing, end), end)
        write_features_and_labels(rows, label_rows, scratch)

    def ingest() -> None:
        from pyspark.sql import functions as F

        raw = {}
        for name, frame in read_landing(spark, landing, end).items():
            path = str(scratch / "raw" / name)
            if name == "machines":
                frame.write.mode("overwrite").parquet(path)
            else:
                dated = frame.withColumn("date", F.to_date("datetime"))
                dated.write.mode("overwrite").partitionBy("date").parquet(path)
            raw[name] = spark.read.parquet(path)
        write_features_and_labels(*features_and_labels(raw, end), scratch)

    report: dict[str, Any] = {
        "fleet": {"machines": int(environment["PDM_SIM_MACHINES"]), "days": args.days},
        "work": str(args.work),
        "cpus": os.cpu_count(),
        "load_average_start": [round(x, 2) for x in os.getloadavg()],
        "yardstick": timed(yardstick, args.repeats),
        "spark": {
            "features_and_labels": timed(compute_only, args.repeats),
            "features_and_labels_written": timed(written, args.repeats),
            "ingest": timed(ingest, args.repeats),
        },
    }
    report["load_average_end"] = [round(x, 2) for x in os.getloadavg()]
    yardstick_seconds = report["yardstick"]["seconds_median"]
    report["ratios_to_yardstick"] = {
        name: round(figures["seconds_median"] / yardstick_seconds, 1)
        for name, figures in report["spark"].items()
    }
    fleet = report["fleet"]
    write_result(f"spark-floor-{fleet['machines']}x{fleet['days']}.json", report)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
