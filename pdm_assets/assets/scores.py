"""Scores: every machine at every observation time of the day, by the model of the day's month."""

from collections.abc import Iterator
from functools import reduce

import dagster as dg
from pyspark.sql import DataFrame

from pdm_assets import plots, scoring
from pdm_assets.assets.schemas import column_schema
from pdm_assets.explain import REASONS_TYPE, Explainer
from pdm_assets.fleet import Fleet
from pdm_assets.instance_config import WAREHOUSE_POOL
from pdm_assets.partitions import GraphPartitions, partition_window
from pdm_assets.registry import FleetMismatchError, ModelRegistry, cutoff_of
from pdm_assets.spark import StepLauncherParam

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
                "probabilities_valid",
                asset="machine_scores",
                description=(
                    "Every probability in [0, 1], those of a row sum to 1, and a row alerts "
                    "exactly when it names a component."
                ),
            ),
            dg.AssetCheckSpec(
                "every_active_machine_scored",
                asset="machine_scores",
                description="Every machine with a feature row has a score at that time.",
            ),
            dg.AssetCheckSpec(
                "every_alert_explained",
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
        if len(missing) == len(versions):
            reason = (
                f"skipped: no registered {model_registry.model_name} version for cutoff "
                f"{', '.join(missing)} (or earlier) that passed its quality gate; materialise "
                "failure_model partition "
                f"{', '.join(missing)}, then score {window.days[0]}..{window.days[-1]} again"
            )
            context.log.warning(reason)
            yield dg.AssetObservation(
                asset_key="machine_scores",
                partition=context.partition_key if len(window.days) == 1 else None,
                metadata={"skip_reason": reason},
            )
            # Check outputs are required even when the asset is skipped: nothing was scored, so
            # no probability is invalid, and no active machine was scored.
            yield dg.AssetCheckResult(
                check_name="probabilities_valid", passed=True, metadata={"scored_rows": 0}
            )
            yield dg.AssetCheckResult(
                check_name="every_active_machine_scored",
                passed=False,
                severity=dg.AssetCheckSeverity.WARN,
                metadata={"skip_reason": reason},
            )
            yield dg.AssetCheckResult(
                check_name="every_alert_explained", passed=True, metadata={"alerts": 0}
            )
            return
        # Months without any model before them stay unscored (their days are written empty,
        # and the check below says so); the others are scored.
        unscored = (
            f"{', '.join(missing)}: no {model_registry.model_name} version of that cutoff or "
            "earlier passed its gate; their days hold no scores until one does and they are "
            "scored again"
            if missing
            else "none"
        )
        if missing:
            context.log.warning(f"not scored: {unscored}")
        scored_parts = []
        policies = {}
        explainers: dict[str, Explainer | None] = {}
        for month, part in months:
            version = versions[month]
            if version is None:
                continue
            try:
                model_registry.require_fleet(version, fleet)
            except FleetMismatchError as error:
                raise dg.Failure(description=str(error)) from error
            policies[month] = model_registry.load_policy(version)
            if version.version not in explainers:
                explainers[version.version] = model_registry.load_explainer(version)
            scored_parts.append(
                scoring.score_rows(
                    model_registry.load(version.version),
                    policies[month],
                    machine_features.where(part.contains("datetime")),
                    model_registry.model_name,
                    int(version.version),
                    cutoff_of(version),
                    fleet,
                    explainers[version.version],
                )
            )
        # Months whose own model failed its gate (or was not trained) score with the last good
        # one before them; the page says so.
        earlier = {
            month.isoformat(): f"v{v.version} (cutoff {cutoff_of(v)})"
            for month, v in versions.items()
            if v is not None and cutoff_of(v) != month
        }
        if earlier:
            context.log.warning(f"scored with the model of an earlier month: {earlier}")
        scores = reduce(DataFrame.unionByName, scored_parts).localCheckpoint(eager=True)
        summary = scoring.score_summary(scores, machine_features, fleet)
        yield dg.Output(
            scores,
            metadata={
                "time_range": f"{window.start.isoformat()} .. {window.end.isoformat()}",
                "model_versions": dg.MetadataValue.json(
                    {month.isoformat(): int(v.version) for month, v in versions.items() if v}
                ),
                "scored_with_an_earlier_months_model": dg.MetadataValue.json(earlier),
                "unscored_months": unscored,
                "rows": summary.rows,
                "machines_scored": summary.machines,
                "alerts": summary.alerts,
                "alerts_by_component": dg.MetadataValue.json(summary.alerts_by_component),
                "alerts_without_reasons": summary.alerts_without_reasons,
                "alert_rate": summary.alerts / summary.rows if summary.rows else 0.0,
                "decision_policy": dg.MetadataValue.md(
                    "\n\n".join(
                        f"**{month.isoformat()}** ({policy.strategy})\n\n{policy.table()}"
                        for month, policy in policies.items()
                    )
                ),
                "score_distribution": plots.markdown_image(
                    plots.to_png(plots.score_distribution(summary.failure_probabilities)),
                    "score distribution",
                ),
            },
        )
        yield dg.AssetCheckResult(
            check_name="probabilities_valid",
            passed=summary.invalid_rows == 0 and summary.inconsistent_alerts == 0,
            metadata={
                "invalid_rows": summary.invalid_rows,
                "inconsistent_alerts": summary.inconsistent_alerts,
            },
        )
        yield dg.AssetCheckResult(
            check_name="every_active_machine_scored",
            passed=summary.unscored_rows == 0,
            # Months without a model are a known gap, not a scoring fault.
            severity=dg.AssetCheckSeverity.WARN if missing else dg.AssetCheckSeverity.ERROR,
            metadata={"feature_rows_without_score": summary.unscored_rows, "unscored": unscored},
        )
        unexplainable = sorted(f"v{v}" for v, explainer in explainers.items() if explainer is None)
        yield dg.AssetCheckResult(
            check_name="every_alert_explained",
            passed=summary.alerts_without_reasons == 0,
            # A learner without exact reasons is a choice, not a fault.
            severity=dg.AssetCheckSeverity.WARN if unexplainable else dg.AssetCheckSeverity.ERROR,
            metadata={
                "alerts": summary.alerts,
                "alerts_without_reasons": summary.alerts_without_reasons,
                "versions_without_exact_reasons": ", ".join(unexplainable) or "none",
            },
        )

    return machine_scores
