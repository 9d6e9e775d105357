"""Assembles the Dagster definitions: assets, jobs, the sensor, the schedule and the resources of
the environment that settings.load_settings decides."""

from __future__ import annotations

import dagster as dg

from pdm_assets.defs.automation import build_landing_sensor, build_training_schedule
from pdm_assets.defs.features.assets import build_feature_assets
from pdm_assets.defs.jobs import JOBS, TRAIN_JOB, landed_day_job, outcomes_job
from pdm_assets.defs.model.assets import build_model_asset
from pdm_assets.defs.monitoring.assets import build_outcomes_asset
from pdm_assets.defs.partitions import GraphPartitions, build_partitions
from pdm_assets.defs.raw.assets import build_raw_assets
from pdm_assets.defs.resources import resources_for
from pdm_assets.defs.scoring.scores import build_scores_asset
from pdm_assets.defs.scoring.worklist import build_worklist_asset
from pdm_assets.defs.watchdog import build_run_worker_watchdog
from pdm_assets.settings import Settings, load_settings


def build_assets(partitions: GraphPartitions) -> list[dg.AssetsDefinition]:
    return [
        *build_raw_assets(partitions),
        *build_feature_assets(partitions),
        build_model_asset(partitions),
        build_scores_asset(partitions),
        build_worklist_asset(partitions),
        build_outcomes_asset(partitions),
    ]


def build_definitions(settings: Settings | None = None) -> dg.Definitions:
    settings = settings or load_settings()
    partitions = build_partitions(settings)
    return dg.Definitions(
        assets=build_assets(partitions),
        jobs=JOBS,
        sensors=[
            build_landing_sensor(
                settings.landing,
                partitions.daily,
                settings.fleet,
                [landed_day_job, outcomes_job],
            ),
            build_run_worker_watchdog(),
        ],
        schedules=[build_training_schedule(partitions.monthly, TRAIN_JOB)],
        resources=resources_for(settings),
        # One process and one Spark session for every step of a run: a JVM per step costs ~3x.
        executor=dg.in_process_executor,
    )


def environment_job(name: str) -> dg.JobDefinition:
    """A job of the definitions the environment gives *now*, for `dg.build_reconstructable_job`.

    The Databricks step launcher needs a reconstructable job, and the module-level `defs` is built
    once at import: a process that changes PDM_ENV afterwards must rebuild through this.
    """
    return build_definitions().resolve_job_def(name)


defs = build_definitions()
