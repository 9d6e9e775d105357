"""The Databricks environment: each Spark step runs on a cluster through dagster-databricks'
`databricks_pyspark_step_launcher`.

The launcher pickles the step, uploads it with a zip of the code to DBFS, submits a one-off job
run (`spark_python_task`) and replays the step's events from DBFS into the Dagster run. On the
cluster the step rebuilds the definitions from the environment variables forwarded here, so it
uses the same resources and IO manager as a local run, with the cluster's own Spark session.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import shutil
import stat
import tempfile
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import dagster as dg
from dagster_databricks import databricks_pyspark_step_launcher
from dagster_pyspark.utils import DEFAULT_EXCLUDE
from packaging.requirements import Requirement

from pdm_assets.databricks_volumes import VolumeStagingStepLauncher, is_volume_path
from pdm_assets.settings import Settings

log = logging.getLogger(__name__)

PACKAGE = "pdm_assets"
DISTRIBUTION = "pdm_assets"

# Set by the Databricks runtime on every cluster node: a step that sees it is already remote.
RUNTIME_MARKER = "DATABRICKS_RUNTIME_VERSION"

# The runtime brings its own Spark; the UI is not needed to run a step.
NOT_SHIPPED = {"pyspark", "dagster-webserver"}

# Forwarded to the cluster, so the step there builds the same definitions. Secrets are not
# among them: DATABRICKS_TOKEN stays on the Dagster side, and storage keys come from a
# Databricks secret scope on the cluster.
FORWARDED_PREFIXES = ("PDM_",)
FORWARDED_NAMES = ("DATABRICKS_HOST",)
NEVER_FORWARDED = {"PDM_SPARK_MASTER", "PDM_HOME"}


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


def _env(name: str, default: str = "") -> str:
    return os.environ.get(name, "").strip() or default


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


def cluster_libraries() -> list[dict[str, Any]]:
    """pdm_assets' runtime dependencies as PyPI libraries, pinned to the versions installed here.

    The cluster then runs the step with the same dagster, MLflow and pandas as the process that
    pickled it; pickled step data is only readable by the same dagster version.
    """
    requirements = metadata.requires(DISTRIBUTION) or []
    libraries = []
    for line in requirements:
        requirement = Requirement(line)
        if requirement.marker is not None and not requirement.marker.evaluate({"extra": ""}):
            continue  # dev extras
        name = requirement.name.lower().replace("_", "-")
        if name in NOT_SHIPPED:
            continue
        libraries.append({"pypi": {"package": f"{name}=={metadata.version(name)}"}})
    return libraries


def private_staging_root() -> Path:
    """`<tmp>/pdm_assets-databricks-<uid>`, made by and for this user (mode 0700).

    The copy in it is zipped and run on the cluster, so whoever could write it would decide what
    runs there: a folder of that name that is not this user's own, private, real folder (made
    first by someone else, or a symlink) is not used; a fresh private folder is, and the log
    says why.
    """
    root = Path(tempfile.gettempdir()) / f"pdm_assets-databricks-{os.getuid()}"
    with contextlib.suppress(FileExistsError):
        root.mkdir(mode=0o700)
    info = root.lstat()
    if stat.S_ISDIR(info.st_mode) and info.st_uid == os.getuid() and not info.st_mode & 0o077:
        return root
    fresh = Path(tempfile.mkdtemp(prefix="pdm_assets-databricks-"))
    log.warning(
        "%s is not a private folder of this user (someone else made it, or it is a link); "
        "the code for the cluster is copied into %s instead",
        root,
        fresh,
    )
    return fresh


def package_to_ship(staging_root: Path | None = None) -> Path:
    """A folder holding only a fresh copy of the pdm_assets package, for the launcher to zip.

    The launcher zips the whole folder it is given; pointing it at the checkout would ship the
    tests, the virtualenv and the data under the project home. It also silently leaves out any
    file whose path matches one of its exclude patterns (".*pytest.*", ".*/venv/.*", ...), so the
    copy lives in a neutral temp folder and a path that would empty the zip is refused.
    """
    staging_root = staging_root or private_staging_root()
    excluded = [pattern for pattern in DEFAULT_EXCLUDE if re.search(pattern, str(staging_root))]
    if excluded:
        raise ValueError(
            f"the code folder {staging_root} matches the launcher's exclude pattern "
            f"{excluded[0]!r}, so the uploaded zip would be empty; set TMPDIR elsewhere"
        )
    source = Path(__file__).resolve().parent
    # The code and the fleet descriptions it ships with (the default is read at import).
    files = sorted(
        path
        for pattern in ("*.py", "fleets/*.toml")
        for path in source.rglob(pattern)
        if "__pycache__" not in path.parts
    )
    digest = hashlib.sha256()
    for path in files:
        digest.update(str(path.relative_to(source)).encode())
        digest.update(path.read_bytes())
    # One folder per version of the code: runs launched at the same time never see a half copy.
    target_root = staging_root / "code" / digest.hexdigest()[:16]
    if not target_root.exists():
        target_root.parent.mkdir(parents=True, exist_ok=True)
        partial = Path(tempfile.mkdtemp(prefix=".partial-", dir=target_root.parent))
        for path in files:
            copy = partial / PACKAGE / path.relative_to(source)
            copy.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, copy)
        try:
            partial.rename(target_root)
        except OSError:
            shutil.rmtree(partial, ignore_errors=True)  # another process won the race
    return target_root


def forwarded_environment(settings: Settings, databricks: DatabricksSettings) -> dict[str, str]:
    """The variables the step on the cluster needs to build the same definitions."""
    forwarded = {
        name: value
        for name, value in os.environ.items()
        if (name.startswith(FORWARDED_PREFIXES) or name in FORWARDED_NAMES)
        and name not in NEVER_FORWARDED
    }
    forwarded["PDM_ENV"] = settings.environment
    forwarded["PDM_HOME"] = databricks.remote_home
    # The description file is on this machine, not the cluster's: the step gets its content.
    forwarded.pop("PDM_FLEET", None)
    forwarded["PDM_FLEET_JSON"] = settings.fleet.model_dump_json()
    forwarded["PDM_WAREHOUSE"] = settings.warehouse
    return forwarded


def step_launcher_resource(settings: Settings) -> dg.ResourceDefinition:
    """The step launcher of the Databricks environment; on the cluster itself, no launcher."""
    if os.environ.get(RUNTIME_MARKER):
        return no_step_launcher
    databricks = load_databricks_settings(settings.warehouse)
    cluster: dict[str, Any] = (
        {"existing": databricks.cluster_id}
        if databricks.cluster_id
        else {"new": databricks.new_cluster}
    )
    return VOLUME_STAGING_STEP_LAUNCHER.configured(
        {
            "run_config": {
                "run_name": "pdm_assets step",
                "cluster": cluster,
                "libraries": cluster_libraries(),
            },
            "databricks_host": databricks.host,
            # Resolved from the environment when the launcher starts; never in run config,
            # the pickled step or the event log.
            "databricks_token": {"env": "DATABRICKS_TOKEN"},
            "local_pipeline_package_path": str(package_to_ship()),
            "staging_prefix": databricks.staging_prefix,
            **({"storage": databricks.storage} if databricks.storage else {}),
            "secrets_to_env_variables": [],
            "env_variables": forwarded_environment(settings, databricks),
            "poll_interval_sec": databricks.poll_interval_seconds,
            "max_completion_wait_time_seconds": databricks.timeout_seconds,
            "verbose_logs": False,
        }
    )


# dagster-databricks' launcher resource, with its config, building the launcher that also stages on
# a Volume (databricks_volumes.py).
VOLUME_STAGING_STEP_LAUNCHER = dg.ResourceDefinition(
    resource_fn=lambda context: VolumeStagingStepLauncher(**context.resource_config),
    config_schema=databricks_pyspark_step_launcher.config_schema,
    description="dagster-databricks' pyspark step launcher, staging on DBFS or a Volume.",
)


@dg.resource(description="No step launcher: the step runs in the run's own process.")
def no_step_launcher(_: dg.InitResourceContext) -> None:
    return None
