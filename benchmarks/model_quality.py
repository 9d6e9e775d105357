"""Model quality: pdm_assets against the original notebooks' method, on the same rows.

Simulates a fleet (or reads a folder of the public PdM_*.csv[.gz] files with `--csv DIR`),
trains pdm_assets' model at a cutoff and scores the month after it, runs the yardstick
`seed_method.py` (the notebooks' method) on the same files, and evaluates both with the yardstick
`evaluate_scores.py` against leak-free labels, on the same rows. The yardsticks are not part of
this repository: `--yardsticks DIR` names the folder that holds `landing_to_pdm.py`,
`seed_method.py` and `evaluate_scores.py`, and they run in place there.

Besides each system's own alerts, both are measured at one alert volume: the notebooks'
method's alert rate on the evaluated rows. Each system's evaluated rows are ranked by its own
probability of a failure, the top rows at that rate alert with the most probable component,
and `evaluate_scores.py` scores that derived table (so the labels stay the yardstick's).

The model's quality gate is off unless `--gated`; a gated model that fails it scores nothing,
and the report says why. Each run empties the work folder's MLflow registry first, so the gate
judges this run's model alone and nothing scores with an earlier run's model.

    python benchmarks/model_quality.py --yardsticks DIR --machines 300 --days 240 --seed 1 \
        --cutoff 2015-08-01
    python benchmarks/model_quality.py --yardsticks DIR --csv DATA_DIR --cutoff 2015-03-01

Writes benchmarks/results/model_quality-<machines>x<days>-seed<seed>.json (with --csv:
model_quality-csv-<folder name>.json), prints it and a summary line.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

from results_file import write_result

YARDSTICK_SCRIPTS = ("landing_to_pdm.py", "seed_method.py", "evaluate_scores.py")
RANGE_START = "dagster/asset_partition_range_start"
RANGE_END = "dagster/asset_partition_range_end"
# The gate is not what is measured here, and a rerun's model must be the one scored; --gated
# keeps the model's own gate.
UNGATED = {"min_pr_auc_lift": 0.0, "champion_tolerance": 1.0}
START = date(2015, 1, 1)
HORIZON_H = 168
QUALITY_GATE = "quality_gate"
# Written once the warehouse holds every day up to the end of the scored month.
INGESTED = "ingested.json"
logger = logging.getLogger("model_quality")


def _next_month(day: date) -> date:
    return (day.replace(day=28) + timedelta(days=4)).replace(day=1)


def _yardsticks_dir(value: str) -> Path:
    folder = Path(value).resolve()
    missing = [script for script in YARDSTICK_SCRIPTS if not (folder / script).is_file()]
    if missing:
        raise argparse.ArgumentTypeError(f"{folder} lacks {', '.join(missing)}")
    return folder


def _public_file(folder: Path, table: str) -> Path:
    """PdM_<table>.csv or .csv.gz in `folder` (pdm_assets, seed_method.py and pandas read both)."""
    for suffix in (".csv", ".csv.gz"):
        candidate = folder / f"PdM_{table}{suffix}"
        if candidate.is_file():
            return candidate
    raise SystemExit(f"no PdM_{table}.csv or .csv.gz in {folder}")


def _csv_dir(value: str) -> Path:
    folder = Path(value).resolve()
    for table in ("telemetry", "errors", "maint", "failures", "machines"):
        try:
            _public_file(folder, table)
        except SystemExit as error:
            raise argparse.ArgumentTypeError(str(error)) from error
    return folder


def csv_span(folder: Path) -> tuple[date, date, int]:
    """First day, last whole day of hourly telemetry (as pdm_assets' CSV source counts it: a day
    cut short, like the public files' last at 05:00, is not whole) and machines of a folder of
    the public files."""
    import pandas as pd

    moments = pd.to_datetime(
        pd.read_csv(_public_file(folder, "telemetry"), usecols=["datetime"])["datetime"]
    )
    last_reading = moments.max().to_pydatetime()
    last_whole_day = (last_reading + timedelta(hours=1)).date() - timedelta(days=1)
    machines = len(pd.read_csv(_public_file(folder, "machines")))
    return moments.min().date(), last_whole_day, machines


def result_name(csv: Path | None, machines: int, days: int, seed: int, label: str = "") -> str:
    """The result file's name under benchmarks/results/ (alert_volume.py reads it back)."""
    suffix = f"-{label}" if label else ""
    if csv is not None:
        return f"model_quality-csv-{csv.name}{suffix}.json"
    return f"model_quality-{machines}x{days}-seed{seed}{suffix}.json"


def _yardstick(yardsticks: Path, script: str, *args: str) -> dict[str, Any]:
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


def _failure_messages(result: Any) -> str:
    return "; ".join(
        event.step_failure_data.error.message.strip()
        for event in result.get_step_failure_events()
        if event.step_failure_data.error is not None
    )


def _gate(result: Any) -> dict[str, Any] | None:
    """The quality gate's verdict in a training run: passed, reasons, PR-AUC, floor, version."""
    for evaluation in result.get_asset_check_evaluations():
        if evaluation.check_name == QUALITY_GATE:
            values = {name: value.value for name, value in evaluation.metadata.items()}
            # A version too few failures could judge passes with a WARN check: it is scored.
            usable = evaluation.passed or evaluation.severity.value == "WARN"
            return {"passed": bool(usable), **values}
    return None


def run_pdm_assets(
    home: Path,
    source: dict[str, str],
    cutoff: date,
    last: date,
    ingest: bool,
    model_config: dict[str, Any],
) -> dict[str, Any]:
    """Ingest every day up to the end of the scored month (unless `ingest` is False: the
    warehouse already holds them), train at the cutoff, score the month after it.

    The MLflow registry of `home` is emptied first, so the gate judges this run's model alone
    (no champion left by an earlier run in a kept folder) and nothing scores with an earlier
    run's model. Returns {"scores": Parquet path, "gate": ..., "model_version": ...}, or
    {"scores": None, "reason": ...} when the gate failed and nothing was scored."""
    os.environ.update(
        {
            "PDM_HOME": str(home),
            "PDM_PARTITIONS_END": (last + timedelta(days=1)).isoformat(),
            **source,
        }
    )
    for name in ("PDM_MLFLOW_TRACKING_URI", "PDM_MLFLOW_REGISTRY_URI"):
        os.environ.pop(name, None)
    if source["PDM_DATA_SOURCE"] != "csv":
        os.environ.pop("PDM_CSV_DIR", None)
    import dagster as dg

    from pdm_assets.adapters.spark import SparkResource
    from pdm_assets.adapters.warehouse import open_store
    from pdm_assets.core.timewindow import Window
    from pdm_assets.definitions import build_definitions
    from pdm_assets.defs.jobs import INGEST_JOB, SCORE_JOB, TRAIN_JOB
    from pdm_assets.settings import load_settings

    settings = load_settings()
    shutil.rmtree(home / "mlflow", ignore_errors=True)
    defs = build_definitions(settings)
    scored_end = min(_next_month(cutoff), last + timedelta(days=1))
    # Days after the scored month are read only by the evaluator, from the CSV failures.
    ingest_last = (scored_end - timedelta(days=1)).isoformat()
    train_options = {
        "partition_key": cutoff.isoformat(),
        "run_config": {"ops": {"failure_model": {"config": model_config}}},
    }
    score_options = {
        "tags": {
            RANGE_START: cutoff.isoformat(),
            RANGE_END: (scored_end - timedelta(days=1)).isoformat(),
        }
    }
    with dg.DagsterInstance.ephemeral() as instance:

        def execute(job: str, options: dict[str, Any]) -> Any:
            logger.info("pdm_assets: %s", job)
            return defs.resolve_job_def(job).execute_in_process(
                instance=instance, raise_on_error=False, **options
            )

        if ingest:
            result = execute(
                INGEST_JOB, {"tags": {RANGE_START: START.isoformat(), RANGE_END: ingest_last}}
            )
            if not result.success:
                raise SystemExit(f"pdm_assets {INGEST_JOB} failed: {_failure_messages(result)}")
            (home.parent / INGESTED).write_text(
                json.dumps({"through": ingest_last, **source}) + "\n"
            )
        result = execute(TRAIN_JOB, train_options)
        gate = _gate(result)
        if gate is not None and not gate["passed"]:
            reason = f"quality gate failed: {gate.get('reasons', '')}"
            logger.warning("pdm_assets: %s; nothing scored", reason)
            return {"scores": None, "reason": reason, "gate": gate}
        if not result.success:
            raise SystemExit(f"pdm_assets {TRAIN_JOB} failed: {_failure_messages(result)}")
        result = execute(SCORE_JOB, score_options)
        if not result.success:
            raise SystemExit(f"pdm_assets {SCORE_JOB} failed: {_failure_messages(result)}")
    spark = SparkResource(master=settings.spark_master).get_session()
    store = open_store(settings.warehouse, settings.warehouse_format)
    components = settings.fleet.component_probability_columns
    scores = store.read_window(spark, "machine_scores", Window.of_days(cutoff, scored_end))
    frame: Any = scores.select(
        "machine_id",
        "datetime",
        "alert_component",
        "failure_probability",
        *components,
        "model_version",
    ).toPandas()
    if frame.empty:
        return {"scores": None, "reason": "no rows scored", "gate": gate}
    versions = sorted(int(version) for version in frame["model_version"].unique())
    if gate is not None and versions != [int(gate["model_version"])]:
        raise SystemExit(f"scored by versions {versions}, trained v{gate['model_version']}")
    path = home / "scores.parquet"
    frame.to_parquet(path)
    return {"scores": path, "gate": gate, "model_version": versions[0], "components": components}


def _evaluated(frame: Any, time_column: str, data_end: datetime, first: date, end: date) -> Any:
    """The rows evaluate_scores.py keeps: t + H <= data end, first <= t < end (its filter, with
    its reading of time; the labels stay its own)."""
    import pandas as pd

    moments = pd.to_datetime(frame[time_column])
    if moments.dt.tz is not None:
        moments = moments.dt.tz_localize(None)
    keep = (
        (moments + pd.Timedelta(hours=HORIZON_H) <= pd.Timestamp(data_end))
        & (moments >= pd.Timestamp(first))
        & (moments < pd.Timestamp(end))
    )
    rows = frame[keep].copy()
    rows[time_column] = moments[keep]
    return rows.reset_index(drop=True)


def _seed_labels(seed_out: Path) -> list[float] | None:
    """The label values of the notebooks' model's probability vector, in its order: the label
    indexer is the pipeline's fourth stage (seed_method.py's `pm.stages[3].labels`)."""
    import pandas as pd

    folders = sorted((seed_out / "model" / "stages").glob("3_*"))
    if not folders:
        return None
    data = pd.read_parquet(folders[0] / "data")
    if "labelsArray" in data.columns:
        return [float(value) for value in data["labelsArray"].iloc[0][0]]
    if "labels" in data.columns:
        return [float(value) for value in data["labels"].iloc[0]]
    return None


def _dense(vector: dict[str, Any]) -> list[float]:
    """A Spark ML vector as Parquet stores it (type 1 dense, 0 sparse) as a list."""
    if vector["type"] == 1:
        return [float(value) for value in vector["values"]]
    values = [0.0] * int(vector["size"])
    for index, value in zip(vector["indices"], vector["values"], strict=True):
        values[int(index)] = float(value)
    return values


def _pdm_ranking(scores: Path, components: list[str]) -> Any:
    """pdm_assets' rows with `score` (failure_probability) and `component` (the most probable
    failing component, 1-based)."""
    import pandas as pd

    frame = pd.read_parquet(scores)
    frame["score"] = frame["failure_probability"].astype(float)
    frame["component"] = frame[components].to_numpy().argmax(axis=1) + 1
    return frame[["machine_id", "datetime", "score", "component"]]


def _seed_ranking(seed_out: Path) -> tuple[Any, str]:
    """The notebooks' method's rows with `score` (1 - its probability of label 0) and
    `component` (its most probable failure label); without a probability, its alerts as they
    are (`score` 1 where it alerts)."""
    import pandas as pd

    frame = pd.read_parquet(seed_out / "scores")
    labels = _seed_labels(seed_out)
    if "probability" in frame.columns and labels is not None and 0.0 in labels:
        failing = [i for i, label in enumerate(labels) if label > 0]
        matrix = [_dense(vector) for vector in frame["probability"]]
        frame["score"] = [1.0 - row[labels.index(0.0)] for row in matrix]
        frame["component"] = [
            int(labels[max(failing, key=lambda i: row[i])]) if failing else 0 for row in matrix
        ]
        ranked_by = "1 - probability of label 0; component: most probable failure label"
    else:
        frame["score"] = (frame["pred_label"] > 0).astype(float)
        frame["component"] = frame["pred_label"].round().astype(int)
        ranked_by = "its own alerts (no probability in its scores)"
    return frame[["machineID", "dt_truncated", "score", "component"]], ranked_by


def _at_rate(
    yardsticks: Path,
    rows: Any,
    columns: tuple[str, str],
    rate: float,
    folder: Path,
    evaluate: list[str],
) -> dict[str, Any]:
    """Alert the top `rate` of `rows` by `score` with `component`; evaluate_scores.py's figures
    on the derived table, and the share of its alerts that precede any failure (its positives
    among the alerted rows alone)."""
    machine, moment = columns
    alerts = round(rate * len(rows))
    # Ties broken by machine and time, so a rerun alerts the same rows.
    order = rows.sort_values(
        ["score", machine, moment], ascending=[False, True, True], kind="mergesort"
    ).index[:alerts]
    derived = rows[[machine, moment]].copy()
    derived["alert_at_rate"] = 0
    derived.loc[order, "alert_at_rate"] = rows.loc[order, "component"].astype(int)
    folder.mkdir(parents=True, exist_ok=True)
    every_row, alerted = folder / "every_row.parquet", folder / "alerted.parquet"
    derived.to_parquet(every_row)
    derived.loc[order].to_parquet(alerted)
    options = ["--machine", machine, "--time", moment, "--pred", "alert_at_rate", *evaluate]
    figures = _yardstick(yardsticks, "evaluate_scores.py", str(every_row), *options)
    if figures["rows"] != len(rows):
        raise SystemExit(f"{folder}: evaluate_scores.py kept {figures['rows']} of {len(rows)}")
    any_failure = None
    if alerts:
        among = _yardstick(yardsticks, "evaluate_scores.py", str(alerted), *options)
        any_failure = round(among["positives"] / among["rows"], 3) if among["rows"] else None
    return {
        "alerts": alerts,
        "alert_rate": figures["alert_rate"],
        "pooled": figures["pooled"],
        "macro_f1": figures["macro_f1"],
        "any_failure_p": any_failure,
        "components": {f"comp{c}": figures[f"comp{c}"] for c in range(1, 5)},
    }


def _volume(figures: dict[str, Any]) -> dict[str, Any]:
    rows, positives = int(figures["rows"]), int(figures["positives"])
    share = positives / rows if rows else 0.0
    rate = float(figures["alert_rate"])
    return {
        "rows": rows,
        "positives": positives,
        "positive_share": round(share, 4),
        "alert_rate": round(rate, 4),
        "alert_rate_over_positive_share": round(rate / share, 3) if share else None,
    }


def _summary(report: dict[str, Any]) -> str:
    evaluation = report["evaluation"]
    parts = []
    for system, name in (("pdm_assets", "pdm_assets"), ("seed_method", "notebooks")):
        figures = evaluation[system]
        if "macro_f1" not in figures:
            parts.append(f"{name}: no scores ({figures['reason']})")
            continue
        volume = report["alert_volume"][system]
        parts.append(
            f"{name}: macro F1 {figures['macro_f1']:.3f}, pooled P/R {figures['pooled']['p']:.3f}"
            f"/{figures['pooled']['r']:.3f}, alert rate {volume['alert_rate']:.3f} "
            f"({volume['alert_rate_over_positive_share']} x positive share "
            f"{volume['positive_share']:.3f})"
        )
    at_rate = evaluation["at_notebooks_alert_rate"]
    same = []
    for system, name in (("pdm_assets", "pdm_assets"), ("seed_method", "notebooks")):
        figures = at_rate[system]
        if "pooled" in figures:
            same.append(
                f"{name} P/R {figures['pooled']['p']:.3f}/{figures['pooled']['r']:.3f} "
                f"(any failure P {figures['any_failure_p']})"
            )
    return (
        "; ".join(parts)
        + f". At the notebooks' alert rate {at_rate['alert_rate']:.3f}: "
        + ("; ".join(same) or "nothing to rank")
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--yardsticks",
        type=_yardsticks_dir,
        required=True,
        metavar="DIR",
        help="folder holding " + ", ".join(YARDSTICK_SCRIPTS) + "; they run in place there",
    )
    parser.add_argument(
        "--csv",
        type=_csv_dir,
        metavar="DIR",
        help="a folder of the public PdM_*.csv[.gz] files to run on instead of simulating; the "
        "days come from the files, --machines, --days and --seed are ignored",
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
    parser.add_argument(
        "--gated",
        action="store_true",
        help="keep the model's quality gate (default: off); if it fails nothing is scored and "
        "the report says why",
    )
    parser.add_argument("--label", default="", help="suffix of the result file's name")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    if args.reuse and not args.keep:
        raise SystemExit("--reuse needs --keep DIR")
    began_all = time.perf_counter()
    if args.csv is not None:
        first_day, last, machines = csv_span(args.csv)
        # Days from the first partition (earlier rows, such as 2014's maintenance, are history).
        fleet: dict[str, Any] = {
            "source": "csv",
            "csv": str(args.csv),
            "machines": machines,
            "days": (last - START).days + 1,
            "first_day": START.isoformat(),
            "last_day": last.isoformat(),
            "first_reading_day": first_day.isoformat(),
        }
        source = {"PDM_DATA_SOURCE": "csv", "PDM_CSV_DIR": str(args.csv)}
    else:
        last = START + timedelta(days=args.days - 1)
        fleet = {
            "source": "simulator",
            "machines": args.machines,
            "days": args.days,
            "seed": args.seed,
        }
        source = {
            "PDM_DATA_SOURCE": "simulator",
            "PDM_SIM_MACHINES": str(args.machines),
            "PDM_SIM_DAYS": str(args.days),
            "PDM_SIM_SEED": str(args.seed),
        }
    if not START < args.cutoff <= last or args.cutoff.day != 1:
        raise SystemExit(f"--cutoff must be the first of a month in {START + timedelta(1)}..{last}")
    # Absolute: the yardsticks run with their own folder as working directory.
    work = (args.keep or Path(tempfile.mkdtemp(prefix="pdm-quality-"))).resolve()
    work.mkdir(parents=True, exist_ok=True)
    timings: dict[str, float] = {}

    if args.csv is not None:
        csv_dir = args.csv
        reused = args.reuse and (work / INGESTED).exists()
    else:
        csv_dir = work / "csv"
        reused = args.reuse and (csv_dir / "PdM_failures.csv").exists()
        if not reused:
            from pdm_assets.simulator.fleet_simulator import FleetSpec, simulate, write_landing

            logger.info(
                "simulating %s machines x %s days, seed %s", args.machines, args.days, args.seed
            )
            began = time.perf_counter()
            landing = work / "pdm" / "landing"
            spec = FleetSpec(machines=args.machines, start=START, days=args.days, seed=args.seed)
            write_landing(simulate(spec), landing)
            _yardstick(args.yardsticks, "landing_to_pdm.py", str(landing), str(csv_dir))
            timings["simulate_and_convert"] = time.perf_counter() - began

    model_config = args.model if args.gated else {**UNGATED, **args.model}
    began = time.perf_counter()
    ours = run_pdm_assets(work / "pdm", source, args.cutoff, last, not reused, model_config)
    timings["pdm_assets_train_and_score" if reused else "pdm_assets"] = time.perf_counter() - began

    seed_result = work / "seed_method.json"
    if reused and seed_result.exists():
        seed_run = json.loads(seed_result.read_text())
    else:
        logger.info("seed_method.py on %s", csv_dir)
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

    logger.info("evaluating")
    began = time.perf_counter()
    scored_to = min(_next_month(args.cutoff), last + timedelta(days=1))
    data_end = datetime.combine(last + timedelta(days=1), datetime.min.time())
    common = [
        "--horizon-h",
        str(HORIZON_H),
        "--data-end",
        data_end.isoformat(sep=" "),
        "--from",
        args.cutoff.isoformat(),
        "--to",
        scored_to.isoformat(),
    ]
    failures = str(_public_file(csv_dir, "failures"))
    evaluate = [failures, *common]
    seed_out = work / "seed"
    evaluation: dict[str, Any] = {
        "seed_method": _yardstick(
            args.yardsticks,
            "evaluate_scores.py",
            str(seed_out / "scores"),
            *["--machine", "machineID", "--time", "dt_truncated", "--pred", "pred_label"],
            *evaluate,
        ),
    }
    if ours["scores"] is None:
        evaluation["pdm_assets"] = {"scores": "none", "reason": ours["reason"]}
    else:
        evaluation["pdm_assets"] = _yardstick(
            args.yardsticks,
            "evaluate_scores.py",
            str(ours["scores"]),
            *["--machine", "machine_id", "--time", "datetime", "--pred", "alert_component"],
            *evaluate,
        )
    rate = float(evaluation["seed_method"]["alert_rate"])
    seed_rows, ranked_by = _seed_ranking(seed_out)
    at_rate: dict[str, Any] = {
        "alert_rate": rate,
        "rule": "each system's evaluated rows ranked by its own failure probability; the top "
        "rows at the notebooks' alert rate alert with the most probable component",
    }
    if ours["scores"] is None:
        at_rate["pdm_assets"] = {"scores": "none", "reason": ours["reason"]}
    else:
        pdm_rows = _evaluated(
            _pdm_ranking(ours["scores"], ours["components"]),
            "datetime",
            data_end,
            args.cutoff,
            scored_to,
        )
        at_rate["pdm_assets"] = {
            "ranked_by": "failure_probability; component: argmax of the prob_<component> columns",
            **_at_rate(
                args.yardsticks,
                pdm_rows,
                ("machine_id", "datetime"),
                rate,
                work / "at_rate" / "pdm_assets",
                evaluate,
            ),
        }
    at_rate["seed_method"] = {
        "ranked_by": ranked_by,
        **_at_rate(
            args.yardsticks,
            _evaluated(seed_rows, "dt_truncated", data_end, args.cutoff, scored_to),
            ("machineID", "dt_truncated"),
            rate,
            work / "at_rate" / "seed_method",
            evaluate,
        ),
    }
    evaluation["at_notebooks_alert_rate"] = at_rate
    # pdm_assets first, as before.
    evaluation = {"pdm_assets": evaluation.pop("pdm_assets"), **evaluation}
    timings["evaluate"] = time.perf_counter() - began
    timings["total"] = time.perf_counter() - began_all

    scored = "macro_f1" in evaluation["pdm_assets"]
    report = {
        "fleet": fleet,
        "cutoff": args.cutoff.isoformat(),
        "gated": args.gated,
        "model_config": model_config,
        "scored": [args.cutoff.isoformat(), scored_to.isoformat()],
        "pdm_assets_model": {
            key: ours.get(key) for key in ("gate", "model_version", "reason") if key in ours
        },
        "evaluation": evaluation,
        "alert_volume": {
            system: _volume(evaluation[system])
            for system in ("pdm_assets", "seed_method")
            if "rows" in evaluation[system]
        },
        "macro_f1_gain": round(
            float(evaluation["pdm_assets"]["macro_f1"])
            - float(evaluation["seed_method"]["macro_f1"]),
            3,
        )
        if scored
        else None,
        "seed_method_holdout": seed_run,
        "seconds": {name: round(value, 1) for name, value in timings.items()},
        "work": str(work),
    }
    name = result_name(args.csv, args.machines, args.days, args.seed, args.label)
    write_result(name, report)
    print(_summary(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
