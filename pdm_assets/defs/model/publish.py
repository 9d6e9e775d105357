"""The registry's publish sequence of a trained model: compare it with the champion, judge the
quality gate, close MLflow runs that dead Dagster runs left open, then record the version (which
takes the champion alias only if it passed)."""

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from mlflow.entities.model_registry import ModelVersion

from pdm_assets.adapters.mlflow_registry import ModelRegistry
from pdm_assets.core import training
from pdm_assets.core.fleet import Fleet
from pdm_assets.core.timewindow import midnight
from pdm_assets.defs.model.config import ModelConfig


@dataclass(frozen=True)
class RunIdentity:
    """Where the training ran: the Dagster run and its MLflow run."""

    dagster_run_id: str
    partition: str
    asset: str
    experiment_id: str
    mlflow_run_id: str


@dataclass(frozen=True)
class Published:
    gate: training.GateResult
    version: ModelVersion
    abandoned_runs: list[str]


def publish_version(
    registry: ModelRegistry,
    outcome: training.TrainingOutcome,
    cutoff: datetime,
    config: ModelConfig,
    fleet: Fleet,
    run: RunIdentity,
    run_is_over: Callable[[str], bool],
    typical: dict[str, str],
) -> Published:
    comparison = compare_with_champion(registry, outcome, cutoff, config, fleet)
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
    # A step that fails ends its MLflow run (dagster-mlflow's hook); a run worker killed with -9
    # cannot, so the next training cleans up after it.
    abandoned = registry.end_abandoned_runs(run.experiment_id, run.mlflow_run_id, run_is_over)
    version = registry.record_training(
        outcome,
        gate,
        cutoff.date(),
        run.dagster_run_id,
        run.partition,
        run.asset,
        {
            **config.model_dump(),
            "horizon_hours": fleet.horizon_hours,
            "cutoff": str(cutoff.date()),
        },
        fleet,
        typical=typical,
    )
    return Published(gate, version, abandoned)


def compare_with_champion(
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
