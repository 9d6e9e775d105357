"""Staging the Databricks step launcher's files on a Unity Catalog Volume instead of DBFS.

dagster-databricks' launcher writes the pickled step, the code zip and its main script under the
DBFS root (`dbfs:/<staging_prefix>/<run>/<step>/...`, its `_dbfs_path`), and the step on the
cluster writes its events and logs beside them through `/dbfs/...`. Workspaces made without a
DBFS root (or with it disabled) have none; there files go to a Volume, `/Volumes/<catalog>/
<schema>/<volume>/...`, which the Files API (`PUT`/`GET /api/2.0/fs/files/Volumes/...`) reaches
from here and every cluster mounts at the same path. With a Volume staging prefix the launcher
below keeps the launcher's whole sequence and changes only where the files go: the paths it
names, and the client calls that upload and read them.
"""

from __future__ import annotations

import io
from typing import IO, Any

from dagster._core.definitions.step_launcher import StepRunRef
from dagster._core.log_manager import DagsterLogManager
from dagster_databricks.databricks import DatabricksClient
from dagster_databricks.databricks_pyspark_step_launcher import DatabricksPySparkStepLauncher
from databricks.sdk.errors import DatabricksError, NotFound, Unauthenticated

from pdm_assets.core.filesystem import is_volume_path


class VolumeFiles:
    """The two calls the launcher makes of its DatabricksClient (put_file, read_file), through
    the Files API for Volume paths; anything else goes to the client it wraps."""

    def __init__(self, client: DatabricksClient) -> None:
        self._client = client

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)

    def put_file(
        self, file_obj: IO[bytes], path: str, overwrite: bool = False, block_size: int = 1024**2
    ) -> None:
        if not is_volume_path(path):
            self._client.put_file(file_obj, path, overwrite=overwrite, block_size=block_size)
            return
        self._client.workspace_client.files.upload(
            path, io.BytesIO(file_obj.read()), overwrite=overwrite
        )

    def read_file(self, path: str, block_size: int = 1024**2) -> bytes:
        if not is_volume_path(path):
            return self._client.read_file(path, block_size=block_size)
        try:
            response = self._client.workspace_client.files.download(path)
        except NotFound:
            # Not written yet (the step has not started): the launcher polls again.
            return b""
        assert response.contents is not None
        return response.contents.read()


class VolumeStagingStepLauncher(DatabricksPySparkStepLauncher):
    """dagster-databricks' step launcher, staging on a Volume when its staging prefix is one."""

    def __init__(self, **config: Any) -> None:
        super().__init__(**config)
        self.on_volume = is_volume_path(self.staging_prefix.rstrip("/") + "/")
        if self.on_volume:
            runner = self.databricks_runner
            runner._client = VolumeFiles(runner.client)  # type: ignore[assignment]

    def _volume_path(self, run_id: str, step_key: str, filename: str) -> str:
        parts = [self.staging_prefix.rstrip("/"), run_id, self._sanitize_step_key(step_key)]
        return "/".join([*parts, filename.rsplit("/", 1)[-1]])

    def _dbfs_path(self, run_id: str, step_key: str, filename: str) -> str:
        if self.on_volume:
            return self._volume_path(run_id, step_key, filename)
        return super()._dbfs_path(run_id, step_key, filename)

    def _internal_dbfs_path(self, run_id: str, step_key: str, filename: str) -> str:
        # A cluster mounts every Volume at /Volumes: the same path as the Files API's.
        if self.on_volume:
            return self._volume_path(run_id, step_key, filename)
        return super()._internal_dbfs_path(run_id, step_key, filename)

    def _upload_artifacts(
        self, log: DagsterLogManager, step_run_ref: StepRunRef, run_id: str, step_key: str
    ) -> None:
        try:
            super()._upload_artifacts(log, step_run_ref, run_id, step_key)
        except Unauthenticated:
            raise  # a bad token, not a staging problem: the workspace's message says so
        except DatabricksError as error:
            where = "the Volume" if self.on_volume else "DBFS"
            hint = (
                "check that the Volume exists and that this principal may WRITE VOLUME on it"
                if self.on_volume
                else "a workspace without a DBFS root (or with it disabled) stages on a Unity "
                "Catalog Volume instead: set PDM_DATABRICKS_STAGING_PREFIX="
                "/Volumes/<catalog>/<schema>/<volume>/dagster_staging"
            )
            raise StagingError(
                f"could not stage step {step_key} on {where} under {self.staging_prefix} "
                f"({error.error_code}: {error}); {hint}"
            ) from error


class StagingError(RuntimeError):
    """The step's files could not be uploaded where the cluster reads them."""
