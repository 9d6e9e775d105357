"""Choose the learner by validation: train variants on fleets that model_quality.py kept.

For each kept work folder (``model_quality.py --keep DIR``) and each variant, trains at the
cutoff with `training.train_and_validate` (no refit, so the model measured is the one whose
policy was fitted), and reports the validation window's macro F1 (what the choice is made on)
beside the macro F1 of the month after the cutoff under the validated policy (what it buys).

    python benchmarks/model_selection.py /tmp/q/s1 /tmp/q/s2 --cutoff 2015-08-01

Writes benchmarks/results/model_selection.json and prints a table.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from dataclasses import asdict, replace
from datetime import date, timedelta
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parents[1] / "benchmarks" / "results"
logger = logging.getLogger("model_selection")

# Overrides of training.ClassifierParams, each spelled out in full, so a change of the defaults
# does not change what a variant means.
VARIANTS: dict[str, dict[str, Any]] = {
    "rf leaf1 balanced (before)": {"min_instances_per_node": 1, "class_weighting": "balanced"},
    "rf leaf1": {"min_instances_per_node": 1, "class_weighting": "none"},
    "rf leaf20": {"min_instances_per_node": 20, "class_weighting": "none"},
    "rf leaf50": {"min_instances_per_node": 50, "class_weighting": "none"},
    "rf leaf20 sqrt_balanced": {"min_instances_per_node": 20, "class_weighting": "sqrt_balanced"},
    "rf leaf20 100 trees": {"num_trees": 100, "class_weighting": "none"},
    "gbt one-vs-rest": {"classifier": "gbt_one_vs_rest", "class_weighting": "none"},
}


def _next_month(day: date) -> date:
    return (day.replace(day=28) + timedelta(days=4)).replace(day=1)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("work", nargs="+", type=Path, help="folders kept by model_quality.py")
    parser.add_argument("--cutoff", type=date.fromisoformat, required=True)
    parser.add_argument("--variants", help="comma-separated names (default: all)")
    parser.add_argument("--output", type=Path, default=RESULTS / "model_selection.json")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")

    from pdm_assets.adapters.spark import SparkResource
    from pdm_assets.adapters.warehouse import open_store
    from pdm_assets.core import decision, training
    from pdm_assets.core.fleet import DEFAULT_FLEET
    from pdm_assets.core.timewindow import Window, midnight
    from pdm_assets.defs.model.config import ModelConfig

    spark = SparkResource(master="local[*]").get_session()
    spark.sparkContext.setLogLevel("ERROR")
    names = args.variants.split(",") if args.variants else list(VARIANTS)
    cutoff = midnight(args.cutoff)
    horizon = 168
    results: list[dict[str, Any]] = []
    for work in args.work:
        store = open_store(str(work / "pdm" / "warehouse"))
        history = Window.of_days(date(2015, 1, 1), args.cutoff)
        month = Window.of_days(args.cutoff, _next_month(args.cutoff))
        rows = training.training_rows(
            store.read_window(spark, "machine_features", history),
            store.read_window(spark, "failure_labels", history),
            cutoff,
            horizon,
        ).cache()
        labels = store.read_window(spark, "failure_labels", month)
        test = (
            store.read_window(spark, "machine_features", month)
            .drop("date")
            .join(labels.drop("date"), ["machine_id", "datetime"])
            .where("NOT censored")
            .cache()
        )
        for name in names:
            params = replace(ModelConfig().params(), **VARIANTS[name])
            began = time.perf_counter()
            outcome = training.train_and_validate(
                rows,
                cutoff,
                horizon,
                21,
                params,
                ModelConfig().decision_params(),
                refit_on_all=False,
            )
            seconds = time.perf_counter() - began
            scored = decision.alerts(
                training.predict(outcome.model, test),
                outcome.policy,
                DEFAULT_FLEET.component_probability_columns,
            )
            month_metrics = training.component_metrics(scored)
            outcome.predictions.unpersist()
            result = {
                "work": str(work),
                "variant": name,
                "params": asdict(params),
                "validation_macro_f1": round(training.macro(outcome.metrics, "f1"), 4),
                "validation_macro_pr_auc": round(training.macro(outcome.metrics, "pr_auc"), 4),
                "month_macro_f1": round(training.macro(month_metrics, "f1"), 4),
                "month_macro_pr_auc": round(training.macro(month_metrics, "pr_auc"), 4),
                "month_f1": {c: round(v["f1"], 3) for c, v in month_metrics.items()},
                "train_seconds": round(seconds, 1),
            }
            logger.info(json.dumps(result))
            results.append(result)
        rows.unpersist()
        test.unpersist()
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(results, indent=2) + "\n")
    header = f"{'variant':<28} {'valid F1':>8} {'valid AP':>8} {'month F1':>8} {'seconds':>7}  work"
    lines = [header]
    for result in results:
        lines.append(
            f"{result['variant']:<28} {result['validation_macro_f1']:>8.3f} "
            f"{result['validation_macro_pr_auc']:>8.3f} {result['month_macro_f1']:>8.3f} "
            f"{result['train_seconds']:>7.0f}  {result['work']}"
        )
    sys.stdout.write("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
