"""Scores: every machine at every observation time of the day, by the model of the day's month."""

from collections.abc import Iterator

import dagster as dg
from pyspark.sql import DataFrame

from pdm_assets.adapters.mlflow_registry import FleetMismatchError, ModelRegistry
from pdm_assets.adapters.spark import StepLauncherParam
from pdm_assets.core import scoring
from pdm_assets.core.explain import REASONS_TYPE
from pdm_assets.core.fleet import Fleet
from pdm_assets.defs.instance_config import WAREHOUSE_POOL
from pdm_assets.defs.metadata import column_schema
from pdm_assets.defs.partitions import GraphPartitions, partition_window
from pdm_assets.defs.scoring.checks import (
    EVERY_ACTIVE_MACHINE_SCORED,
    EVERY_ALERT_EXPLAINED,
    PROBABILITIES_VALID,
    score_results,
    scores_page,
    skipped_results,
)
from pdm_assets.defs.scoring.months import score_months, skip_reason, unscored_note

SCORING_GROUP = "scoring"


def score_schema(fleet: Fleet) -> dg.TableSchema:
    types = {
        "machine_id": "int",
        "datetime": "timestamp",
        "predicted_component": "int",
        **{name: "double" for name in fleet.probability_columns},
        "failure_probability": "double",
        "alert": "boolean",
        "alert_component": "int",
        "alert_component_name": "string",
        "alert_threshold": "double",
        "alert_reasons": REASONS_TYPE,
        "days_since_replacement": "double",
        "model_name": "string",
        "model_version": "int",
        "model_cutoff": "date",
        "date": "date",
    }
    return column_schema(types)


def build_scores_asset(partitions: GraphPartitions) -> dg.AssetsDefinition:
    fleet = partitions.fleet
    components = ", ".join(fleet.component_names)

    @dg.asset(
        pool=WAREHOUSE_POOL,
        group_name=SCORING_GROUP,
        description=(
            f"For each machine and observation time: one probability per class (none, "
            f"{components}), the probability of any failure, the alert and its component (the "
            "1-based index of the declared component, 0 for none, and its name) chosen by the "
            "decision policy stored with the model version (the model of the day's month, or "
            "the last one before it that passed its gate), and that version. Skipped, with the "
            "reason, when a month of the range has no such model; fails when that model was "
            "trained on another fleet description."
        ),
        metadata={"dagster/column_schema": score_schema(fleet)},
        partitions_def=partitions.daily,
        backfill_policy=dg.BackfillPolicy.single_run(),
        io_manager_key="warehouse_io_manager",
        kinds={"spark", "mlflow", "parquet"},
        ins={"machine_features": dg.AssetIn()},
        deps=[dg.AssetDep("failure_model", partition_mapping=partitions.same_month)],
        output_required=False,
        check_specs=[
            dg.AssetCheckSpec(
                PROBABILITIES_VALID,
                asset="machine_scores",
                description=(
                    "Every probability in [0, 1], those of a row sum to 1, and a row alerts "
                    "exactly when it names a component."
                ),
            ),
            dg.AssetCheckSpec(
                EVERY_ACTIVE_MACHINE_SCORED,
                asset="machine_scores",
                description="Every machine with a feature row has a score at that time.",
            ),
            dg.AssetCheckSpec(
                EVERY_ALERT_EXPLAINED,
                asset="machine_scores",
                description=(
                    "Every alert carries its reasons: the features that added most to its "
                    "component's probability (exact for the forest; the boosted option has none)."
                ),
            ),
        ],
    )
    def machine_scores(
        context: dg.AssetExecutionContext,
        step_launcher: StepLauncherParam,
        model_registry: ModelRegistry,
        machine_features: DataFrame,
    ) -> Iterator[dg.Output[DataFrame] | dg.AssetCheckResult | dg.AssetObservation]:
        window = partition_window(context.partition_time_window)
        months = scoring.months_of(window)
        versions = model_registry.versions_for_months([month for month, _ in months])
        missing = [month.isoformat() for month, version in versions.items() if version is None]
        name = model_registry.model_name
        if len(missing) == len(versions):
            reason = skip_reason(missing, name, window)
            context.log.warning(reason)
            yield dg.AssetObservation(
                asset_key="machine_scores",
                partition=context.partition_key if len(window.days) == 1 else None,
                metadata={"skip_reason": reason},
            )
            yield from skipped_results(reason)
            return
        # Months without any model before them stay unscored (their days are written empty,
        # and the check says so); the others are scored.
        unscored = unscored_note(missing, name)
        if missing:
            context.log.warning(f"not scored: {unscored}")
        try:
            scored = score_months(model_registry, months, versions, machine_features, fleet)
        except FleetMismatchError as error:
            raise dg.Failure(description=str(error)) from error
        # Months whose own model failed its gate (or was not trained) score with the last good
        # one before them; the page says so.
        if scored.earlier:
            context.log.warning(f"scored with the model of an earlier month: {scored.earlier}")
        summary = scoring.score_summary(scored.scores, machine_features, fleet)
        used = {month.isoformat(): int(v.version) for month, v in versions.items() if v}
        page = scores_page(window, summary, scored, used, unscored)
        yield dg.Output(scored.scores, metadata=page)
        yield from score_results(summary, scored, unscored, bool(missing))

    return machine_scores
