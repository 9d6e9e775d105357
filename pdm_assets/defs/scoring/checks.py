"""The machine_scores checks and page: from the score summary, or for a skipped range."""

from typing import Any

import dagster as dg

from pdm_assets.core.scoring import ScoreSummary
from pdm_assets.core.timewindow import Window
from pdm_assets.defs import metadata
from pdm_assets.defs.scoring.months import MonthsScored

PROBABILITIES_VALID = "probabilities_valid"
EVERY_ACTIVE_MACHINE_SCORED = "every_active_machine_scored"
EVERY_ALERT_EXPLAINED = "every_alert_explained"


def skipped_results(reason: str) -> list[dg.AssetCheckResult]:
    """Check outputs are required even when the asset is skipped: nothing was scored, so no
    probability is invalid, and no active machine was scored."""
    return [
        dg.AssetCheckResult(
            check_name=PROBABILITIES_VALID, passed=True, metadata={"scored_rows": 0}
        ),
        dg.AssetCheckResult(
            check_name=EVERY_ACTIVE_MACHINE_SCORED,
            passed=False,
            severity=dg.AssetCheckSeverity.WARN,
            metadata={"skip_reason": reason},
        ),
        dg.AssetCheckResult(check_name=EVERY_ALERT_EXPLAINED, passed=True, metadata={"alerts": 0}),
    ]


def score_results(
    summary: ScoreSummary, scored: MonthsScored, unscored: str, months_missing: bool
) -> list[dg.AssetCheckResult]:
    unexplainable = sorted(f"v{v}" for v, known in scored.explainers.items() if known is None)
    return [
        dg.AssetCheckResult(
            check_name=PROBABILITIES_VALID,
            passed=summary.invalid_rows == 0 and summary.inconsistent_alerts == 0,
            metadata={
                "invalid_rows": summary.invalid_rows,
                "inconsistent_alerts": summary.inconsistent_alerts,
            },
        ),
        dg.AssetCheckResult(
            check_name=EVERY_ACTIVE_MACHINE_SCORED,
            passed=summary.unscored_rows == 0,
            # Months without a model are a known gap, not a scoring fault.
            severity=dg.AssetCheckSeverity.WARN if months_missing else dg.AssetCheckSeverity.ERROR,
            metadata={"feature_rows_without_score": summary.unscored_rows, "unscored": unscored},
        ),
        dg.AssetCheckResult(
            check_name=EVERY_ALERT_EXPLAINED,
            passed=summary.alerts_without_reasons == 0,
            # A learner without exact reasons is a choice, not a fault.
            severity=dg.AssetCheckSeverity.WARN if unexplainable else dg.AssetCheckSeverity.ERROR,
            metadata={
                "alerts": summary.alerts,
                "alerts_without_reasons": summary.alerts_without_reasons,
                "versions_without_exact_reasons": ", ".join(unexplainable) or "none",
            },
        ),
    ]


def scores_page(
    window: Window,
    summary: ScoreSummary,
    scored: MonthsScored,
    model_versions: dict[str, int],
    unscored: str,
) -> dict[str, Any]:
    """The machine_scores range's metadata."""
    return {
        "time_range": f"{window.start.isoformat()} .. {window.end.isoformat()}",
        "model_versions": dg.MetadataValue.json(model_versions),
        "scored_with_an_earlier_months_model": dg.MetadataValue.json(scored.earlier),
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
                for month, policy in scored.policies.items()
            )
        ),
        "score_distribution": metadata.markdown_image(
            metadata.to_png(metadata.score_distribution(summary.failure_probabilities)),
            "score distribution",
        ),
    }
