"""Choose the alert policy's evidence rules by what they do on the month after the cutoff.

For each kept work folder (``model_quality.py --keep DIR``, simulated or ``--csv``), trains once
at the cutoff as the model asset does (validated fit, decision policy on validation, refit on
every labelled row, the refit's scores of the recent unlabelled rows), then applies each
variant of the evidence rules (`decision.apply_evidence_rules`: min_validation_failures,
alert_budget_ratio, max_alerts_per_failure) to the same scores, and measures the month after
the cutoff against the warehouse's uncensored labels: macro F1 over every component, pooled
precision / recall (an alert is right when it names the first component to fail), the alert
rate beside the share of rows that precede a failure, and the gate's verdict under the rule.

    python benchmarks/alert_policy.py /tmp/ap/sim10-s1 /tmp/aq/sample:2015-03-01 \\
        --cutoff 2015-05-01

A folder may carry its own cutoff after a colon. Writes benchmarks/results/alert_policy.json
and prints a table per variant (each folder a row) and the variants' means.
"""

from __future__ import annotations

import argparse
import itertools
import json
import logging
import sys
from dataclasses import replace
from datetime import date
from typing import Any

import numpy as np
from kept_fleets import add_arguments, kept_folder, next_month
from pyspark.sql import functions as F
from results_file import write_result

logger = logging.getLogger("alert_policy")
# (min_validation_failures, alert_budget_ratio, max_alerts_per_failure); the first is the
# policy before the evidence rules (every cut fitted, no cap).
GRID_MIN_FAILURES = (0, 5, 10)
GRID_BUDGET_RATIO = (0.25, 0.5, 1.0)
GRID_CAP = (1.0,)


def month_metrics(labels: np.ndarray, alerted: np.ndarray, components: int) -> dict[str, float]:
    """Macro F1 over every component (as the yardstick evaluator), pooled P / R, alert rate."""
    f1s = []
    for c in range(1, components + 1):
        hits = int(((labels == c) & (alerted == c)).sum())
        flagged, actual = int((alerted == c).sum()), int((labels == c).sum())
        precision = hits / flagged if flagged else 0.0
        recall = hits / actual if actual else 0.0
        f1s.append(2 * precision * recall / (precision + recall) if precision + recall else 0.0)
    hits = int(((labels > 0) & (alerted == labels)).sum())
    flagged, actual = int((alerted > 0).sum()), int((labels > 0).sum())
    return {
        "macro_f1": sum(f1s) / components,
        "pooled_precision": hits / flagged if flagged else 0.0,
        "pooled_recall": hits / actual if actual else 0.0,
        "alert_rate": flagged / labels.size if labels.size else 0.0,
        "positive_share": actual / labels.size if labels.size else 0.0,
    }


def variant_of(result: dict[str, Any]) -> tuple[Any, ...]:
    return (
        result["min_validation_failures"],
        result["alert_budget_ratio"],
        result["max_alerts_per_failure"],
        result["evaluation"],
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_arguments(parser, "alert_policy.json")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")

    from pdm_assets.adapters.spark import SparkResource
    from pdm_assets.adapters.warehouse import open_store
    from pdm_assets.core import decision, training
    from pdm_assets.core.fleet import DEFAULT_FLEET as FLEET
    from pdm_assets.core.timewindow import Window, midnight
    from pdm_assets.defs.model.config import ModelConfig

    spark = SparkResource(master="local[*]").get_session()
    spark.sparkContext.setLogLevel("ERROR")
    horizon = FLEET.horizon_hours
    params, rules = ModelConfig().params(), ModelConfig().decision_params()
    results: list[dict[str, Any]] = []
    for value in args.work:
        work, cutoff_day = kept_folder(value, args.cutoff)
        cutoff = midnight(cutoff_day)
        store = open_store(str(work / "pdm" / "warehouse"))
        history = Window.of_days(date(2015, 1, 1), cutoff_day)
        month = Window.of_days(cutoff_day, next_month(cutoff_day))
        features = store.read_window(spark, "machine_features", history).cache()
        rows = training.training_rows(
            features, store.read_window(spark, "failure_labels", history), cutoff, horizon
        ).cache()
        train, validation = training.temporal_split(rows, cutoff, horizon, 21)
        validated = training.fit(train, params, FLEET)
        shipped = training.fit(rows, params, FLEET)
        temporal_failures = {
            "training": training.failure_counts(train, FLEET),
            "validation": training.failure_counts(validation, FLEET),
        }
        inputs = {
            evaluation: training.policy_inputs(
                rows,
                validation,
                temporal_failures,
                shipped,
                validated,
                training.rows_unseen_by(features, cutoff, horizon),
                params,
                replace(rules, cross_fit_folds=folds),
                21,
                FLEET,
            )
            for evaluation, folds in (("temporal", 1), ("cross-fitted", 5))
        }
        tested = (
            store.read_window(spark, "machine_features", month)
            .drop("date")
            .join(
                store.read_window(spark, "failure_labels", month).drop("date"),
                ["machine_id", "datetime"],
            )
            .where("NOT censored")
        )
        collected = np.array(
            training.predict(shipped, tested, FLEET)
            .select(
                F.col("label").cast("double"),
                F.floor(F.unix_timestamp("datetime") / 86400).cast("double"),
                *FLEET.component_probability_columns,
            )
            .collect(),
            dtype=np.float64,
        )
        month_labels = collected[:, 0].astype(np.int64)
        month_probabilities = {
            name: collected[:, 2 + i] for i, name in enumerate(FLEET.component_names)
        }
        machines = features.select("machine_id").distinct().count()
        gate_metrics: dict[str, dict[str, dict[str, float]]] = {}
        for min_failures, ratio, cap, basis in itertools.product(
            GRID_MIN_FAILURES, GRID_BUDGET_RATIO, GRID_CAP, inputs
        ):
            used = inputs[basis]
            if min_failures == 0 and ratio != GRID_BUDGET_RATIO[0]:
                continue  # without the minimum no budget cut is used: one variant is enough
            fitted = decision.fit_policy(
                used.labels,
                used.probabilities,
                rules.strategy,
                rules.precision_target,
                rules.daily_alert_budget,
            )
            policy = decision.apply_evidence_rules(
                fitted, used.labels, used.probabilities, used.evidence, min_failures, ratio, cap
            )
            if decision.needs_fallback(policy):
                policy = decision.with_fallback(
                    policy,
                    *training.labels_and_probabilities(
                        training.predict(shipped, rows, FLEET), FLEET
                    ),
                )
            if basis not in gate_metrics:  # PR-AUC does not depend on the cuts
                gate_metrics[basis] = training.component_metrics(
                    decision.alerts(used.scored, policy, FLEET.component_probability_columns),
                    fleet=FLEET,
                )
            validation_metrics, failures = gate_metrics[basis], used.failures
            gate = training.quality_gate(
                validation_metrics, 2.0, failures=failures, min_failures=min_failures
            )
            alerted = decision.alert_components(month_probabilities, policy.thresholds)
            result = {
                "work": str(work),
                "machines": machines,
                "cutoff": cutoff_day.isoformat(),
                "min_validation_failures": min_failures,
                "alert_budget_ratio": ratio,
                "max_alerts_per_failure": cap,
                "evaluation": basis,
                "validation_failures": failures["validation"],
                "training_failures": failures["training"],
                "gate": "passed" if gate.passed else "failed",
                "gate_judged": list(gate.judged),
                "cuts": {
                    name: fit.fitted_on.split(":")[0] for name, fit in policy.validation.items()
                },
                **{
                    name: round(value, 4)
                    for name, value in month_metrics(
                        month_labels, alerted, len(FLEET.component_names)
                    ).items()
                },
            }
            logger.info(json.dumps(result))
            results.append(result)
        rows.unpersist()
        features.unpersist()
    write_result(args.output, {"results": results})
    variants = sorted({variant_of(r) for r in results})
    lines = [
        "| min failures | budget ratio | cap | evaluation | macro F1 | pooled P "
        "| pooled R | alert rate | rate / positive share | gate passed |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for variant in variants:
        chosen = [r for r in results if variant_of(r) == variant]
        mean = {
            key: sum(r[key] for r in chosen) / len(chosen)
            for key in ("macro_f1", "pooled_precision", "pooled_recall", "alert_rate")
        }
        ratio = sum(
            r["alert_rate"] / r["positive_share"] if r["positive_share"] else 0.0 for r in chosen
        ) / len(chosen)
        passed = sum(r["gate"] == "passed" for r in chosen)
        lines.append(
            f"| {variant[0]} | {variant[1]:g} | {variant[2]:g} | {variant[3]} "
            f"| {mean['macro_f1']:.3f} | "
            f"{mean['pooled_precision']:.3f} | {mean['pooled_recall']:.3f} | "
            f"{mean['alert_rate']:.3f} | {ratio:.2f} | {passed}/{len(chosen)} |"
        )
    sys.stdout.write("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
