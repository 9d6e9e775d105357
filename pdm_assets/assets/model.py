"""The model: a Spark ML pipeline per monthly cutoff, tracked and registered in MLflow."""

from collections.abc import Iterator
from dataclasses import fields
from datetime import datetime
from functools import partial

import dagster as dg
from dagster_mlflow import end_mlflow_on_run_finished
from dagster_mlflow.resources import MlFlow
from mlflow import active_run, log_figure
from pydantic import Field
from pyspark.ml import PipelineModel
from pyspark.sql import DataFrame

from pdm_assets import decision, explain, plots, training
from pdm_assets.fleet import Fleet
from pdm_assets.partitions import GraphPartitions, partition_window
from pdm_assets.registry import ModelRegistry
from pdm_assets.spark import StepLauncherParam
from pdm_assets.timewindow import midnight

MODEL_GROUP = "model"
QUALITY_GATE = "quality_gate"
NO_CHAMPION_COMPARISON = (
    "not compared: no champion, or one trained after this cutoff, or one of this cutoff with "
    "another validation window"
)


class ModelConfig(dg.Config):
    """Hyperparameters, validation, decision policy and quality gate of the failure model.

    The defaults were chosen on validation over simulated fleets (benchmarks/model_quality.py,
    benchmarks/model_selection.py); the README's "Model and gate" section has the figures.
    """

    classifier: training.Classifier = Field(
        default="random_forest",
        description="Spark ML learner: random_forest, gbt_one_vs_rest (one boosted binary "
        "model per class) or decision_tree.",
    )
    num_trees: int = Field(default=40, description="Trees in the forest.")
    max_depth: int = Field(default=15, description="Maximum depth of each tree of the forest.")
    feature_subset_strategy: str = Field(
        default="sqrt", description="Features considered per split (Spark's featureSubsetStrategy)."
    )
    subsampling_rate: float = Field(default=0.632, description="Share of rows sampled per tree.")
    min_instances_per_node: int = Field(
        default=20,
        description="Minimum rows per leaf: leaves of a few rows give probabilities of 0 or 1, "
        "which no threshold can rank.",
    )
    class_weighting: training.ClassWeighting = Field(
        default="sqrt_balanced",
        description="Row weights per class: none, sqrt_balanced (the square root of balanced) or "
        "balanced (n / (k n_c)). The decision policy's thresholds, not the weights, set how "
        "often it alerts.",
    )
    gbt_iterations: int = Field(default=30, description="gbt_one_vs_rest: boosting rounds.")
    gbt_max_depth: int = Field(default=5, description="gbt_one_vs_rest: depth of each tree.")
    gbt_step_size: float = Field(default=0.2, description="gbt_one_vs_rest: learning rate.")
    validation_days: int = Field(
        default=21,
        description="Days of observations before cutoff - horizon held out for validation.",
    )
    refit_on_all: bool = Field(
        default=True,
        description="After validating, refit on every labelled row before the cutoff.",
    )
    seed: int = Field(default=42, description="Random seed of the classifier.")
    decision_strategy: decision.Strategy = Field(
        default="max_f1",
        description="How the alert thresholds are fitted on validation: max_f1 (each "
        "component's F1), precision_target, or daily_top_k (an alert budget per day).",
    )
    precision_target: float = Field(
        default=0.5, description="precision_target: the validation precision each threshold needs."
    )
    daily_alert_budget: int = Field(
        default=10, description="daily_top_k: machines that may alert per day."
    )
    min_validation_failures: int = Field(
        default=10,
        description="A component's cut is fitted on validation only with this many distinct "
        "failures of it there (else it gets the budget cut); the quality gate judges a "
        "component only with this many in the validated fit's training rows and in validation.",
    )
    alert_budget_ratio: float = Field(
        default=0.5,
        description="The budget cut alerts this multiple of a component's base rate (its share "
        "of labelled rows) of the shipped model's scores of the recent, not yet labelled rows.",
    )
    cross_fit_folds: int = Field(
        default=5,
        description="Where the validation window holds fewer than min_validation_failures "
        "failures per component on average (a small fleet), the cuts are fitted and the gate "
        "judges on every labelled row scored by this many fits that never saw its machine; 1 "
        "turns it off.",
    )
    max_alerts_per_failure: float = Field(
        default=1.0,
        description="A validated cut alerts at most this many validation rows per failure row "
        "of its component (it is raised until it does).",
    )
    min_pr_auc_lift: float = Field(
        default=2.0,
        description="Quality gate: macro PR-AUC (over components with validation failures) must "
        "reach this multiple of their mean base rate, the PR-AUC of a ranking by chance.",
    )
    champion_tolerance: float = Field(
        default=0.02,
        description="Quality gate: how much lower than the champion's macro PR-AUC, on "
        "validation rows neither model trained on, the new version may score.",
    )

    def params(self) -> training.ClassifierParams:
        """The classifier's hyperparameters: every ClassifierParams field this config sets."""
        names = {field.name for field in fields(training.ClassifierParams)}
        return training.ClassifierParams(**self.model_dump(include=names))

    def decision_params(self) -> training.DecisionParams:
        return training.DecisionParams(
            strategy=self.decision_strategy,
            precision_target=self.precision_target,
            daily_alert_budget=self.daily_alert_budget,
            min_validation_failures=self.min_validation_failures,
            budget_ratio=self.alert_budget_ratio,
            max_alerts_per_failure=self.max_alerts_per_failure,
            cross_fit_folds=self.cross_fit_folds,
        )


def metrics_table(metrics: dict[str, dict[str, float]]) -> str:
    lines = [
        "| component | precision | recall | F1 | PR-AUC | base rate | support |",
        "|---|---|---|---|---|---|---|",
    ]
    for component, values in metrics.items():
        lines.append(
            f"| {component} | {values['precision']:.3f} | {values['recall']:.3f} | "
            f"{values['f1']:.3f} | {values['pr_auc']:.3f} | {values['base_rate']:.4f} "
            f"| {int(values['support'])} |"
        )
    return "\n".join(lines)


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


def build_model_asset(partitions: GraphPartitions) -> dg.AssetsDefinition:
    fleet = partitions.fleet
    horizon_hours = fleet.horizon_hours

    @dg.asset(
        group_name=MODEL_GROUP,
        description=(
            "A Spark ML pipeline (random forest by default) trained on labelled rows with "
            "t + H <= cutoff, the first day of the partition's month; validated on the last "
            "weeks before the cutoff with a horizon gap, where the decision policy (per-component "
            "alert thresholds) is fitted; logged to MLflow with its policy and registered as a "
            "new version tagged with its cutoff, thresholds and the fleet description's "
            f"fingerprint. Classes: {', '.join(fleet.class_names)}."
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
                    "The new version is used for its month (and becomes champion) only if its "
                    "macro PR-AUC over the components with validation failures reaches "
                    "min_pr_auc_lift x their mean base rate, and is not worse than the "
                    "champion's on validation rows neither trained on (within "
                    "champion_tolerance)."
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
        rows = training.training_rows(
            machine_features, failure_labels, cutoff, horizon_hours
        ).cache()
        try:
            outcome = training.train_and_validate(
                rows,
                cutoff,
                horizon_hours,
                config.validation_days,
                config.params(),
                config.decision_params(),
                config.refit_on_all,
                fleet,
                recent=training.rows_unseen_by(machine_features, cutoff, horizon_hours),
            )
        except training.NotEnoughHistoryError as error:
            raise dg.Failure(description=str(error)) from error
        comparison = _compare_with_champion(model_registry, outcome, cutoff, config, fleet)
        champion, challenger_score = comparison if comparison else (None, None)
        gate = training.quality_gate(
            outcome.metrics,
            config.min_pr_auc_lift,
            champion,
            challenger_score,
            config.champion_tolerance,
            outcome.failures,
            config.min_validation_failures,
        )
        active = active_run()
        assert active is not None, "the mlflow resource starts a run for every Dagster run"
        abandoned = model_registry.end_abandoned_runs(
            active.info.experiment_id, active.info.run_id, partial(_run_is_over, context.instance)
        )
        if abandoned:
            context.log.warning(f"marked {len(abandoned)} MLflow runs of dead Dagster runs KILLED")
        version = model_registry.record_training(
            outcome,
            gate,
            cutoff.date(),
            context.run_id,
            context.partition_key,
            context.asset_key.to_user_string(),
            {**config.model_dump(), "horizon_hours": horizon_hours, "cutoff": str(cutoff.date())},
            fleet,
            typical=explain.typical_values(rows, fleet),
        )
        pictures = model_pictures(outcome.validated_model, outcome.predictions, fleet)
        rows.unpersist()
        outcome.predictions.unpersist()
        run_id = active.info.run_id
        yield dg.MaterializeResult(
            metadata={
                "cutoff": cutoff.date().isoformat(),
                "training_rows": outcome.train_rows,
                "validation_rows": outcome.validation_rows,
                "refit_rows": outcome.refit_rows,
                "metrics": dg.MetadataValue.md(metrics_table(outcome.metrics)),
                "decision_policy": dg.MetadataValue.md(
                    f"strategy: {outcome.policy.strategy}\n\n{outcome.policy.table()}"
                ),
                **expected_metadata(outcome.policy),
                "validation_failures": dg.MetadataValue.json(outcome.failures),
                "evaluation": outcome.evaluation,
                "macro_f1": training.macro(outcome.metrics, "f1"),
                "fleet": f"{fleet.name} ({fleet.fingerprint})",
                "macro_pr_auc": gate.macro_pr_auc,
                "model_name": model_registry.model_name,
                "model_version": int(version.version),
                "passed_gate": gate.passed,
                "mlflow_run_id": run_id,
                "mlflow_run": dg.MetadataValue.url(
                    model_registry.run_url(active.info.experiment_id, run_id)
                ),
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
            # A version too little evidence could judge is used, and the check warns.
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
                "model_version": int(version.version),
            },
        )

    return failure_model


def _compare_with_champion(
    registry: ModelRegistry,
    outcome: training.TrainingOutcome,
    cutoff: datetime,
    config: ModelConfig,
    fleet: Fleet,
) -> tuple[training.ChampionScore, float] | None:
    """Champion and challenger macro PR-AUC on validation rows neither model trained on.

    A champion of the same month saw every validation row in its refit; its own held-out score
    on the same validation window (same cutoff and validation days) is the fair comparison.
    """
    champion = registry.champion()
    # A champion of another fleet shape cannot score these rows: no comparison to make.
    if champion is None or registry.fleet_fingerprint(champion) != fleet.fingerprint:
        return None
    recorded = registry.recorded_validation(champion)
    champion_cutoff = midnight(recorded.cutoff)
    if champion_cutoff < cutoff:
        return training.compare_with_champion(
            outcome,
            registry.load(champion.version),
            champion.version,
            champion_cutoff,
            fleet.horizon_hours,
            fleet,
        )
    if (
        champion_cutoff == cutoff
        and recorded.validation_days == config.validation_days
        and recorded.macro_pr_auc is not None
    ):
        score = training.ChampionScore(
            champion.version,
            recorded.macro_pr_auc,
            outcome.validation_rows,
            "of the same validation window (both validated fits)",
        )
        return score, training.macro(outcome.metrics, "pr_auc")
    return None


def _run_is_over(instance: dg.DagsterInstance, run_id: str) -> bool:
    run = instance.get_run_by_id(run_id)
    return run is None or run.is_finished


def model_pictures(model: PipelineModel, predictions: DataFrame, fleet: Fleet) -> dict[str, bytes]:
    """Confusion matrix and feature importances, logged to MLflow and returned as PNG bytes."""
    figures = {
        "confusion_matrix": plots.confusion_matrix(
            training.confusion_matrix(predictions, fleet=fleet), fleet.class_names
        ),
        "feature_importances": plots.feature_importances(training.feature_importances(model)),
    }
    pictures = {}
    for name, figure in figures.items():
        log_figure(figure, f"{name}.png")
        pictures[name] = plots.to_png(figure)
    return pictures
