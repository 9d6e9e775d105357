"""The scoring loop over the months of a range: each month's rows by the model version the
registry names for it, with that version's decision policy and explainer."""

from dataclasses import dataclass
from datetime import date
from functools import reduce

from mlflow.entities.model_registry import ModelVersion
from pyspark.sql import DataFrame

from pdm_assets.adapters.mlflow_registry import ModelRegistry, cutoff_of
from pdm_assets.core import scoring
from pdm_assets.core.decision import DecisionPolicy
from pdm_assets.core.explain import Explainer
from pdm_assets.core.fleet import Fleet
from pdm_assets.core.timewindow import Window


@dataclass(frozen=True)
class MonthsScored:
    """What scoring a range by month produced."""

    scores: DataFrame
    policies: dict[date, DecisionPolicy]
    # Model version -> its explainer, None where the learner has no exact reasons.
    explainers: dict[str, Explainer | None]
    # Months scored with the last good model of an earlier month: "v3 (cutoff 2015-02-01)".
    earlier: dict[str, str]


def unscored_note(missing: list[str], model_name: str) -> str:
    """What the page says of months that no model can score."""
    if not missing:
        return "none"
    return (
        f"{', '.join(missing)}: no {model_name} version of that cutoff or earlier passed its "
        "gate; their days hold no scores until one does and they are scored again"
    )


def skip_reason(missing: list[str], model_name: str, window: Window) -> str:
    """Why a range none of whose months has a model is skipped, and what to do about it."""
    return (
        f"skipped: no registered {model_name} version for cutoff {', '.join(missing)} (or "
        "earlier) that passed its quality gate; materialise failure_model partition "
        f"{', '.join(missing)}, then score {window.days[0]}..{window.days[-1]} again"
    )


def score_months(
    registry: ModelRegistry,
    months: list[tuple[date, Window]],
    versions: dict[date, ModelVersion | None],
    features: DataFrame,
    fleet: Fleet,
) -> MonthsScored:
    """Score each month that has a version; raises FleetMismatchError for a version trained on
    another fleet description. At least one month must have a version."""
    parts = []
    policies: dict[date, DecisionPolicy] = {}
    explainers: dict[str, Explainer | None] = {}
    earlier: dict[str, str] = {}
    for month, part in months:
        version = versions[month]
        if version is None:
            continue
        registry.require_fleet(version, fleet)
        policies[month] = registry.load_policy(version)
        if version.version not in explainers:
            explainers[version.version] = registry.load_explainer(version)
        parts.append(
            scoring.score_rows(
                registry.load(version.version),
                policies[month],
                features.where(part.contains("datetime")),
                registry.model_name,
                int(version.version),
                cutoff_of(version),
                fleet,
                explainers[version.version],
            )
        )
        if cutoff_of(version) != month:
            earlier[month.isoformat()] = f"v{version.version} (cutoff {cutoff_of(version)})"
    if not parts:
        raise ValueError("no month of the range has a model version to score it")
    scores = reduce(DataFrame.unionByName, parts).localCheckpoint(eager=True)
    return MonthsScored(scores, policies, explainers, earlier)
