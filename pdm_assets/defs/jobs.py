"""The jobs, one per use, each named for what it runs.

* `ingest_days_job`: raw tables (and their quarantine), features and labels for a range of days,
  as one run; what a backfill from the UI or the benchmark starts.
* `train_model_job`: train, validate and register the model of one month (the schedule's job).
* `score_days_job`: score a range of days with each day's month model, and their work lists.
* `landed_day_job`: the sensor's run for one landed day: raw tables -> features -> labels ->
  scores -> the work list.
* `outcomes_job`: re-label a day whose horizon has passed and measure its outcomes.
"""

from __future__ import annotations

import dagster as dg

INGEST_JOB = "ingest_days_job"
TRAIN_JOB = "train_model_job"
SCORE_JOB = "score_days_job"
LANDED_DAY_JOB = "landed_day_job"
OUTCOMES_JOB = "outcomes_job"

_RAW = dg.AssetSelection.groups("raw")
_FEATURES_AND_LABELS = dg.AssetSelection.assets("machine_features", "failure_labels")

ingest_days_job = dg.define_asset_job(
    INGEST_JOB,
    selection=_RAW | _FEATURES_AND_LABELS,
    description="Raw tables with their quarantine, features and labels for a range of days.",
)
train_model_job = dg.define_asset_job(
    TRAIN_JOB,
    selection=dg.AssetSelection.assets("failure_model"),
    description="Train, validate and register the model of one month.",
)
_SCORES_AND_WORKLIST = dg.AssetSelection.assets("machine_scores", "maintenance_worklist")

score_days_job = dg.define_asset_job(
    SCORE_JOB,
    selection=_SCORES_AND_WORKLIST,
    description="Score a range of days with each day's month model, and their work lists.",
)
landed_day_job = dg.define_asset_job(
    LANDED_DAY_JOB,
    selection=_RAW | _FEATURES_AND_LABELS | _SCORES_AND_WORKLIST,
    description=(
        "One landed day (the landing sensor's run): machines (new ones are registered), raw "
        "tables -> features -> labels -> scores -> the work list."
    ),
)
outcomes_job = dg.define_asset_job(
    OUTCOMES_JOB,
    selection=dg.AssetSelection.assets("failure_labels", "model_outcomes"),
    description="Re-label a day whose horizon has passed and measure its outcomes.",
)

JOBS = [ingest_days_job, train_model_job, score_days_job, landed_day_job, outcomes_job]
