"""Every setting of pdm_assets, read from environment variables with documented defaults.

The README's configuration table lists the same variables; keep the two in step.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

from pdm_assets.core.filesystem import is_uri, is_volume_path
from pdm_assets.core.fleet import Fleet, fleet_from_json, load_fleet

ENVIRONMENTS = ("local", "databricks")
WAREHOUSE_FORMATS = ("parquet", "delta")
DATA_SOURCES = ("simulator", "landing", "csv", "tables")
# Settings that moved into the fleet description, and where they live now.
MOVED_TO_FLEET = {
    "PDM_HORIZON_DAYS": "horizon_hours",
    "PDM_SENSOR_RANGES": "the min and max of each sensor in [telemetry] sensors",
}


def _checkout_root() -> Path:
    """The checkout that holds this package (editable install), else the working directory."""
    package_parent = Path(__file__).resolve().parents[1]
    if (package_parent / "pyproject.toml").exists():
        return package_parent
    return Path.cwd()


def _env(name: str, default: str = "") -> str:
    value = os.environ.get(name, "").strip()
    return value or default


def _env_int(name: str, default: int) -> int:
    raw = _env(name, str(default))
    try:
        return int(raw)
    except ValueError as error:
        raise ValueError(f"{name} must be an integer, got {raw!r}") from error


def _env_date(name: str, default: str) -> date:
    raw = _env(name, default)
    try:
        return date.fromisoformat(raw)
    except ValueError as error:
        raise ValueError(f"{name} must be a date YYYY-MM-DD, got {raw!r}") from error


def _moved_settings() -> None:
    for name, key in MOVED_TO_FLEET.items():
        if os.environ.get(name, "").strip():
            raise ValueError(
                f"{name} is gone: the value lives in the fleet description now ({key}); write "
                "it in a copy of pdm_assets/core/fleets/azure_pdm.toml and point PDM_FLEET at the "
                "copy (docs/your-fleet.md)"
            )


def _tables(raw: str) -> str:
    """PDM_TABLES stays JSON text here (table_source.py parses it); only its form is checked."""
    try:
        parsed = json.loads(raw)
    except ValueError as error:
        raise ValueError(f"PDM_TABLES must be a JSON object, got {raw!r}") from error
    if not isinstance(parsed, dict):
        raise ValueError(f"PDM_TABLES must be a JSON object, got {raw!r}")
    return raw


@dataclass(frozen=True)
class Settings:
    """A snapshot of the environment, taken once where the definitions are built."""

    environment: str
    home: Path
    partitions_start: date
    partitions_end: date
    fleet: Fleet
    data_source: str
    landing_location: str | None
    csv_dir: Path | None
    tables: str
    sim_machines: int
    sim_days: int
    sim_seed: int
    spark_master: str
    spark_conf: dict[str, str]
    warehouse_root: str | None
    warehouse_format: str
    mlflow_tracking_uri: str
    mlflow_registry_uri: str
    mlflow_experiment: str
    model_name: str
    worklists_location: str | None = None
    # PDM_DAGSTER_POSTGRES_URL is set: the instance stores runs, events and schedules in that
    # Postgres database (the dagster.yaml names the variable; the URL, password included, is
    # read by Dagster when the instance starts and is never written to a file).
    dagster_postgres: bool = False
    keep_replaced_hours: float = 24.0

    @property
    def horizon_days(self) -> int:
        """The fleet's horizon in whole days, rounded up (the labels' lookahead)."""
        return self.fleet.horizon_days

    @property
    def warehouse(self) -> str:
        """The warehouse: PDM_WAREHOUSE (a folder every executor sees, or an object-store URI such
        as abfss://, s3:// or dbfs:/) or the home's folder."""
        return self.warehouse_root or str(self.home / "warehouse")

    @property
    def landing(self) -> str:
        """The landing folder the sensor watches and the landing source reads: PDM_LANDING (a
        folder or an object-store URI) or the home's own, where the simulator writes."""
        return self.landing_location or str(self.home / "landing")

    @property
    def worklists(self) -> str:
        """Where the daily work lists are written as CSV: PDM_WORKLISTS (a folder or an
        object-store URI, e.g. a Unity Catalog volume) or the home's `worklists` folder."""
        return self.worklists_location or str(self.home / "worklists")

    @property
    def mlflow_artifacts(self) -> Path:
        return self.home / "mlflow" / "artifacts"

    @property
    def dagster_home(self) -> Path:
        return self.home / "dagster"


POSTGRES_URL_VARIABLE = "PDM_DAGSTER_POSTGRES_URL"


def parse_spark_conf(raw: str) -> dict[str, str]:
    """PDM_SPARK_CONF's JSON object of Spark settings (object-store keys among them). The Spark
    resource reads the variable itself through dg.EnvVar, so its values never show in the
    resource config the Dagster UI serves; this is the one parser both use."""
    try:
        return {str(k): str(v) for k, v in json.loads(raw or "{}").items()}
    except (ValueError, AttributeError) as error:
        # The value is not repeated: it may hold keys.
        raise ValueError(
            "PDM_SPARK_CONF must be a JSON object of Spark settings "
            '({"spark.key": "value", ...}); the one set is not'
        ) from error


def load_settings() -> Settings:
    """Read every PDM_* variable; raise a ValueError naming the variable when one is malformed."""
    environment = _env("PDM_ENV", "local")
    if environment == "cluster":
        raise ValueError(
            "PDM_ENV=cluster is gone: the local environment runs on any Spark master. Unset "
            "PDM_ENV and set PDM_SPARK_MASTER (spark://host:7077, yarn, k8s://..., sc://host:15002)"
            " and PDM_WAREHOUSE (a folder or URI every executor sees)"
        )
    if environment not in ENVIRONMENTS:
        raise ValueError(f"PDM_ENV must be one of {ENVIRONMENTS}, got {environment!r}")
    home = Path(_env("PDM_HOME", str(_checkout_root() / ".pdm_home"))).expanduser().resolve()
    start = _env_date("PDM_PARTITIONS_START", "2015-01-01")
    end = _env_date("PDM_PARTITIONS_END", "2016-01-01")
    if end <= start:
        raise ValueError(f"PDM_PARTITIONS_END ({end}) must be after PDM_PARTITIONS_START ({start})")
    _moved_settings()
    fleet_file = os.environ.get("PDM_FLEET", "").strip()
    # PDM_FLEET_JSON: the description itself, as the Databricks launcher forwards it.
    fleet_json = os.environ.get("PDM_FLEET_JSON", "").strip()
    if fleet_json:
        fleet = fleet_from_json(fleet_json)
    else:
        fleet = load_fleet(Path(fleet_file).expanduser() if fleet_file else None)
    data_source = _env("PDM_DATA_SOURCE", "simulator")
    if data_source not in DATA_SOURCES:
        raise ValueError(f"PDM_DATA_SOURCE must be one of {DATA_SOURCES}, got {data_source!r}")
    landing_raw = os.environ.get("PDM_LANDING", "").strip()
    if landing_raw and data_source == "simulator":
        raise ValueError(
            "PDM_LANDING is a landing folder someone else fills, and the simulator never writes "
            "there: set PDM_DATA_SOURCE=landing to read it, or unset PDM_LANDING to simulate "
            "into the home's own folder"
        )
    landing_location = (
        landing_raw if not landing_raw or is_uri(landing_raw) else str(Path(landing_raw).resolve())
    ) or None
    csv_dir_raw = os.environ.get("PDM_CSV_DIR", "").strip()
    if data_source == "csv" and not csv_dir_raw:
        raise ValueError("PDM_DATA_SOURCE=csv needs PDM_CSV_DIR, a folder of PdM_*.csv[.gz] files")
    tables = _tables(_env("PDM_TABLES", "{}"))
    if data_source == "tables" and tables.strip() in ("", "{}"):
        raise ValueError(
            'PDM_DATA_SOURCE=tables needs PDM_TABLES, JSON like {"telemetry": "catalog.schema.'
            'telemetry", "failures": {"path": "/data/failures", "format": "parquet"}, ...}'
        )
    on_databricks = environment == "databricks"
    default_tracking = (
        "databricks" if on_databricks else f"sqlite:///{home / 'mlflow' / 'mlflow.db'}"
    )
    tracking_uri = _env("PDM_MLFLOW_TRACKING_URI", default_tracking)
    # Databricks' default registry is Unity Catalog, whose model names are catalog.schema.model.
    registry_uri = _env(
        "PDM_MLFLOW_REGISTRY_URI", "databricks-uc" if on_databricks else tracking_uri
    )
    model_name = _env("PDM_MODEL_NAME", "pdm_component_failure")
    if registry_uri.startswith("databricks-uc") and model_name.count(".") != 2:
        raise ValueError(
            f"PDM_MODEL_NAME must be catalog.schema.model for the Unity Catalog registry "
            f"({registry_uri}), got {model_name!r}"
        )
    spark_master = _env("PDM_SPARK_MASTER", "" if on_databricks else "local[*]")
    warehouse_root = os.environ.get("PDM_WAREHOUSE", "").strip() or None
    if on_databricks and not is_uri(warehouse_root or ""):
        raise ValueError(
            "PDM_ENV=databricks needs PDM_WAREHOUSE, a Unity Catalog schema the cluster can "
            "write (uc://<catalog>.<schema>) or a URI: "
            "abfss://container@account.dfs.core.windows.net/pdm, s3://bucket/pdm or dbfs:/pdm"
        )
    warehouse_format = _env("PDM_WAREHOUSE_FORMAT", "delta" if on_databricks else "parquet")
    if warehouse_format not in WAREHOUSE_FORMATS:
        raise ValueError(
            f"PDM_WAREHOUSE_FORMAT must be one of {WAREHOUSE_FORMATS}, got {warehouse_format!r}"
        )
    spark_conf = parse_spark_conf(_env("PDM_SPARK_CONF", "{}"))
    return Settings(
        environment=environment,
        home=home,
        partitions_start=start,
        partitions_end=end,
        fleet=fleet,
        data_source=data_source,
        landing_location=landing_location,
        tables=tables,
        csv_dir=Path(csv_dir_raw).expanduser().resolve() if csv_dir_raw else None,
        sim_machines=_env_int("PDM_SIM_MACHINES", 100),
        sim_days=_env_int("PDM_SIM_DAYS", 120),
        sim_seed=_env_int("PDM_SIM_SEED", 42),
        spark_master=spark_master,
        spark_conf=spark_conf,
        warehouse_root=warehouse_root,
        warehouse_format=warehouse_format,
        mlflow_tracking_uri=tracking_uri,
        mlflow_registry_uri=registry_uri,
        # A Databricks experiment is a workspace path.
        mlflow_experiment=_env(
            "PDM_MLFLOW_EXPERIMENT", "/Shared/pdm_assets" if on_databricks else "pdm_assets"
        ),
        model_name=model_name,
        worklists_location=_env("PDM_WORKLISTS", "") or None,
        dagster_postgres=bool(_env(POSTGRES_URL_VARIABLE, "")),
        keep_replaced_hours=_keep_replaced_hours(_env("PDM_KEEP_REPLACED_HOURS", "24")),
    )


def _keep_replaced_hours(raw: str) -> float:
    try:
        hours = float(raw)
    except ValueError:
        hours = -1.0
    if not hours >= 1:
        raise ValueError(
            f"PDM_KEEP_REPLACED_HOURS must be a number of hours, at least 1 (readers may still "
            f"be on a replaced version), got {raw!r}"
        )
    return hours


# The Databricks environment's variables (docs/databricks.md). The step launcher is built from
# them in pdm_assets/adapters/databricks.py.

# Set by the Databricks runtime on every cluster node: a step that sees it is already remote.
RUNTIME_MARKER = "DATABRICKS_RUNTIME_VERSION"

# Forwarded to the cluster, so the step there builds the same definitions. Secrets are not
# among them: DATABRICKS_TOKEN stays on the Dagster side, and storage keys come from a
# Databricks secret scope on the cluster.
FORWARDED_PREFIXES = ("PDM_",)
FORWARDED_NAMES = ("DATABRICKS_HOST",)
NEVER_FORWARDED = {"PDM_SPARK_MASTER", "PDM_HOME"}


def on_databricks_runtime() -> bool:
    """True on a Databricks cluster node: a step that sees it is already remote."""
    return bool(os.environ.get(RUNTIME_MARKER))


def forwarded_variables() -> dict[str, str]:
    """This process's PDM_* variables and DATABRICKS_HOST, less those that are this machine's."""
    return {
        name: value
        for name, value in os.environ.items()
        if (name.startswith(FORWARDED_PREFIXES) or name in FORWARDED_NAMES)
        and name not in NEVER_FORWARDED
    }


@dataclass(frozen=True)
class DatabricksSettings:
    """The PDM_DATABRICKS_* variables (see the README's Databricks guide)."""

    host: str
    cluster_id: str | None
    new_cluster: dict[str, Any] | None
    storage: dict[str, Any]
    staging_prefix: str
    poll_interval_seconds: float
    timeout_seconds: int
    remote_home: str


def _number(name: str, default: str) -> float:
    raw = _env(name, default)
    try:
        value = float(raw)
    except ValueError as error:
        raise ValueError(f"{name} must be a number, got {raw!r}") from error
    if value <= 0:
        raise ValueError(f"{name} must be positive, got {raw!r}")
    return value


def _default_storage(warehouse: str) -> str:
    if warehouse.startswith("abfss://"):
        return "adls2"
    if warehouse.startswith(("s3://", "s3a://")):
        return "s3"
    return "none"


def _storage(warehouse: str) -> dict[str, Any]:
    """The launcher's storage block: which secret-scope keys the cluster reads to reach the
    warehouse. Empty for dbfs:/ or a cluster that already has access (instance profile, UC)."""
    kind = _env("PDM_DATABRICKS_STORAGE", _default_storage(warehouse))
    if kind == "none":
        return {}
    scope = _env("PDM_DATABRICKS_SECRET_SCOPE", "pdm")
    if kind == "adls2":
        account = _env("PDM_ADLS2_ACCOUNT")
        if not account:
            raise ValueError(
                "PDM_DATABRICKS_STORAGE=adls2 needs PDM_ADLS2_ACCOUNT, the storage account name"
            )
        return {
            "adls2": {
                "storage_account_name": account,
                "secret_scope": scope,
                "storage_account_key_key": _env("PDM_ADLS2_KEY_SECRET", "adls2-account-key"),
            }
        }
    if kind == "s3":
        return {
            "s3": {
                "secret_scope": scope,
                "access_key_key": _env("PDM_S3_ACCESS_KEY_SECRET", "aws-access-key-id"),
                "secret_key_key": _env("PDM_S3_SECRET_KEY_SECRET", "aws-secret-access-key"),
            }
        }
    raise ValueError(f"PDM_DATABRICKS_STORAGE must be 'adls2', 's3' or 'none', got {kind!r}")


def _new_cluster() -> dict[str, Any]:
    """The launcher's `new` cluster shape, from PDM_DATABRICKS_NEW_CLUSTER (JSON) or defaults."""
    raw = _env("PDM_DATABRICKS_NEW_CLUSTER")
    if raw:
        try:
            spec = json.loads(raw)
        except ValueError as error:
            raise ValueError(
                f"PDM_DATABRICKS_NEW_CLUSTER must be JSON in the launcher's cluster.new shape, "
                f"got {raw!r}"
            ) from error
        if not isinstance(spec, dict):
            raise ValueError("PDM_DATABRICKS_NEW_CLUSTER must be a JSON object")
        return spec
    workers = int(_number("PDM_DATABRICKS_WORKERS", "2"))
    return {
        # Spark 4 runtimes: the code is written against pyspark 4.
        "spark_version": _env("PDM_DATABRICKS_SPARK_VERSION", "17.3.x-scala2.13"),
        "nodes": {
            "node_types": {"node_type_id": _env("PDM_DATABRICKS_NODE_TYPE", "Standard_D4ds_v5")}
        },
        "size": {"num_workers": workers},
    }


def load_databricks_settings(warehouse: str) -> DatabricksSettings:
    """Read and check the Databricks variables; a ValueError names the one that is wrong."""
    host = _env("DATABRICKS_HOST")
    if not host:
        raise ValueError(
            "PDM_ENV=databricks needs DATABRICKS_HOST (e.g. https://adb-123.4.azuredatabricks.net)"
            " and DATABRICKS_TOKEN, a personal access token or service-principal token"
        )
    cluster_id = _env("PDM_DATABRICKS_CLUSTER_ID") or None
    staging = _env("PDM_DATABRICKS_STAGING_PREFIX", "/dagster_staging")
    volume_like = staging.startswith("/Volumes/") or staging == "/Volumes"
    if not staging.startswith("/") or (volume_like and not is_volume_path(staging + "/")):
        raise ValueError(
            "PDM_DATABRICKS_STAGING_PREFIX must be a Unity Catalog Volume path "
            "(/Volumes/<catalog>/<schema>/<volume>/...) or an absolute DBFS path (/...): "
            f"{staging}"
        )
    return DatabricksSettings(
        host=host,
        cluster_id=cluster_id,
        new_cluster=None if cluster_id else _new_cluster(),
        storage=_storage(warehouse),
        staging_prefix=staging,
        poll_interval_seconds=_number("PDM_DATABRICKS_POLL_SECONDS", "10"),
        timeout_seconds=int(_number("PDM_DATABRICKS_TIMEOUT_SECONDS", "7200")),
        remote_home=_env("PDM_DATABRICKS_HOME", "/dbfs/pdm_assets"),
    )
