"""Do the extra feature families help? Validation and the month after the cutoff, with and without.

For each kept work folder (``model_quality.py --keep DIR``, simulated or ``--csv``), computes
machine_features from the warehouse's raw tables over the whole history up to the end of the
month after the cutoff (`features.compute`, as the machine_features asset calls it) twice: with
the default fleet (extras off) and with pdm_assets_tests/data/azure_pdm_extras.toml (every extra
family on). Labels are the warehouse's failure_labels (they do not depend on the features). Each
variant trains at the cutoff as the model asset does (`training.train_and_validate`: validated
fit, decision policy on validation, refit on every labelled row, evidence rules on the refit's
scores of the recent unlabelled rows), and is measured on the validation window (macro F1 and
PR-AUC) and on the month after the cutoff against the uncensored labels: macro F1 over the
components with failures and over all of them, pooled precision / recall (an alert is right when
it names the first component to fail) and the alert rate.

    python benchmarks/extra_features.py /tmp/ap/sim30-s1 /tmp/aq/sample:2015-03-01 \\
        --cutoff 2015-05-01

A folder may carry its own cutoff after a colon. Writes benchmarks/results/extra_features.json
and prints a table (each folder and variant a row).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path
from typing import Any

from kept_fleets import add_arguments, kept_folder, next_month
from pyspark.sql import functions as F
from results_file import write_result

logger = logging.getLogger("extra_features")
EXTRAS_FLEET = Path(__file__).resolve().parents[1] / "pdm_assets_tests/data/azure_pdm_extras.toml"
VALIDATION_DAYS = 21


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_arguments(parser, "extra_features.json")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")

    from pdm_assets.adapters.spark import SparkResource
    from pdm_assets.adapters.warehouse import open_store
    from pdm_assets.core import decision, features, training
    from pdm_assets.core.fleet import DEFAULT_FLEET, load_fleet
    from pdm_assets.core.timewindow import Window, midnight, timestamp_literal
    from pdm_assets.defs.model.config import ModelConfig

    spark = SparkResource(master="local[*]").get_session()
    spark.sparkContext.setLogLevel("ERROR")
    fleets = {"default": DEFAULT_FLEET, "extras": load_fleet(EXTRAS_FLEET)}
    params, rules = ModelConfig().params(), ModelConfig().decision_params()
    results: list[dict[str, Any]] = []
    for value in args.work:
        work, cutoff_day = kept_folder(value, args.cutoff)
        cutoff = midnight(cutoff_day)
        month_end = next_month(cutoff_day)
        store = open_store(str(work / "pdm" / "warehouse"))
        first_day = store.partition_dates("raw_telemetry")[0]
        history = Window.of_days(first_day, month_end)
        month = Window.of_days(cutoff_day, month_end)
        raw = {
            name: store.read_window(spark, f"raw_{name}", history)
            for name in ("telemetry", "errors", "maintenance", "failures")
        }
        machines_table = store.read_table(spark, "raw_machines")
        labels = store.read_window(spark, "failure_labels", history).cache()
        for variant, fleet in fleets.items():
            horizon = fleet.horizon_hours
            began = time.perf_counter()
            rows_all = features.compute(
                raw["telemetry"],
                raw["errors"],
                raw["maintenance"],
                raw["failures"],
                machines_table,
                history.start,
                history.end,
                fleet,
            ).localCheckpoint(eager=True)
            feature_seconds = time.perf_counter() - began
            null_rates = features.null_rates(rows_all, fleet)
            before = rows_all.where(F.col("datetime") < timestamp_literal(cutoff))
            rows = training.training_rows(before, labels, cutoff, horizon).cache()
            began = time.perf_counter()
            outcome = training.train_and_validate(
                rows,
                cutoff,
                horizon,
                VALIDATION_DAYS,
                params,
                rules,
                True,
                fleet,
                recent=training.rows_unseen_by(before, cutoff, horizon),
            )
            train_seconds = time.perf_counter() - began
            tested = (
                rows_all.where(month.contains("datetime"))
                .drop("date")
                .join(
                    labels.where(month.contains("datetime")).drop("date"),
                    ["machine_id", "datetime"],
                )
                .where("NOT censored")
            )
            scored = decision.alerts(
                training.predict(outcome.model, tested, fleet),
                outcome.policy,
                fleet.component_probability_columns,
            ).cache()
            month_metrics = training.component_metrics(scored, fleet=fleet)
            pooled = scored.agg(
                F.count(F.lit(1)).alias("rows"),
                F.sum((F.col("alert_component") > 0).cast("int")).alias("alerts"),
                F.sum((F.col("label") > 0).cast("int")).alias("positives"),
                F.sum(
                    ((F.col("label") > 0) & (F.col("alert_component") == F.col("label"))).cast(
                        "int"
                    )
                ).alias("hits"),
            ).first()
            assert pooled is not None
            total, alerts = pooled["rows"] or 0, pooled["alerts"] or 0
            positives, hits = pooled["positives"] or 0, pooled["hits"] or 0
            components = len(fleet.component_names)
            result = {
                "work": str(work),
                "cutoff": cutoff_day.isoformat(),
                "variant": variant,
                "fleet": fleet.name,
                "machines": rows_all.select("machine_id").distinct().count(),
                "feature_columns": len(fleet.feature_columns),
                "feature_rows": rows_all.count(),
                "feature_seconds": round(feature_seconds, 1),
                "train_seconds": round(train_seconds, 1),
                "training_rows": outcome.train_rows,
                "validation_rows": outcome.validation_rows,
                "validation_failures": outcome.failures.get("validation", {}),
                "validation_macro_f1": round(training.macro(outcome.metrics, "f1"), 4),
                "validation_macro_pr_auc": round(training.macro(outcome.metrics, "pr_auc"), 4),
                "validation_f1": {c: round(v["f1"], 3) for c, v in outcome.metrics.items()},
                "month_rows": total,
                "month_macro_f1": round(training.macro(month_metrics, "f1"), 4),
                "month_mean_f1_all": round(
                    sum(v["f1"] for v in month_metrics.values()) / components, 4
                ),
                "month_macro_pr_auc": round(training.macro(month_metrics, "pr_auc"), 4),
                "month_f1": {c: round(v["f1"], 3) for c, v in month_metrics.items()},
                "month_support": {c: int(v["support"]) for c, v in month_metrics.items()},
                "pooled_precision": round(hits / alerts, 4) if alerts else 0.0,
                "pooled_recall": round(hits / positives, 4) if positives else 0.0,
                "alert_rate": round(alerts / total, 4) if total else 0.0,
                "positive_share": round(positives / total, 4) if total else 0.0,
                "null_rates_over_threshold": {
                    name: round(rate, 4)
                    for name, rate in null_rates.items()
                    if rate > fleet.max_null_rate(name)
                },
                "thresholds": {c: round(t, 4) for c, t in outcome.policy.thresholds.items()},
            }
            logger.info(json.dumps(result))
            results.append(result)
            scored.unpersist()
            outcome.predictions.unpersist()
            rows.unpersist()
            rows_all.unpersist()
        labels.unpersist()
    write_result(args.output, {"results": results})
    lines = [
        "| folder | machines | variant | valid macro F1 | valid macro PR-AUC | month macro F1 "
        "(all comps) | pooled P / R | alert rate | feature s |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        lines.append(
            f"| {Path(r['work']).name}@{r['cutoff']} | {r['machines']} | {r['variant']} "
            f"| {r['validation_macro_f1']:.3f} | {r['validation_macro_pr_auc']:.3f} "
            f"| {r['month_macro_f1']:.3f} ({r['month_mean_f1_all']:.3f}) "
            f"| {r['pooled_precision']:.3f} / {r['pooled_recall']:.3f} "
            f"| {r['alert_rate']:.3f} | {r['feature_seconds']:.0f} |"
        )
    sys.stdout.write("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
