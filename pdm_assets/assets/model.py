"""The model: a Spark ML pipeline per monthly cutoff, tracked and registered in MLflow."""

from collections.abc import Iterator
from functools import partial
from typing import Literal

import dagster as dg
from dagster_mlflow import end_mlflow_on_run_finished
from dagster_mlflow.resources import MlFlow
from mlflow import active_run, log_figure, log_metrics, log_params, set_tags
from pydantic import Field
from pyspark.ml import PipelineModel
from pyspark.sql import DataFrame

from pdm_assets import plots, training
from pdm_assets.partitions import GraphPartitions, partition_window
from pdm_assets.registry import CUTOFF_TAG, PARTITION_TAG, ModelRegistry
from pdm_assets.spark import StepLauncherParam

MODEL_GROUP = "model"
QUALITY_GATE = "quality_gate"


class ModelConfig(dg.Config):
    """Hyperparameters and validation of the failure model."""

    classifier: Literal["random_forest", "decision_tree"] = Field(
        default="random_forest", description="Spark ML classifier."
    )
    num_trees: int = Field(
        default=40, description="Trees in the forest; 40 trains in well under a minute on 2 cores."
    )
    max_depth: int = Field(default=15, description="Maximum depth of each tree.")
    feature_subset_strategy: str = Field(
        default="sqrt", description="Features considered per split (Spark's featureSubsetStrategy)."
    )
    subsampling_rate: float = Field(default=0.632, description="Share of rows sampled per tree.")
    min_instances_per_node: int = Field(default=1, description="Minimum rows per leaf.")
    validation_days: int = Field(
        default=21,
        description="Days of observations before cutoff - horizon held out for validation.",
    )
    refit_on_all: bool = Field(
        default=True,
        description="After validating, refit on every labelled row before the cutoff.",
    )
    seed: int = Field(default=42, description="Random seed of the classifier.")
    min_macro_pr_auc: float = Field(
        default=0.10,
        description="Quality gate: the floor of the mean per-component PR-AUC on validation "
        "(chance is the failure rate, a few percent).",
    )
    champion_tolerance: float = Field(
        default=0.02,
        description="Quality gate: how much lower than the champion's macro PR-AUC on the same "
        "validation rows the new version may score.",
    )

    def params(self) -> training.ClassifierParams:
        return training.ClassifierParams(
            classifier=self.classifier,
            num_trees=self.num_trees,
            max_depth=self.max_depth,
            feature_subset_strategy=self.feature_subset_strategy,
            subsampling_rate=self.subsampling_rate,
            min_instances_per_node=self.min_instances_per_node,
            seed=self.seed,
        )


def metrics_table(metrics: dict[str, dict[str, float]]) -> str:
    lines = [
        "| component | precision | recall | F1 | PR-AUC | support |",
        "|---|---|---|---|---|---|",
    ]
    for component, values in metrics.items():
        lines.append(
            f"| {component} | {values['precision']:.3f} | {values['recall']:.3f} | "
            f"{values['f1']:.3f} | {values['pr_auc']:.3f} | {int(values['support'])} |"
        )
    return "\n".join(lines)


def build_model_asset(partitions: GraphPartitions) -> dg.AssetsDefinition:
    horizon_hours = partitions.horizon_days * 24

    @dg.asset(
        group_name=MODEL_GROUP,
        description=(
            "A Spark ML pipeline (random forest by default) trained on labelled rows with "
            "t + H <= cutoff, the first day of the partition's month; validated on the last "
            "weeks before the cutoff with a horizon gap, logged to MLflow and registered as a "
            "new version tagged with its cutoff."
        ),
        partitions_def=partitions.monthly,
        # Each month is its own model and MLflow run.
        backfill_policy=dg.BackfillPolicy.multi_run(max_partitions_per_run=1),
        kinds={"spark", "mlflow"},
        ins={
            "machine_features": dg.AssetIn(partition_mapping=partitions.training_history),
            "failure_labels": dg.AssetIn(partition_mapping=partitions.training_history),
        },
        hooks={end_mlflow_on_run_finished},
        check_specs=[
            dg.AssetCheckSpec(
                QUALITY_GATE,
                asset="failure_model",
                blocking=True,
                description=(
                    "The new version becomes champion only if its macro PR-AUC on validation "
                    "clears ModelConfig.min_macro_pr_auc and is not worse than the current "
                    "champion's on the same rows (within champion_tolerance)."
                ),
            )
        ],
    )
    def failure_model(
        context: dg.AssetExecutionContext,
        step_launcher: StepLauncherParam,
        config: ModelConfig,
        model_registry: ModelRegistry,
        # dagster-mlflow's resource starts (or resumes) the MLflow run of this Dagster run and
        # tags it with the run id; the logging below goes to that active run.
        mlflow: dg.ResourceParam[MlFlow],
        machine_features: DataFrame,
        failure_labels: DataFrame,
    ) -> Iterator[dg.MaterializeResult | dg.AssetCheckResult]:
        cutoff = partition_window(context.partition_time_window).start
        rows = training.training_rows(machine_features, failure_labels, cutoff, horizon_hours)
        rows = rows.cache()
        train, validation = training.temporal_split(
            rows, cutoff, horizon_hours, config.validation_days
        )
        train_rows, validation_rows, all_rows = train.count(), validation.count(), rows.count()
        if train_rows == 0 or validation_rows == 0:
            raise dg.Failure(
                description=(
                    f"Not enough labelled history before the cutoff {cutoff.date()}: "
                    f"{train_rows} training and {validation_rows} validation rows. Materialise "
                    "machine_features and failure_labels for the days before the cutoff "
                    f"(at least {config.validation_days} days + 2 x the horizon)."
                )
            )
        params = config.params()
        validated_model = training.fit(train, params)
        predictions = training.predict(validated_model, validation)
        metrics = training.component_metrics(predictions)
        # The held-out metrics of the validated fit are what the gate judges; the refit on every
        # labelled row (validation included, so it cannot be measured there) is what ships.
        model = training.fit(rows, params) if config.refit_on_all else validated_model

        active = active_run()
        assert active is not None, "the mlflow resource starts a run for every Dagster run"
        abandoned = model_registry.end_abandoned_runs(
            active.info.experiment_id, active.info.run_id, partial(_run_is_over, context.instance)
        )
        if abandoned:
            context.log.warning(f"marked {len(abandoned)} MLflow runs of dead Dagster runs KILLED")
        partition = context.partition_key
        set_tags(
            {
                CUTOFF_TAG: cutoff.date().isoformat(),
                PARTITION_TAG: partition,
                "dagster_asset": context.asset_key.to_user_string(),
            }
        )
        log_params(
            {**config.model_dump(), "horizon_hours": horizon_hours, "cutoff": str(cutoff.date())}
        )
        log_metrics(
            {
                f"{component}_{name}": value
                for component, values in metrics.items()
                for name, value in values.items()
            }
            | {"train_rows": train_rows, "validation_rows": validation_rows}
        )
        version = model_registry.log_and_register(
            model, cutoff.date(), context.run_id, partition, example_rows=validation
        )
        champion = model_registry.champion()
        champion_metrics = (
            training.component_metrics(
                training.predict(model_registry.load(champion.version), validation)
            )
            if champion is not None
            else None
        )
        gate = training.quality_gate(
            metrics, champion_metrics, config.min_macro_pr_auc, config.champion_tolerance
        )
        model_registry.publish(version.version, gate.passed)
        pictures = model_pictures(validated_model, predictions)
        experiment_id = active.info.experiment_id
        run_id = active.info.run_id
        rows.unpersist()
        yield dg.MaterializeResult(
            metadata={
                "cutoff": cutoff.date().isoformat(),
                "training_rows": train_rows,
                "validation_rows": validation_rows,
                "refit_rows": all_rows if config.refit_on_all else train_rows,
                "metrics": dg.MetadataValue.md(metrics_table(metrics)),
                "macro_f1": training.macro(metrics, "f1"),
                "macro_pr_auc": gate.macro_pr_auc,
                "model_name": model_registry.model_name,
                "model_version": int(version.version),
                "champion": gate.passed,
                "mlflow_run_id": run_id,
                "mlflow_run": dg.MetadataValue.url(model_registry.run_url(experiment_id, run_id)),
                "mlflow_model_version": dg.MetadataValue.url(
                    model_registry.version_url(version.version)
                ),
                **{
                    name: plots.markdown_image(png, name.replace("_", " "))
                    for name, png in pictures.items()
                },
            }
        )
        yield dg.AssetCheckResult(
            check_name=QUALITY_GATE,
            passed=gate.passed,
            metadata={
                "macro_pr_auc": gate.macro_pr_auc,
                "champion_macro_pr_auc": gate.champion_macro_pr_auc
                if gate.champion_macro_pr_auc is not None
                else "no champion yet",
                "reasons": "; ".join(gate.reasons) or "passed",
                "model_version": int(version.version),
            },
        )

    return failure_model


def _run_is_over(instance: dg.DagsterInstance, run_id: str) -> bool:
    run = instance.get_run_by_id(run_id)
    return run is None or run.is_finished


def model_pictures(model: PipelineModel, predictions: DataFrame) -> dict[str, bytes]:
    """Confusion matrix and feature importances, logged to MLflow and returned as PNG bytes."""
    figures = {
        "confusion_matrix": plots.confusion_matrix(
            training.confusion_matrix(predictions), training.CLASS_NAMES
        ),
        "feature_importances": plots.feature_importances(training.feature_importances(model)),
    }
    pictures = {}
    for name, figure in figures.items():
        log_figure(figure, f"{name}.png")
        pictures[name] = plots.to_png(figure)
    return pictures
