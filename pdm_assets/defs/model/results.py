"""What a training step shows: the model's page (metrics, policy, expected alerts, pictures, the
MLflow links) and the quality gate's check result."""

from typing import Any

import dagster as dg
from mlflow import log_figure
from pyspark.ml import PipelineModel
from pyspark.sql import DataFrame

from pdm_assets.adapters.mlflow_registry import ModelRegistry
from pdm_assets.core import decision, training
from pdm_assets.core.fleet import Fleet
from pdm_assets.defs import metadata
from pdm_assets.defs.model.publish import Published, RunIdentity

QUALITY_GATE = "quality_gate"
NO_CHAMPION_COMPARISON = (
    "not compared: no champion, or one trained after this cutoff, or one of this cutoff with "
    "another validation window"
)


def expected_metadata(policy: decision.DecisionPolicy) -> dict[str, float | str]:
    """The policy's expected alerts per day and precision, for the model's page."""
    expected = policy.expected
    if expected is None:
        return {}
    return {
        "expected_alerts_per_day": expected.alerts_per_day,
        "expected_alert_share": expected.alert_share,
        "expected_precision": expected.precision,
        "expected_recall": expected.recall,
        "expected": expected.text(),
    }


def model_page(
    outcome: training.TrainingOutcome,
    published: Published,
    registry: ModelRegistry,
    run: RunIdentity,
    cutoff_day: str,
    pictures: dict[str, bytes],
    fleet: Fleet,
) -> dict[str, Any]:
    """The failure_model partition's metadata."""
    gate, version = published.gate, published.version
    return {
        "cutoff": cutoff_day,
        "training_rows": outcome.train_rows,
        "validation_rows": outcome.validation_rows,
        "refit_rows": outcome.refit_rows,
        "metrics": dg.MetadataValue.md(metadata.metrics_table(outcome.metrics)),
        "decision_policy": dg.MetadataValue.md(
            f"strategy: {outcome.policy.strategy}\n\n{outcome.policy.table()}"
        ),
        **expected_metadata(outcome.policy),
        "validation_failures": dg.MetadataValue.json(outcome.failures),
        "evaluation": outcome.evaluation,
        "macro_f1": training.macro(outcome.metrics, "f1"),
        "fleet": f"{fleet.name} ({fleet.fingerprint})",
        "macro_pr_auc": gate.macro_pr_auc,
        "model_name": registry.model_name,
        "model_version": int(version.version),
        "passed_gate": gate.passed,
        "mlflow_run_id": run.mlflow_run_id,
        "mlflow_run": dg.MetadataValue.url(registry.run_url(run.experiment_id, run.mlflow_run_id)),
        "mlflow_model_version": dg.MetadataValue.url(registry.version_url(version.version)),
        **{
            name: metadata.markdown_image(png, name.replace("_", " "))
            for name, png in pictures.items()
        },
    }


def quality_gate_result(published: Published) -> dg.AssetCheckResult:
    """The gate's verdict: a version too little evidence could judge is used, and the check
    warns."""
    gate = published.gate
    return dg.AssetCheckResult(
        check_name=QUALITY_GATE,
        passed=gate.passed and not gate.not_judged,
        severity=dg.AssetCheckSeverity.WARN if gate.not_judged else dg.AssetCheckSeverity.ERROR,
        metadata={
            "macro_pr_auc": gate.macro_pr_auc,
            "floor": gate.floor,
            "champion": (
                f"v{gate.champion.version}: {gate.champion.macro_pr_auc:.3f} against "
                f"{gate.challenger_macro_pr_auc:.3f} on {gate.champion.rows} rows "
                f"{gate.champion.basis}"
                if gate.champion is not None
                else NO_CHAMPION_COMPARISON
            ),
            "reasons": "; ".join(gate.reasons) or gate.not_judged or "passed",
            "judged_components": ", ".join(gate.judged) or "none",
            "model_version": int(published.version.version),
        },
    )


def model_pictures(model: PipelineModel, predictions: DataFrame, fleet: Fleet) -> dict[str, bytes]:
    """Confusion matrix and feature importances, logged to MLflow and returned as PNG bytes."""
    figures = {
        "confusion_matrix": metadata.confusion_matrix(
            training.confusion_matrix(predictions, fleet=fleet), fleet.class_names
        ),
        "feature_importances": metadata.feature_importances(training.feature_importances(model)),
    }
    pictures = {}
    for name, figure in figures.items():
        log_figure(figure, f"{name}.png")
        pictures[name] = metadata.to_png(figure)
    return pictures
