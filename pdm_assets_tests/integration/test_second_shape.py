"""A fleet of another shape end to end through the graph, with nothing but PDM_FLEET changed:
the shipped `engines` description (17 unbounded sensors read hourly, one component, no error log,
no maintenance log, no machine attributes, a 30 h horizon, a score after every reading),
simulated small, then ingested, trained, scored and measured."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import pytest
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from pdm_assets.adapters.warehouse import FolderWarehouse
from pdm_assets.core.fleet import FLEETS_DIR, load_fleet
from pdm_assets.definitions import build_definitions
from pdm_assets.defs.jobs import INGEST_JOB, OUTCOMES_JOB, SCORE_JOB, TRAIN_JOB
from pdm_assets.settings import Settings, load_settings
from pdm_assets_tests.support.environment import range_tags, use_settings
from pdm_assets_tests.support.models import SMALL_MODEL

pytestmark = pytest.mark.slow

ENGINES = load_fleet(FLEETS_DIR / "engines.toml")
MACHINES = 12
DAYS = 40  # 2015-01-01 .. 2015-02-09


@dataclass
class Run:
    settings: Settings
    results: dict[str, dg.ExecuteInProcessResult]

    def read(self, spark: SparkSession, name: str) -> DataFrame:
        return FolderWarehouse(Path(self.settings.warehouse)).read_all(spark, name)


@pytest.fixture(scope="module")
def engines(tmp_path_factory: pytest.TempPathFactory, spark: SparkSession) -> Iterator[Run]:
    home = tmp_path_factory.mktemp("engines-home")
    patch = pytest.MonkeyPatch()
    use_settings(
        patch,
        home,
        PDM_FLEET=str(FLEETS_DIR / "engines.toml"),
        PDM_SIM_MACHINES=str(MACHINES),
        PDM_SIM_DAYS=str(DAYS),
        PDM_PARTITIONS_END="2015-02-10",
    )
    settings = load_settings()
    defs = build_definitions(settings)
    results = {}
    with dg.DagsterInstance.ephemeral() as instance:

        def run(job: str, **kwargs: object) -> dg.ExecuteInProcessResult:
            result = defs.resolve_job_def(job).execute_in_process(
                instance=instance,
                **kwargs,  # type: ignore[arg-type]
            )
            assert result.success, job
            return result

        results["ingest"] = run(INGEST_JOB, tags=range_tags("2015-01-01", "2015-02-09"))
        results["train"] = run(
            TRAIN_JOB,
            partition_key="2015-02-01",
            run_config={"ops": {"failure_model": {"config": SMALL_MODEL}}},
        )
        results["score"] = run(SCORE_JOB, tags=range_tags("2015-02-01", "2015-02-07"))
        results["outcomes"] = run(OUTCOMES_JOB, partition_key="2015-02-03")
        yield Run(settings, results)
    patch.undo()


def test_only_the_tables_the_fleet_has_are_landed_and_ingested(engines: Run, spark) -> None:
    landing = Path(engines.settings.landing)
    assert sorted(p.name for p in (landing / "date=2015-01-05").iterdir()) == [
        "_COMPLETE",
        "failures.csv",
        "telemetry.csv",
    ]
    assert engines.read(spark, "raw_machines").columns == ["machine_id"]
    assert engines.read(spark, "raw_errors").count() == 0
    assert engines.read(spark, "raw_maintenance").count() == 0
    telemetry = engines.read(spark, "raw_telemetry")
    assert telemetry.columns == ["machine_id", "datetime", *ENGINES.sensors, "date"]
    assert engines.read(spark, "quarantine_telemetry").count() == 0


def test_features_and_labels_follow_the_description(engines: Run, spark) -> None:
    features = engines.read(spark, "machine_features")
    assert features.columns == ["machine_id", "datetime", *ENGINES.feature_columns, "date"]
    # An observation every hour for every machine that read in the hour before it.
    telemetry = engines.read(spark, "raw_telemetry")
    assert features.count() == telemetry.count()
    labels = engines.read(spark, "failure_labels")
    assert "fails_engine" in labels.columns
    assert {row["label"] for row in labels.select("label").distinct().collect()} <= {0, 1}
    failures = engines.read(spark, "raw_failures")
    assert failures.count() > 0, "the simulated fleet should fail at least once"
    positives = labels.where(F.col("label") == 1).count()
    # Each failure makes positives of the readings in the 30 h before it (fewer at the edges).
    assert 0 < positives <= failures.count() * ENGINES.horizon_hours


def test_every_observation_is_scored_with_the_components_names(engines: Run, spark) -> None:
    scores = engines.read(spark, "machine_scores")
    features = engines.read(spark, "machine_features").where(
        (F.col("date") >= "2015-02-01") & (F.col("date") <= "2015-02-07")
    )
    assert scores.count() == features.count() > 0
    assert [c for c in scores.columns if c.startswith("prob_")] == ["prob_none", "prob_engine"]
    rows = scores.select("prob_none", "prob_engine", "alert_component", "alert_component_name")
    for row in rows.collect():
        assert row["prob_none"] + row["prob_engine"] == pytest.approx(1.0)
        assert (row["alert_component"], row["alert_component_name"]) in {(0, None), (1, "engine")}
    checks = engines.results["score"].get_asset_check_evaluations()
    assert all(check.passed for check in checks), [c.check_name for c in checks if not c.passed]


def test_outcomes_are_measured_per_declared_component(engines: Run, spark) -> None:
    outcomes = engines.read(spark, "model_outcomes")
    assert [row["component"] for row in outcomes.collect()] == ["engine"]


def test_the_model_version_carries_the_fleets_fingerprint(engines: Run) -> None:
    [materialization] = engines.results["train"].asset_materializations_for_node("failure_model")
    assert materialization.metadata["fleet"].value == f"engines ({ENGINES.fingerprint})"
