"""The end-to-end demo: simulate a fleet, ingest, build features and labels, train, score, report.

Runs the same jobs a user launches from the Dagster UI, against the Dagster instance under the
project home, so `dagster dev` shows every materialisation afterwards.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import dagster as dg
from pyspark.sql import DataFrame, Row
from pyspark.sql import functions as F

from pdm_assets.adapters.spark import JavaNotFoundError, SparkResource, ensure_java
from pdm_assets.adapters.warehouse import open_store
from pdm_assets.core import training
from pdm_assets.core.fleet import DEFAULT_FLEET, Fleet
from pdm_assets.core.timewindow import Window
from pdm_assets.definitions import build_definitions
from pdm_assets.defs.instance_config import ensure_instance_yaml
from pdm_assets.defs.jobs import INGEST_JOB, SCORE_JOB, TRAIN_JOB
from pdm_assets.dev.progress import Progress
from pdm_assets.settings import Settings, load_settings
from pdm_assets.simulator.fleet_simulator import FleetSpec, simulate, write_landing

RANGE_START_TAG = "dagster/asset_partition_range_start"
RANGE_END_TAG = "dagster/asset_partition_range_end"


@dataclass(frozen=True)
class DemoPlan:
    first_day: date
    last_day: date
    cutoff: date

    @property
    def scored_days(self) -> Window:
        return Window.of_days(self.cutoff, self.last_day + timedelta(days=1))


def plan(settings: Settings, cutoff: date | None) -> DemoPlan:
    first = settings.partitions_start
    last = settings.partitions_end - timedelta(days=1)
    if settings.data_source == "simulator":
        # The simulated days; a real source covers the partitions the user set.
        last = min(first + timedelta(days=settings.sim_days - 1), last)
    chosen = cutoff or last.replace(day=1)
    if chosen.day != 1 or not first < chosen <= last:
        raise SystemExit(
            f"the cutoff must be the first day of a month inside {first}..{last}, got {chosen}"
        )
    return DemoPlan(first_day=first, last_day=last, cutoff=chosen)


def _run(
    defs: dg.Definitions,
    job: str,
    instance: dg.DagsterInstance,
    progress: Progress,
    tags: dict[str, str],
    partition_key: str | None = None,
    op_config: dict[str, dict[str, object]] | None = None,
) -> float:
    """Run a job in this process, its steps reported by `progress`; the run's seconds."""
    run_config: dict[str, object] = {"loggers": {"progress": {}}}
    if op_config:
        run_config["ops"] = {op: {"config": config} for op, config in op_config.items()}
    what = partition_key or f"{tags.get(RANGE_START_TAG)} .. {tags.get(RANGE_END_TAG)}"
    progress.say(f"{job} ({what}) ...")
    started = time.perf_counter()
    result = (
        defs.resolve_job_def(job)
        .with_logger_defs({"progress": progress.logger()})
        .execute_in_process(
            instance=instance,
            tags=tags,
            partition_key=partition_key,
            raise_on_error=False,
            run_config=run_config,
        )
    )
    seconds = time.perf_counter() - started
    if not result.success:
        failure = next((event for event in result.all_events if event.is_step_failure), None)
        error = failure.step_failure_data.error if failure else None
        message = error.message if error else "see the Dagster UI"
        raise SystemExit(f"{job} failed (run {result.run_id}): {message}")
    progress.say(f"{job} done in {seconds:.1f} s (run {result.run_id})")
    return seconds


def steps_of(defs: dg.Definitions, job: str) -> int:
    return len(defs.resolve_job_def(job).graph.nodes)


def _range_tags(first: date, last: date) -> dict[str, str]:
    return {RANGE_START_TAG: first.isoformat(), RANGE_END_TAG: last.isoformat()}


def holdout_report(
    scores: DataFrame, labels: DataFrame, fleet: Fleet = DEFAULT_FLEET
) -> tuple[dict[str, dict[str, float]], int]:
    """Per-component metrics of the scores against the labels known so far, and their rows."""
    known = labels.where(~F.col("censored")).select("machine_id", "datetime", "label")
    joined = scores.join(known, ["machine_id", "datetime"], "inner")
    return training.component_metrics(joined, fleet=fleet), joined.count()


def worklist_lines(rows: list[Row], day: date, top: int = 10) -> list[str]:
    """The top of a day's work list, as the planner would read it."""
    lines = [f"work list of {day} ({len(rows)} open alerts; the whole list is its CSV):"]
    if not rows:
        return [*lines, "  no open alerts"]
    for row in rows[:top]:
        since = row["days_since_replacement"]
        lines.append(
            f"  {row['rank']:>2}. machine {row['machine_id']:>4} {row['component']:<8} "
            f"P {row['probability']:.3f} over its cut {row['threshold']:.3f} "
            f"(x{row['urgency']:.2f}), held {row['held_observations']} observations, "
            + ("never replaced" if since is None else f"replaced {since:.0f} days ago")
        )
        reasons = [row[f"reason_{n}"] for n in (1, 2, 3) if row[f"reason_{n}"]]
        lines.append("      because " + ("; ".join(reasons) or "(no exact reasons)"))
    return lines


def format_report(
    plan: DemoPlan,
    timings: dict[str, float],
    metrics: dict[str, dict[str, float]],
    worklist: list[str],
    holdout_rows: int,
    settings: Settings,
    progress_lines: list[str] | None = None,
) -> str:
    lines = [
        "pdm_assets demo",
        f"  fleet: {settings.sim_machines} machines ({settings.fleet.name}), {plan.first_day} .. "
        f"{plan.last_day}",
        f"  model cutoff: {plan.cutoff}; scored {plan.cutoff} .. {plan.last_day}",
        "",
        "progress:",
        *(f"  {line}" for line in progress_lines or []),
        "",
        "timings (s): " + ", ".join(f"{step} {seconds:.1f}" for step, seconds in timings.items()),
        "",
        f"holdout (scored days with known labels, {holdout_rows} rows):",
        f"  {'component':<10} {'precision':>9} {'recall':>7} {'F1':>6} {'PR-AUC':>7} "
        f"{'support':>8}",
    ]
    for component, values in metrics.items():
        lines.append(
            f"  {component:<10} {values['precision']:>9.3f} {values['recall']:>7.3f} "
            f"{values['f1']:>6.3f} {values['pr_auc']:>7.3f} {int(values['support']):>8}"
        )
    lines += ["", *worklist]
    lines += [
        "",
        f"outputs: warehouse {settings.warehouse}",
        f"         work lists {settings.worklists}",
        f"         MLflow    {settings.mlflow_tracking_uri}",
        f"         Dagster   {settings.dagster_home}",
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--cutoff",
        type=date.fromisoformat,
        default=None,
        help="training cutoff, the first day of a month (default: the last month)",
    )
    parser.add_argument(
        "--min-pr-auc-lift",
        type=float,
        default=None,
        help="the model gate's floor (default: ModelConfig's); small fleets need a lower one",
    )
    args = parser.parse_args(argv)

    settings = load_settings()
    if settings.spark_master.startswith("local"):
        try:
            ensure_java()
        except JavaNotFoundError as error:
            sys.stderr.write(f"pdm-demo: {error}\n")
            return 2
    os.environ["DAGSTER_HOME"] = str(settings.dagster_home)
    # The defaults (sqlite under the folder) plus run monitoring, without Dagster's notice.
    ensure_instance_yaml(settings.dagster_home, postgres=settings.dagster_postgres)
    demo = plan(settings, args.cutoff)
    defs = build_definitions(settings)
    timings: dict[str, float] = {}

    simulating = settings.data_source == "simulator"
    progress = Progress(
        total=int(simulating)
        + sum(steps_of(defs, job) for job in (INGEST_JOB, TRAIN_JOB, SCORE_JOB))
        + 1
    )
    with dg.DagsterInstance.get() as instance:
        if simulating:
            progress.start("simulate the fleet and land its days")
            started = time.perf_counter()
            spec = FleetSpec(
                settings.sim_machines,
                settings.partitions_start,
                settings.sim_days,
                settings.sim_seed,
            )
            days = write_landing(simulate(spec, settings.fleet), Path(settings.landing))
            timings["simulate"] = time.perf_counter() - started
            progress.end(
                "simulate the fleet and land its days",
                f": {settings.sim_machines} machines, {len(days)} days in {settings.landing}",
            )

        timings["ingest+features+labels"] = _run(
            defs, INGEST_JOB, instance, progress, _range_tags(demo.first_day, demo.last_day)
        )
        model_config = (
            {} if args.min_pr_auc_lift is None else {"min_pr_auc_lift": args.min_pr_auc_lift}
        )
        timings["train"] = _run(
            defs,
            TRAIN_JOB,
            instance,
            progress,
            {},
            partition_key=demo.cutoff.isoformat(),
            op_config={"failure_model": model_config},
        )
        timings["score"] = _run(
            defs, SCORE_JOB, instance, progress, _range_tags(demo.cutoff, demo.last_day)
        )

    progress.start("holdout report")
    spark = SparkResource(master=settings.spark_master).get_session()
    warehouse = open_store(settings.warehouse, settings.warehouse_format)
    scores = warehouse.read_window(spark, "machine_scores", demo.scored_days)
    labels = warehouse.read_window(spark, "failure_labels", demo.scored_days)
    metrics, holdout_rows = holdout_report(scores, labels, settings.fleet)
    last_day = Window.of_days(demo.last_day, demo.last_day + timedelta(days=1))
    listed = warehouse.read_window(spark, "maintenance_worklist", last_day).orderBy("rank")
    worklist = worklist_lines(listed.collect(), demo.last_day)
    progress.end("holdout report", f": {holdout_rows:,} scored rows with known labels")
    report = format_report(demo, timings, metrics, worklist, holdout_rows, settings, progress.lines)
    report_path = settings.home / "reports" / "demo.txt"
    report_path.parent.mkdir(parents=True, exist_ok=True)
    report_path.write_text(report)
    sys.stdout.write(report + f"\n(report saved to {report_path})\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
