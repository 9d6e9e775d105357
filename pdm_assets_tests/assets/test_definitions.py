"""The definitions load in every environment and data source; settings fail with clear errors;
no Java gives a message saying what to install."""

import socket
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest

from pdm_assets.adapters.databricks import no_step_launcher
from pdm_assets.adapters.sources import CsvFolderSource, SimulatedFleetSource
from pdm_assets.adapters.spark import JavaNotFoundError, ensure_java, find_java
from pdm_assets.definitions import build_definitions
from pdm_assets.defs.resources import RESOURCES_BY_ENVIRONMENT
from pdm_assets.settings import ENVIRONMENTS, load_settings
from pdm_assets_tests.support.paths import REPO_ROOT, SAMPLE_DIR

EXPECTED_ASSETS = {
    "raw_machines",
    "quarantine_machines",
    "quarantine_telemetry",
    "quarantine_errors",
    "quarantine_maint",
    "quarantine_failures",
    "raw_telemetry",
    "raw_errors",
    "raw_maintenance",
    "raw_failures",
    "machine_features",
    "failure_labels",
    "failure_model",
    "machine_scores",
    "maintenance_worklist",
    "model_outcomes",
}


@pytest.mark.parametrize("environment", ENVIRONMENTS)
def test_definitions_load_in_every_environment(
    environment: str, pdm_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PDM_ENV", environment)
    if environment == "local":
        # The local environment runs on any master: here a standalone cluster's.
        monkeypatch.setenv("PDM_SPARK_MASTER", "spark://spark-master.invalid:7077")
    if environment == "databricks":
        monkeypatch.setenv("DATABRICKS_HOST", "https://adb-1.2.azuredatabricks.net")
        monkeypatch.delenv("DATABRICKS_TOKEN", raising=False)
        monkeypatch.setenv("PDM_WAREHOUSE", "abfss://pdm@pdmstore.dfs.core.windows.net/warehouse")
        monkeypatch.setenv("PDM_ADLS2_ACCOUNT", "pdmstore")
        monkeypatch.setenv("PDM_MODEL_NAME", "main.pdm.component_failure")

    # Loading must not need the cluster, the workspace or its token: nothing connects until a
    # run asks for Spark or launches a step.
    def no_network(*_: object) -> None:
        raise AssertionError("loading the definitions opened a network connection")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    defs = build_definitions()
    dg.Definitions.validate_loadable(defs)
    keys = {key.to_user_string() for key in defs.resolve_asset_graph().get_all_asset_keys()}
    assert keys == EXPECTED_ASSETS
    assert set(RESOURCES_BY_ENVIRONMENT) == set(ENVIRONMENTS)
    launcher = defs.resources["step_launcher"]
    if environment == "local":
        assert defs.resources["spark"].master == "spark://spark-master.invalid:7077"
    if environment == "databricks":
        assert defs.resources["spark"].master == ""
        assert defs.resources["warehouse"].table_format == "delta"
        assert defs.resources["model_registry"].registry_uri == "databricks-uc"
        assert launcher is not no_step_launcher
    else:
        assert launcher is no_step_launcher


def test_every_asset_has_a_description_and_a_group(pdm_home: Path) -> None:
    graph = build_definitions().resolve_asset_graph()
    for key in graph.get_all_asset_keys():
        node = graph.get(key)
        assert node.description, key
        assert node.group_name in {"raw", "features", "model", "scoring", "monitoring"}, key


def test_the_csv_source_is_chosen_by_environment(
    pdm_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert isinstance(build_definitions().resources["source"], SimulatedFleetSource)
    monkeypatch.setenv("PDM_DATA_SOURCE", "csv")
    monkeypatch.setenv("PDM_CSV_DIR", str(SAMPLE_DIR))
    source = build_definitions().resources["source"]
    assert isinstance(source, CsvFolderSource) and source.csv_dir == str(SAMPLE_DIR)


def test_workspace_file_loads_the_definitions_module() -> None:
    workspace = (REPO_ROOT / "workspace.yaml").read_text()
    assert "module_name: pdm_assets.definitions" in workspace


def test_settings_default_under_the_home_and_reject_bad_values(
    pdm_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = load_settings()
    assert settings.warehouse == str(pdm_home / "warehouse")
    assert settings.mlflow_tracking_uri == f"sqlite:///{pdm_home / 'mlflow' / 'mlflow.db'}"
    assert (settings.horizon_days, settings.sim_machines) == (7, 100)
    monkeypatch.setenv("PDM_SIM_MACHINES", "many")
    with pytest.raises(ValueError, match="PDM_SIM_MACHINES must be an integer"):
        load_settings()
    monkeypatch.delenv("PDM_SIM_MACHINES")
    monkeypatch.setenv("PDM_ENV", "mainframe")
    with pytest.raises(ValueError, match="PDM_ENV must be one of"):
        load_settings()
    monkeypatch.setenv("PDM_ENV", "cluster")
    with pytest.raises(ValueError, match=r"PDM_ENV=cluster is gone: .* set PDM_SPARK_MASTER"):
        load_settings()
    monkeypatch.setenv("PDM_ENV", "local")
    monkeypatch.setenv("PDM_SPARK_CONF", "[1, 2]")
    with pytest.raises(ValueError, match="PDM_SPARK_CONF must be a JSON object"):
        load_settings()
    monkeypatch.setenv("PDM_SPARK_CONF", '{"spark.executor.memory": "4g"}')
    monkeypatch.setenv("PDM_WAREHOUSE", "/shared/warehouse")
    clustered = load_settings()
    assert clustered.spark_conf == {"spark.executor.memory": "4g"}
    assert clustered.warehouse == "/shared/warehouse"
    monkeypatch.delenv("PDM_SPARK_CONF")
    monkeypatch.setenv("PDM_ENV", "local")
    monkeypatch.setenv("PDM_DATA_SOURCE", "csv")
    with pytest.raises(ValueError, match="needs PDM_CSV_DIR"):
        load_settings()


def test_settings_the_fleet_description_holds_now_say_where_they_live(
    pdm_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value, key in (
        ("PDM_SENSOR_RANGES", '{"vibration": [0, 300]}', "min and max of each sensor"),
        ("PDM_HORIZON_DAYS", "2", "horizon_hours"),
    ):
        monkeypatch.setenv(name, value)
        with pytest.raises(ValueError, match=rf"{name} is gone: .*\(.*{key}.*PDM_FLEET"):
            load_settings()
        monkeypatch.delenv(name)


def test_the_fleet_description_is_read_from_pdm_fleet(
    pdm_home: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    assert load_settings().fleet.name == "azure_pdm"
    described = tmp_path / "pumps.toml"
    described.write_text(
        'name = "pumps"\nhorizon_hours = 48\n[telemetry]\nsensors = [{ name = "flow" }]\n'
        '[components]\nnames = ["seal"]\n'
    )
    monkeypatch.setenv("PDM_FLEET", str(described))
    settings = load_settings()
    assert (settings.fleet.name, settings.horizon_days) == ("pumps", 2)
    scores = build_definitions(settings).resolve_assets_def("machine_scores")
    description = scores.descriptions_by_key[dg.AssetKey("machine_scores")]
    assert "(none, seal)" in description
    schema = scores.specs_by_key[dg.AssetKey("machine_scores")].metadata["dagster/column_schema"]
    assert [c.name for c in schema.columns if c.name.startswith("prob_")] == [
        "prob_none",
        "prob_seal",
    ]
    monkeypatch.setenv("PDM_FLEET", str(tmp_path / "missing.toml"))
    with pytest.raises(ValueError, match=r"missing\.toml: cannot read it"):
        load_settings()


def test_a_landing_folder_is_read_only_and_never_simulated_into(
    pdm_home: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from pdm_assets.adapters.sources import LandingFolderSource

    monkeypatch.setenv("PDM_LANDING", str(tmp_path / "producer"))
    with pytest.raises(ValueError, match="PDM_LANDING is a landing folder someone else fills"):
        load_settings()
    monkeypatch.setenv("PDM_DATA_SOURCE", "landing")
    settings = load_settings()
    source = RESOURCES_BY_ENVIRONMENT["local"](settings)["source"]
    assert type(source) is LandingFolderSource
    assert source.landing_dir == str(tmp_path / "producer") == settings.landing
    # The sensor watches the folder the source reads.
    sensor = build_definitions(settings).resolve_sensor_def("landing_sensor")
    assert str(tmp_path / "producer") in (sensor.description or "")


def test_missing_java_names_what_to_install(tmp_path: Path) -> None:
    with pytest.raises(JavaNotFoundError, match="openjdk-17"):
        find_java({"PATH": str(tmp_path)})
    with pytest.raises(JavaNotFoundError, match="JAVA_HOME"):
        find_java({"JAVA_HOME": str(tmp_path), "PATH": ""})


def test_an_old_java_is_refused(tmp_path: Path) -> None:
    fake = tmp_path / "bin" / "java"
    fake.parent.mkdir()
    fake.write_text("#!/bin/sh\necho 'openjdk version \"1.8.0_392\"' >&2\n")
    fake.chmod(0o755)
    with pytest.raises(JavaNotFoundError, match="Java 8; pyspark 4 needs Java 17"):
        ensure_java({"JAVA_HOME": str(tmp_path)})


def test_a_session_without_java_fails_before_py4j(tmp_path: Path) -> None:
    # A fresh interpreter, so no JVM from this test session is reused.
    script = (
        "from pdm_assets.adapters.spark import SparkResource, JavaNotFoundError\n"
        "try:\n"
        "    SparkResource().get_session()\n"
        "except JavaNotFoundError as error:\n"
        "    raise SystemExit(f'JAVA-MISSING: {error}')\n"
    )
    env = {"PATH": str(tmp_path), "HOME": str(tmp_path)}
    completed = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120
    )
    assert "JAVA-MISSING: Spark needs Java, and none was found" in completed.stderr
    assert "Py4J" not in completed.stderr and "Traceback" not in completed.stderr
    assert completed.returncode == 1


def test_a_tables_source_is_built_from_pdm_tables(
    pdm_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pdm_assets.adapters.table_source import TableSource

    monkeypatch.setenv("PDM_DATA_SOURCE", "tables")
    with pytest.raises(ValueError, match="PDM_DATA_SOURCE=tables needs PDM_TABLES"):
        load_settings()
    monkeypatch.setenv("PDM_TABLES", '{"telemetry": "main.plant.telemetry"}')
    source = RESOURCES_BY_ENVIRONMENT["local"](load_settings())["source"]
    assert isinstance(source, TableSource)
    monkeypatch.setenv("PDM_TABLES", '{"telemetri": "main.plant.telemetry"}')
    with pytest.raises(ValueError, match="'telemetri' is not a table"):
        RESOURCES_BY_ENVIRONMENT["local"](load_settings())


def test_the_spark_settings_never_show_in_what_the_ui_serves(
    pdm_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Finding 9 of issue 19: PDM_SPARK_CONF (where object-store keys go) was plain resource
    config, which the UI's GraphQL serves to anyone who can open it."""
    from dagster._core.remote_representation.external_data import RepositorySnap
    from dagster._serdes import serialize_value

    from pdm_assets.settings import parse_spark_conf

    monkeypatch.setenv("PDM_SPARK_CONF", '{"spark.hadoop.fs.s3a.secret.key": "s3cr3t-v4lue"}')
    defs = build_definitions()
    served = serialize_value(RepositorySnap.from_def(defs.get_repository_def()))
    assert "s3cr3t-v4lue" not in served
    assert "PDM_SPARK_CONF" in served  # the variable's name is shown instead
    # The runs still get the settings: the resource reads the variable when it starts.
    started = defs.resources["spark"].process_config_and_initialize()
    assert parse_spark_conf(started.conf_json) == {"spark.hadoop.fs.s3a.secret.key": "s3cr3t-v4lue"}


def test_dg_lists_and_checks_the_definitions_beside_the_workspace_file(pdm_home: Path) -> None:
    """`dg check defs` and `dg list defs` read [tool.dg] (pyproject.toml): the same entry point
    as workspace.yaml, built from the settings when the code location loads."""
    dg_cli = Path(sys.executable).with_name("dg")
    checked = subprocess.run(
        [str(dg_cli), "check", "defs"], cwd=REPO_ROOT, capture_output=True, text=True, timeout=300
    )
    assert checked.returncode == 0, checked.stdout[-3000:] + checked.stderr[-3000:]
    assert "All definitions loaded successfully." in checked.stdout
    listed = subprocess.run(
        [str(dg_cli), "list", "defs", "--json"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert listed.returncode == 0, listed.stderr[-3000:]
    assert "machine_scores" in listed.stdout and "landing_sensor" in listed.stdout
