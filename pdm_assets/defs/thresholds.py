"""The thresholds of the asset checks, in one typed config: each asset whose checks use one takes
it as its config, so the launchpad shows (and a run may set) the same fields with the same
defaults everywhere."""

import dagster as dg
from pydantic import Field


class CheckThresholds(dg.Config):
    max_quarantine_share: float = Field(
        default=0.01,
        description="raw tables' quarantine_share check: the largest share of the rows read that "
        "may be quarantined before the check warns.",
    )
    drift_alert: float = Field(
        default=0.5,
        description="model_outcomes: the standardised mean difference of a feature from the "
        "reference window that counts as drift (`drifting` on the page).",
    )


DEFAULT_THRESHOLDS = CheckThresholds()
