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
import logging
import os
import re
import shutil
import stat
import tempfile
from importlib import metadata
from pathlib import Path
from typing import Any

import dagster as dg
from dagster_databricks import databricks_pyspark_step_launcher
from dagster_pyspark.utils import DEFAULT_EXCLUDE
from packaging.requirements import Requirement

from pdm_assets.adapters.databricks_volumes import VolumeStagingStepLauncher
from pdm_assets.settings import (
    DatabricksSettings,
    Settings,
    forwarded_variables,
    load_databricks_settings,
    on_databricks_runtime,
)

log = logging.getLogger(__name__)

PACKAGE = "pdm_assets"
DISTRIBUTION = "pdm_assets"

# The runtime brings its own Spark; the UI is not needed to run a step.
NOT_SHIPPED = {"pyspark", "dagster-webserver"}


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
    # The package, not this adapters folder.
    source = Path(__file__).resolve().parents[1]
    # The code and the fleet descriptions it ships with (the default is read at import).
    files = sorted(
        path
        for pattern in ("*.py", "core/fleets/*.toml")
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
    forwarded = forwarded_variables()
    forwarded["PDM_ENV"] = settings.environment
    forwarded["PDM_HOME"] = databricks.remote_home
    # The description file is on this machine, not the cluster's: the step gets its content.
    forwarded.pop("PDM_FLEET", None)
    forwarded["PDM_FLEET_JSON"] = settings.fleet.model_dump_json()
    forwarded["PDM_WAREHOUSE"] = settings.warehouse
    return forwarded


def step_launcher_resource(settings: Settings) -> dg.ResourceDefinition:
    """The step launcher of the Databricks environment; on the cluster itself, no launcher."""
    if on_databricks_runtime():
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
