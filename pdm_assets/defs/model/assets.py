"""The model: a Spark ML pipeline per monthly cutoff, tracked and registered in MLflow."""

from collections.abc import Iterator
from functools import partial

import dagster as dg
from dagster_mlflow import end_mlflow_on_run_finished
from dagster_mlflow.resources import MlFlow
from mlflow import active_run
from pyspark.sql import DataFrame

from pdm_assets.adapters.mlflow_registry import ModelRegistry
from pdm_assets.adapters.spark import StepLauncherParam
from pdm_assets.core import explain, training
from pdm_assets.defs.model.config import ModelConfig
from pdm_assets.defs.model.publish import RunIdentity, publish_version
from pdm_assets.defs.model.results import (
    QUALITY_GATE,
    model_page,
    model_pictures,
    quality_gate_result,
)
from pdm_assets.defs.partitions import GraphPartitions, partition_window

MODEL_GROUP = "model"


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
        run = _run_identity(context)
        is_over = partial(_run_is_over, context.instance)
        typical = explain.typical_values(rows, fleet)
        published = publish_version(
            model_registry, outcome, cutoff, config, fleet, run, is_over, typical
        )
        if published.abandoned_runs:
            context.log.warning(
                f"marked {len(published.abandoned_runs)} MLflow runs of dead Dagster runs KILLED"
            )
        pictures = model_pictures(outcome.validated_model, outcome.predictions, fleet)
        rows.unpersist()
        outcome.predictions.unpersist()
        page = model_page(
            outcome, published, model_registry, run, cutoff.date().isoformat(), pictures, fleet
        )
        yield dg.MaterializeResult(metadata=page)
        yield quality_gate_result(published)

    return failure_model


def _run_identity(context: dg.AssetExecutionContext) -> RunIdentity:
    active = active_run()
    assert active is not None, "the mlflow resource starts a run for every Dagster run"
    return RunIdentity(
        context.run_id,
        context.partition_key,
        context.asset_key.to_user_string(),
        active.info.experiment_id,
        active.info.run_id,
    )


def _run_is_over(instance: dg.DagsterInstance, run_id: str) -> bool:
    run = instance.get_run_by_id(run_id)
    return run is None or run.is_finished
