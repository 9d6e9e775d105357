"""The databricks environment against a fake workspace on 127.0.0.1 (fake_databricks.py).

The real dagster-databricks launcher and databricks-sdk client run over HTTP; the fake runs the
uploaded step in a subprocess that plays the cluster's driver. Runs go through
`execute_job(build_reconstructable_job(...))`, as the launcher needs a reconstructable job.
"""

from __future__ import annotations

import gzip
import io
import json
import os
import pickle
import tempfile
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import dagster as dg
import pytest
from dagster._core.execution.plan.external_step import PICKLED_EVENTS_FILE_NAME
from dagster_databricks.databricks_pyspark_step_launcher import (
    CODE_ZIP_NAME,
    PICKLED_CONFIG_FILE_NAME,
)
from pyspark.sql import SparkSession

from pdm_assets.adapters.databricks import cluster_libraries, package_to_ship
from pdm_assets.adapters.warehouse import TableWarehouse
from pdm_assets.core.timewindow import Window
from pdm_assets.defs.jobs import INGEST_JOB
from pdm_assets.settings import load_databricks_settings
from pdm_assets_tests.support.fake_databricks import FakeDatabricks, driver_environment

TOKEN = "dapi-fake-0123456789abcdef"
CLUSTER = "0123-fake"
DAY = "2015-01-02"


@dataclass
class Workspace:
    fake: FakeDatabricks
    home: Path
    warehouse: str
    instance: dg.DagsterInstance

    def run(self, *assets: str, partition: str | None = DAY) -> dg.ExecutionResult:
        job = dg.build_reconstructable_job(
            "pdm_assets.definitions", "environment_job", reconstructable_args=(INGEST_JOB,)
        )
        tags = {"dagster/partition": partition} if partition else {}
        with dg.execute_job(
            job,
            self.instance,
            tags=tags,
            asset_selection=[dg.AssetKey(asset) for asset in assets],
            raise_on_error=False,
        ) as result:
            return result

    def failure_messages(self, result: dg.ExecutionResult) -> str:
        texts = []
        for event in result.all_events:
            if event.is_step_failure or event.event_type_value == "RUN_FAILURE":
                error = event.event_specific_data.error  # type: ignore[union-attr]
                while error is not None:
                    texts.append(error.message)
                    error = error.cause
        return "\n".join(texts)


def _workspace(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mode: str = "run", token: str = TOKEN
) -> Iterator[Workspace]:
    home = tmp_path / "home"
    (home / "dagster").mkdir(parents=True)
    warehouse = (tmp_path / "warehouse").as_uri()
    settings = {
        "PDM_ENV": "databricks",
        "PDM_HOME": str(home),
        "DAGSTER_HOME": str(home / "dagster"),
        "DATABRICKS_TOKEN": token,
        "PDM_WAREHOUSE": warehouse,
        # No Delta jars here (they come from Maven at run time); Parquet tables stand in.
        "PDM_WAREHOUSE_FORMAT": "parquet",
        "PDM_DATABRICKS_CLUSTER_ID": CLUSTER,
        "PDM_DATABRICKS_STORAGE": "adls2",
        "PDM_ADLS2_ACCOUNT": "pdmfake",
        "PDM_DATABRICKS_POLL_SECONDS": "0.5",
        "PDM_DATABRICKS_TIMEOUT_SECONDS": "300",
        "PDM_DATABRICKS_HOME": str(tmp_path / "cluster-home"),
        "PDM_MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}",
        "PDM_MLFLOW_REGISTRY_URI": f"sqlite:///{tmp_path / 'mlflow.db'}",
        "PDM_SIM_MACHINES": "3",
        "PDM_SIM_DAYS": "5",
    }
    for name in (
        "PDM_DATA_SOURCE",
        "PDM_CSV_DIR",
        "PDM_SPARK_MASTER",
        "PDM_DATABRICKS_NEW_CLUSTER",
    ):
        monkeypatch.delenv(name, raising=False)
    fake = FakeDatabricks(
        root=tmp_path / "fake",
        token=TOKEN,
        mode=mode,
        secrets={"pdm": {"adls2-account-key": "fake-storage-key"}},
        driver_env=driver_environment(),
    )
    with fake:
        monkeypatch.setenv("DATABRICKS_HOST", fake.url)
        for name, value in settings.items():
            monkeypatch.setenv(name, value)
        with dg.instance_for_test(temp_dir=str(home / "dagster")) as instance:
            yield Workspace(fake, home, warehouse, instance)


@pytest.fixture
def workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Workspace]:
    yield from _workspace(tmp_path, monkeypatch)


def test_settings_name_what_is_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DATABRICKS_HOST", raising=False)
    with pytest.raises(ValueError, match="DATABRICKS_HOST"):
        load_databricks_settings("dbfs:/pdm")
    monkeypatch.setenv("DATABRICKS_HOST", "https://adb-1.2.azuredatabricks.net")
    monkeypatch.delenv("PDM_ADLS2_ACCOUNT", raising=False)
    with pytest.raises(ValueError, match="PDM_ADLS2_ACCOUNT"):
        load_databricks_settings("abfss://c@acct.dfs.core.windows.net/pdm")
    monkeypatch.setenv("PDM_DATABRICKS_NEW_CLUSTER", "{not json")
    with pytest.raises(ValueError, match="PDM_DATABRICKS_NEW_CLUSTER must be JSON"):
        load_databricks_settings("dbfs:/pdm")
    monkeypatch.delenv("PDM_DATABRICKS_NEW_CLUSTER")
    monkeypatch.delenv("PDM_DATABRICKS_CLUSTER_ID", raising=False)
    on_s3 = load_databricks_settings("s3://bucket/pdm")
    assert on_s3.storage["s3"]["secret_scope"] == "pdm"
    assert on_s3.new_cluster is not None and on_s3.new_cluster["size"] == {"num_workers": 2}
    assert load_databricks_settings("dbfs:/pdm").storage == {}


def test_libraries_are_pinned_to_the_installed_versions() -> None:
    packages = [library["pypi"]["package"] for library in cluster_libraries()]
    names = {package.split("==")[0] for package in packages}
    assert {"dagster", "dagster-databricks", "dagster-pyspark", "mlflow"} <= names
    assert "dagster==" + dg.__version__ in packages
    # The runtime's own Spark must not be replaced; the UI is not needed on a cluster.
    assert not names & {"pyspark", "dagster-webserver", "pytest"}


def test_only_the_package_is_shipped_and_a_path_that_empties_the_zip_is_refused(
    tmp_path: Path,
) -> None:
    # pytest's temp folders match the launcher's ".*pytest.*" exclude pattern.
    with pytest.raises(ValueError, match="exclude pattern"):
        package_to_ship(tmp_path)
    shipped = package_to_ship()
    assert [child.name for child in shipped.iterdir()] == ["pdm_assets"]
    assert (shipped / "pdm_assets" / "defs" / "raw" / "assets.py").is_file()
    # The fleet descriptions ship with the code: the default is read at import.
    assert (shipped / "pdm_assets" / "core" / "fleets" / "azure_pdm.toml").is_file()
    assert package_to_ship() == shipped  # same code, same folder
    # ... in a folder only this user can write (issue 19, finding 9).
    root = shipped.parent.parent
    assert root.name == f"pdm_assets-databricks-{os.getuid()}"
    assert root.stat().st_mode & 0o777 == 0o700


def test_a_staging_folder_someone_else_made_is_not_used(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from pdm_assets.adapters.databricks import private_staging_root

    neutral = Path(tempfile.mkdtemp(prefix="neutral-", dir="/tmp"))
    monkeypatch.setattr(tempfile, "tempdir", str(neutral))
    planted = neutral / f"pdm_assets-databricks-{os.getuid()}"
    planted.mkdir(mode=0o777)
    planted.chmod(0o777)  # writable by anyone: whoever made it could change the code shipped
    with caplog.at_level("WARNING"):
        chosen = private_staging_root()
    assert chosen != planted and chosen.stat().st_mode & 0o777 == 0o700
    assert "is not a private folder of this user" in caplog.text
    planted.chmod(0o700)
    assert private_staging_root() == planted


def test_the_cluster_gets_the_fleet_description_itself_not_a_local_path(
    pdm_home: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from pdm_assets.adapters.databricks import forwarded_environment
    from pdm_assets.settings import load_settings

    described = tmp_path / "pumps.toml"
    described.write_text(
        '[telemetry]\nsensors = [{ name = "flow" }]\n[components]\nnames = ["seal"]\n'
    )
    monkeypatch.setenv("PDM_FLEET", str(described))
    monkeypatch.setenv("PDM_WAREHOUSE", "dbfs:/pdm")
    monkeypatch.setenv("DATABRICKS_HOST", "https://example.invalid")
    settings = load_settings()
    forwarded = forwarded_environment(settings, load_databricks_settings(settings.warehouse))
    assert "PDM_FLEET" not in forwarded
    # What the step on the cluster reads back is the same description.
    for name, value in forwarded.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("PDM_FLEET")
    assert load_settings().fleet == settings.fleet


def _texts_of_upload(payload: bytes) -> bytes:
    """An uploaded file as searchable bytes: zips unpacked, gzip and pickles opened."""
    if payload[:2] == b"PK":
        with zipfile.ZipFile(io.BytesIO(payload)) as archive:
            return b"".join(archive.read(name) for name in archive.namelist())
    if payload[:2] == b"\x1f\x8b":
        return gzip.decompress(payload)
    return payload


@pytest.mark.slow
def test_a_step_runs_on_the_fake_cluster_and_its_events_come_back(
    workspace: Workspace, spark: SparkSession, capfd: pytest.CaptureFixture[str]
) -> None:
    result = workspace.run(
        "raw_machines", "quarantine_machines", "raw_telemetry", "quarantine_telemetry"
    )
    assert result.success, workspace.failure_messages(result)
    fake = workspace.fake

    # One Databricks run per step, on the configured cluster, with the pinned libraries.
    submits = fake.requests_to("/api/2.2/jobs/runs/submit")
    assert len(submits) == 2
    for submit in submits:
        task = submit.body["tasks"][0]
        assert task["existing_cluster_id"] == CLUSTER
        assert "new_cluster" not in task
        assert task["libraries"] == cluster_libraries()
        python_task = task["spark_python_task"]
        assert python_task["python_file"].endswith("/databricks_step_main.py")
        assert len(python_task["parameters"]) == 3
        assert all(p.startswith("/dbfs/") for p in python_task["parameters"])

    # Uploads: the launcher's main, the pickled step and config, and a zip of pdm_assets only.
    uploaded = fake.uploaded()
    zips = [payload for path, payload in uploaded.items() if path.endswith(CODE_ZIP_NAME)]
    assert len(zips) == 2
    with zipfile.ZipFile(io.BytesIO(zips[0])) as archive:
        names = archive.namelist()
    assert "pdm_assets/definitions.py" in names
    assert all(name.startswith("pdm_assets/") for name in names), names
    configs = [
        payload for path, payload in uploaded.items() if path.endswith(PICKLED_CONFIG_FILE_NAME)
    ]
    remote_env = pickle.loads(configs[0]).env_variables
    assert remote_env["PDM_ENV"] == "databricks"
    assert remote_env["PDM_WAREHOUSE"] == workspace.warehouse
    assert "DATABRICKS_TOKEN" not in remote_env

    # Polling: the launcher asked for the run state until it terminated.
    assert len(fake.requests_to("/api/2.2/jobs/runs/get")) >= 2 * len(submits)
    assert all(
        run.process is not None and run.process.returncode == 0 for run in fake.runs.values()
    )
    # The cluster read the storage key from the secret scope, not from the payload.
    reads = [
        json.loads(line) for line in (fake.root / "secrets-read.jsonl").read_text().splitlines()
    ]
    assert {"scope": "pdm", "key": "adls2-account-key"} in reads

    # Replay: the materialisations and checks written on the cluster are in this run.
    events = [path for path in uploaded if path.endswith(PICKLED_EVENTS_FILE_NAME)]
    assert len(events) == 2
    materialization = workspace.instance.get_latest_materialization_event(
        dg.AssetKey("raw_telemetry")
    )
    assert materialization is not None and materialization.run_id == result.run_id
    assert materialization.asset_materialization is not None
    metadata = materialization.asset_materialization.metadata
    assert materialization.asset_materialization.partition == DAY
    written = TableWarehouse(workspace.warehouse, "parquet")
    one_day = Window.of_days(date(2015, 1, 2), date(2015, 1, 3))
    rows = written.read_window(spark, "raw_telemetry", one_day)
    assert metadata["rows"].value == rows.count() == 3 * 24
    check = workspace.instance.event_log_storage.get_latest_asset_check_execution_by_key(
        [dg.AssetCheckKey(dg.AssetKey("raw_telemetry"), "schema")]
    )
    assert check[dg.AssetCheckKey(dg.AssetKey("raw_telemetry"), "schema")].run_id == result.run_id

    # The token travels only in the Authorization header.
    for request in fake.requests:
        assert request.headers.get("Authorization") == f"Bearer {TOKEN}"
        assert TOKEN not in json.dumps(request.body) + json.dumps(request.query)
    for path, payload in uploaded.items():
        assert TOKEN.encode() not in _texts_of_upload(payload), path
    for run in fake.runs.values():
        assert run.log_path is not None and TOKEN not in run.log_path.read_text()
    logs = workspace.instance.all_logs(result.run_id)
    assert TOKEN not in "".join(str(entry) for entry in logs)
    captured = capfd.readouterr()
    assert TOKEN not in captured.out + captured.err


@pytest.mark.parametrize(
    ("mode", "token", "expected"),
    [
        ("run", "dapi-revoked", "Invalid access token"),
        ("forbidden", TOKEN, "no permission to use DBFS or jobs"),
        ("terminated_cluster", TOKEN, "was terminated. Reason: SPOT_INSTANCE_TERMINATION"),
        ("hang", TOKEN, "took more than 2s to complete"),
    ],
    ids=["401", "403", "terminated-cluster", "timeout"],
)
def test_workspace_failures_fail_the_step_with_the_reason(
    mode: str, token: str, expected: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for workspace in _workspace(tmp_path, monkeypatch, mode=mode, token=token):
        monkeypatch.setenv("PDM_DATABRICKS_TIMEOUT_SECONDS", "2")
        result = workspace.run("raw_machines", "quarantine_machines", partition=None)
        assert not result.success
        assert expected in workspace.failure_messages(result)
        submits = workspace.fake.requests_to("/api/2.2/jobs/runs/submit")
        if mode in ("run", "forbidden"):
            # Refused at the first upload: nothing was submitted.
            assert submits == []
        else:
            assert len(submits) == 1
        if mode == "hang":
            # The launcher gives up and cancels the Databricks run instead of leaving it running.
            cancels = workspace.fake.requests_to("/api/2.2/jobs/runs/cancel")
            assert [request.body["run_id"] for request in cancels] == [1001]


def test_a_workspace_without_a_dbfs_root_is_told_to_stage_on_a_volume(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for workspace in _workspace(tmp_path, monkeypatch, mode="no_dbfs_root"):
        result = workspace.run("raw_machines", "quarantine_machines", partition=None)
        assert not result.success
        messages = workspace.failure_messages(result)
        assert "could not stage step raw_machines on DBFS under /dagster_staging" in messages
        assert "Public DBFS root is disabled" in messages
        assert "PDM_DATABRICKS_STAGING_PREFIX=/Volumes/<catalog>/<schema>/<volume>" in messages
        assert workspace.fake.requests_to("/api/2.2/jobs/runs/submit") == []


def test_a_volume_staging_prefix_must_name_a_volume(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABRICKS_HOST", "https://adb-1.2.azuredatabricks.net")
    monkeypatch.setenv("PDM_DATABRICKS_STORAGE", "none")
    monkeypatch.setenv("PDM_DATABRICKS_STAGING_PREFIX", "/Volumes/main/pdm")
    with pytest.raises(ValueError, match="/Volumes/<catalog>/<schema>/<volume>/"):
        load_databricks_settings("abfss://x@y.dfs.core.windows.net/w")
    monkeypatch.setenv("PDM_DATABRICKS_STAGING_PREFIX", "/Volumes/main/pdm/staging/dagster")
    assert load_databricks_settings("abfss://x@y.dfs.core.windows.net/w").staging_prefix == (
        "/Volumes/main/pdm/staging/dagster"
    )


@pytest.mark.slow
def test_a_failing_remote_step_staged_on_a_volume_brings_its_error_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On a workspace without a DBFS root: the step, the code and the events go through the
    Files API to a Unity Catalog Volume, which the cluster reads at /Volumes."""
    empty = tmp_path / "no-csv-here"
    empty.mkdir()
    for workspace in _workspace(tmp_path, monkeypatch, mode="no_dbfs_root"):
        volume = workspace.fake.create_volume("main", "pdm", "staging")
        monkeypatch.setenv("PDM_DATABRICKS_STAGING_PREFIX", f"{volume}/dagster")
        monkeypatch.setenv("PDM_DATA_SOURCE", "csv")
        monkeypatch.setenv("PDM_CSV_DIR", str(empty))
        result = workspace.run("raw_machines", "quarantine_machines", partition=None)
        assert not result.success
        messages = workspace.failure_messages(result)
        assert f"no PdM_machines.csv or .csv.gz in {empty}" in messages
        # The failure was raised on the cluster (the driver's process) and replayed into this run.
        (run,) = workspace.fake.runs.values()
        assert run.process is not None
        failures = [event for event in result.all_events if event.is_step_failure]
        assert [event.pid for event in failures] == [run.process.pid]

        fake = workspace.fake
        assert [r.path for r in fake.requests if r.path.startswith("/api/2.0/dbfs/")] == []
        task = fake.requests_to("/api/2.2/jobs/runs/submit")[0].body["tasks"][0]
        python_task = task["spark_python_task"]
        step_folder = f"{volume}/dagster/{result.run_id}/raw_machines"
        assert python_task["python_file"] == f"{step_folder}/databricks_step_main.py"
        assert [p.rsplit("/", 1)[0] for p in python_task["parameters"]] == [step_folder] * 3
        files = fake.volume_files()
        for name in (CODE_ZIP_NAME, PICKLED_CONFIG_FILE_NAME, f"0_{PICKLED_EVENTS_FILE_NAME}"):
            assert f"{step_folder}/{name}" in files, sorted(files)
        # The events the launcher replayed are those the cluster wrote on the volume.
        downloads = [r for r in fake.requests if r.method == "GET" and "/fs/files/" in r.path]
        assert any(r.path.endswith(PICKLED_EVENTS_FILE_NAME) for r in downloads)
