"""Runs a `spark_python_task` the way a Databricks driver does, for fake_databricks.py.

Usage: fake_cluster_driver.py <python_file> <parameters...>, with DBFS paths as submitted. The
script is run with the globals a Databricks driver provides (`sc`, `dbutils`) and with DBFS
paths mapped to the fake's folder (a cluster mounts DBFS at /dbfs), Volume paths to its volumes
folder (a cluster mounts them at /Volumes).

The editable install of pdm_assets is hidden first: on a cluster the package exists only in the
zip the launcher uploads, so a step that imports it proves the zip carries it.
"""

import json
import os
import runpy
import sys
from pathlib import Path


def _hide_editable_install() -> None:
    def origin(finder: object) -> str:
        return finder.__module__ if isinstance(finder, type) else type(finder).__module__

    sys.meta_path[:] = [f for f in sys.meta_path if not origin(f).startswith("__editable__")]


def _local(dbfs_path: str) -> str:
    if dbfs_path.startswith("/Volumes/"):
        return str(Path(os.environ["FAKE_VOLUMES_ROOT"]) / dbfs_path.removeprefix("/Volumes/"))
    for prefix in ("dbfs:", "/dbfs/"):
        if dbfs_path.startswith(prefix):
            dbfs_path = dbfs_path[len(prefix) :]
    return str(Path(os.environ["FAKE_DBFS_ROOT"]) / dbfs_path.lstrip("/"))


class _Secrets:
    def __init__(self) -> None:
        self._scopes = json.loads(os.environ.get("FAKE_DBUTILS_SECRETS", "{}"))

    def get(self, scope: str, key: str) -> str:
        with open(os.environ["FAKE_SECRETS_READ_LOG"], "a") as log:
            log.write(json.dumps({"scope": scope, "key": key}) + "\n")
        return str(self._scopes[scope][key])


class _DBUtils:
    secrets = _Secrets()


def main() -> None:
    _hide_editable_install()
    from pyspark.sql import SparkSession

    session = (
        SparkSession.builder.master("local[2]")
        .config("spark.ui.enabled", "false")
        .config("spark.sql.shuffle.partitions", "4")
        .config("spark.driver.memory", "1g")
        .getOrCreate()
    )
    script = _local(sys.argv[1])
    sys.argv = [script, *(_local(parameter) for parameter in sys.argv[2:])]
    runpy.run_path(
        script,
        init_globals={"sc": session.sparkContext, "dbutils": _DBUtils()},
        run_name="__main__",
    )


if __name__ == "__main__":
    main()
