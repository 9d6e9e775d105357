"""Training and scoring on a current Databricks workspace: the model in the Unity Catalog registry
and the step launcher's files on a Volume, on a workspace without a DBFS root. The fake workspace
on 127.0.0.1 serves the Jobs API, the Files API and the registry with its presigned URLs
(fake_databricks.py, fake_unity_catalog.py), so MLflow's own UcModelRegistryStore and
dagster-databricks' launcher run unchanged; MLflow tracking stays sqlite.

The ingest runs locally into the same warehouse (a file: URI of Parquet tables, which the fake
cluster reads too): test_databricks.py runs an ingest step on the fake cluster already.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from pathlib import Path

import dagster as dg
import mlflow
import pytest
from pyspark.sql import SparkSession

from pdm_assets.adapters.mlflow_registry import (
    CHAMPION_ALIAS,
    CUTOFF_TAG,
    GATE_TAG,
    ensure_experiment,
)
from pdm_assets.adapters.warehouse import TableWarehouse
from pdm_assets.core.timewindow import Window
from pdm_assets.defs.jobs import SCORE_JOB, TRAIN_JOB
from pdm_assets.settings import load_settings
from pdm_assets_tests.support import graph_runs
from pdm_assets_tests.support.environment import use_settings
from pdm_assets_tests.support.fake_databricks import FakeDatabricks, driver_environment
from pdm_assets_tests.support.models import SMALL_MODEL

pytestmark = pytest.mark.slow

TOKEN = "dapi-fake-unity-0123456789"
MODEL = "main.pdm.component_failure"
SCORED = "2015-02-02"
# The registry and the staging are under test, not the cuts: no cross-fitting (its extra fits).
QUICK_MODEL = {**SMALL_MODEL, "min_validation_failures": 0}


def _run(instance: dg.DagsterInstance, job: str, **kwargs: object) -> dg.ExecutionResult:
    reconstructable = dg.build_reconstructable_job(
        "pdm_assets.definitions", "environment_job", reconstructable_args=(job,)
    )
    with dg.execute_job(reconstructable, instance, raise_on_error=False, **kwargs) as result:  # type: ignore[arg-type]
        return result


def _failures(result: dg.ExecutionResult) -> str:
    texts = []
    for event in result.all_events:
        if event.is_step_failure:
            error = event.step_failure_data.error
            while error is not None:
                texts.append(error.message)
                error = error.cause
    return "\n".join(texts)


@contextmanager
def _no_mlflow_run_left() -> Iterator[None]:
    """The launching process initialises the step's resources too, so dagster-mlflow starts the
    training's MLflow run in this process (the cluster's step joins it by its tag) and leaves it
    active: ended here, or the next MLflow test of this pytest worker would log into it."""
    try:
        yield
    finally:
        for _ in range(3):  # the training's run, and a parent if one was nested
            if mlflow.active_run() is None:
                break
            mlflow.end_run()
        assert mlflow.active_run() is None


def test_unity_catalog_registry_and_volume_staging_train_and_score_on_the_cluster(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, spark: SparkSession
) -> None:
    home = tmp_path / "home"
    warehouse = (tmp_path / "warehouse").as_uri()
    settings = {
        "PDM_HOME": str(home),
        "PDM_SIM_MACHINES": "3",
        "PDM_SIM_DAYS": "33",
        "PDM_WAREHOUSE": warehouse,
        "PDM_WAREHOUSE_FORMAT": "parquet",
        "PDM_MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}",
        "PDM_MLFLOW_REGISTRY_URI": "databricks-uc",
        "PDM_MODEL_NAME": MODEL,
    }
    fake = FakeDatabricks(
        root=tmp_path / "fake",
        token=TOKEN,
        mode="no_dbfs_root",
        # A job's cluster reaches the workspace as the run's principal, with no token of ours.
        driver_env={**driver_environment(), "DATABRICKS_TOKEN": TOKEN},
    )
    with fake:
        monkeypatch.setenv("DATABRICKS_HOST", fake.url)
        monkeypatch.setenv("DATABRICKS_TOKEN", TOKEN)
        graph_runs.run_here(settings, ["ingest:2015-01-01:2015-02-02"])

        volume = fake.create_volume("main", "pdm", "staging")
        use_settings(
            monkeypatch,
            home,
            **{name: value for name, value in settings.items() if name != "PDM_HOME"},
            PDM_ENV="databricks",
            PDM_DATABRICKS_CLUSTER_ID="0123-fake",
            PDM_DATABRICKS_STORAGE="none",
            PDM_DATABRICKS_STAGING_PREFIX=f"{volume}/dagster",
            PDM_DATABRICKS_POLL_SECONDS="0.5",
            PDM_DATABRICKS_TIMEOUT_SECONDS="600",
            PDM_DATABRICKS_HOME=str(tmp_path / "cluster-home"),
        )
        monkeypatch.setenv("DAGSTER_HOME", str(home / "dagster"))
        (home / "dagster").mkdir(parents=True, exist_ok=True)
        # On Databricks the tracking server keeps the artefacts; this sqlite stand-in would put
        # them in ./mlruns of the working directory, where test_assets.py checks none appear.
        ensure_experiment(
            settings["PDM_MLFLOW_TRACKING_URI"],
            load_settings().mlflow_experiment,
            (tmp_path / "mlflow-artifacts").as_uri(),
        )
        with (
            dg.instance_for_test(temp_dir=str(home / "dagster")) as instance,
            _no_mlflow_run_left(),
        ):
            trained = _run(
                instance,
                TRAIN_JOB,
                tags={"dagster/partition": "2015-02-01"},
                run_config={"ops": {"failure_model": {"config": QUICK_MODEL}}},
            )
            assert trained.success, _failures(trained)
            scored = _run(
                instance,
                SCORE_JOB,
                tags={"dagster/partition": SCORED},
                asset_selection=[dg.AssetKey("machine_scores")],
            )
            assert scored.success, _failures(scored)

    registry = fake.unity_catalog
    # Registered through the presigned URLs, finalised, tagged by get_model_version's answer.
    assert registry.versions[(MODEL, "1")]["status"] == "READY"
    tags = registry.tags(MODEL, "1")
    assert tags[CUTOFF_TAG] == "2015-02-01"
    assert tags[GATE_TAG] == "passed"
    assert registry.aliases(MODEL) == {CHAMPION_ALIAS: "1"}
    files = registry.files(MODEL, "1")
    assert "MLmodel" in files and any(f.startswith("sparkml/stages/") for f in files), files
    # Scoring found the month's model by a search of one condition, whose results carry no tags.
    assert registry.searches and set(registry.searches) == {f"name='{MODEL}'"}

    # Both steps ran on the cluster, staged on the Volume; nothing touched DBFS.
    submits = fake.requests_to("/api/2.2/jobs/runs/submit")
    assert len(submits) == 2
    for submit in submits:
        python_file = submit.body["tasks"][0]["spark_python_task"]["python_file"]
        assert python_file.startswith(f"{volume}/dagster/"), python_file
    assert [r.path for r in fake.requests if r.path.startswith("/api/2.0/dbfs/")] == []
    assert all(
        run.process is not None and run.process.returncode == 0 for run in fake.runs.values()
    )

    day = date.fromisoformat(SCORED)
    scores = TableWarehouse(warehouse, "parquet").read_window(
        spark, "machine_scores", Window.of_days(day, date(2015, 2, 3))
    )
    rows = scores.select("machine_id", "model_version").collect()
    assert len(rows) == 3 * 2  # three machines, two observations a day
    assert {row["model_version"] for row in rows} == {1}
