"""The registry's publish sequence and the scoring loop over months, on a tiny trained model and
a sqlite MLflow registry."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path

import mlflow
import pytest
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from pdm_assets.adapters.mlflow_registry import FleetMismatchError, ModelRegistry
from pdm_assets.core import scoring, training
from pdm_assets.core.fleet import DEFAULT_FLEET, FLEETS_DIR, load_fleet
from pdm_assets.core.timewindow import Window
from pdm_assets.defs.model.config import ModelConfig
from pdm_assets.defs.model.publish import RunIdentity, publish_version
from pdm_assets.defs.scoring.months import score_months
from pdm_assets_tests.support.learnable import labelled_history

CUTOFF = datetime(2015, 3, 1, tzinfo=UTC)
# Tiny trees on four machines; no PR-AUC floor, so the gate passes on the evidence alone.
CONFIG = ModelConfig(
    num_trees=3, max_depth=3, min_instances_per_node=1, cross_fit_folds=2, min_pr_auc_lift=0.0
)


def _publish(
    registry: ModelRegistry, outcome: training.TrainingOutcome, run_id: str, dead: set[str]
) -> object:
    with mlflow.start_run() as run:
        identity = RunIdentity(
            run_id, "2015-03-01", "failure_model", run.info.experiment_id, run.info.run_id
        )
        return publish_version(
            registry, outcome, CUTOFF, CONFIG, DEFAULT_FLEET, identity, dead.__contains__, {}
        )


@pytest.fixture
def tracking_left_as_found() -> Iterator[None]:
    """This test points MLflow's process-wide tracking at its own store; later tests must not
    log there."""
    uri = mlflow.get_tracking_uri()
    yield
    while mlflow.active_run() is not None:
        mlflow.end_run()
    mlflow.set_tracking_uri(uri)


@pytest.mark.usefixtures("tracking_left_as_found")
def test_versions_are_judged_against_the_champion_and_score_their_months(
    spark: SparkSession, tmp_path: Path
) -> None:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    registry = ModelRegistry(tracking_uri=uri, model_name="pumps")
    registry.client()  # points mlflow at the sqlite store
    # The model's files under tmp_path, not in ./mlruns of the working directory.
    artifacts = (tmp_path / "artifacts").as_uri()
    mlflow.set_experiment(experiment_id=mlflow.create_experiment("publish", artifacts))
    rows = labelled_history(spark).cache()
    outcome = training.train_and_validate(
        rows,
        CUTOFF,
        DEFAULT_FLEET.horizon_hours,
        CONFIG.validation_days,
        CONFIG.params(),
        CONFIG.decision_params(),
        CONFIG.refit_on_all,
        DEFAULT_FLEET,
    )
    # A Dagster run that died with its MLflow run still open: the next publish closes it.
    with mlflow.start_run() as orphan:
        mlflow.set_tag("dagster_run_id", "dead-run")
    client = registry.client()
    client.update_run(orphan.info.run_id, status="RUNNING")

    first = _publish(registry, outcome, "run-1", {"dead-run"})
    assert str(first.version.version) == "1"  # type: ignore[attr-defined]
    assert first.gate.passed and first.gate.champion is None  # type: ignore[attr-defined]
    assert first.abandoned_runs == [orphan.info.run_id]  # type: ignore[attr-defined]
    assert client.get_run(orphan.info.run_id).info.status == "KILLED"
    champion = registry.champion()
    assert champion is not None and str(champion.version) == "1"

    # Retrained on the same cutoff: compared with v1's own score of the same validation window.
    second = _publish(registry, outcome, "run-2", set())
    gate = second.gate  # type: ignore[attr-defined]
    assert gate.champion is not None and str(gate.champion.version) == "1"
    assert gate.champion.basis == "of the same validation window (both validated fits)"
    assert gate.passed and str(registry.champion().version) == "2"  # type: ignore[union-attr]

    # One row of machines 1 and 2 on each side of a month's end: March by v2 (its own cutoff),
    # April, with no model of its own, by the same version.
    window = Window.of_days(date(2015, 3, 31), date(2015, 4, 2))
    months = scoring.months_of(window)
    versions = registry.versions_for_months([month for month, _ in months])
    features = (
        rows.drop("label", "hours_to_failure", "censored")
        .dropDuplicates(["machine_id"])
        .where(F.col("machine_id") <= 2)
        .withColumn("datetime", F.lit(datetime(2015, 3, 31, 12, tzinfo=UTC)))
        .withColumn("date", F.to_date("datetime"))
    )
    april = features.withColumn("datetime", F.lit(datetime(2015, 4, 1, 12, tzinfo=UTC)))
    scored = score_months(registry, months, versions, features.unionByName(april), DEFAULT_FLEET)
    assert sorted(scored.policies) == [date(2015, 3, 1), date(2015, 4, 1)]
    assert scored.earlier == {"2015-04-01": "v2 (cutoff 2015-03-01)"}
    assert {row["model_version"] for row in scored.scores.collect()} == {2}
    assert scored.scores.count() == 4
    # A fleet of another shape cannot be scored by this model.
    engines = load_fleet(FLEETS_DIR / "engines.toml")
    with pytest.raises(FleetMismatchError):
        score_months(registry, months, versions, features, engines)
    rows.unpersist()
