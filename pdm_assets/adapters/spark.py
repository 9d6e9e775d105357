"""The Spark resource: one session per process, shared by every step of an in-process run."""

from __future__ import annotations

import atexit
import gc
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

import dagster as dg
from pydantic import Field
from pyspark.sql import SparkSession

from pdm_assets.settings import parse_spark_conf

MIN_JAVA_MAJOR = 17

INSTALL_JAVA_HINT = (
    "Install a Java runtime 17 or newer and put `java` on PATH (or set JAVA_HOME): "
    "Debian/Ubuntu `sudo apt-get install openjdk-17-jre-headless`, macOS "
    "`brew install openjdk@17`, or any Temurin 17/21 build."
)


class JavaNotFoundError(RuntimeError):
    """Spark runs on the JVM; without it pyspark dies with an opaque Py4J error."""


def find_java(environ: Mapping[str, str] | None = None) -> Path:
    """The java binary Spark will start: JAVA_HOME's if set, else the first on PATH."""
    environ = os.environ if environ is None else environ
    java_home = environ.get("JAVA_HOME", "").strip()
    if java_home:
        candidate = Path(java_home) / "bin" / "java"
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
        raise JavaNotFoundError(
            f"JAVA_HOME={java_home} has no executable bin/java. " + INSTALL_JAVA_HINT
        )
    on_path = shutil.which("java", path=environ.get("PATH", ""))
    if on_path is None:
        raise JavaNotFoundError("Spark needs Java, and none was found. " + INSTALL_JAVA_HINT)
    return Path(on_path)


def java_major_version(java: Path) -> int:
    completed = subprocess.run(
        [str(java), "-version"], capture_output=True, text=True, timeout=30, check=False
    )
    match = re.search(r'version "(\d+)(?:\.(\d+))?', completed.stderr + completed.stdout)
    if match is None:
        raise JavaNotFoundError(f"`{java} -version` printed no version. " + INSTALL_JAVA_HINT)
    major = int(match.group(1))
    # Java 8 and older report "1.8.0_x".
    return int(match.group(2) or 0) if major == 1 else major


def ensure_java(environ: Mapping[str, str] | None = None) -> Path:
    java = find_java(environ)
    major = java_major_version(java)
    if major < MIN_JAVA_MAJOR:
        raise JavaNotFoundError(
            f"{java} is Java {major}; pyspark 4 needs Java {MIN_JAVA_MAJOR}+. " + INSTALL_JAVA_HINT
        )
    return java


# Settings that make a local session quiet, deterministic in time zone and small enough for the
# tiny partitions of this project (the default 200 shuffle partitions cost seconds per job).
LOCAL_DEFAULT_CONF: dict[str, str] = {
    "spark.sql.session.timeZone": "UTC",
    "spark.sql.shuffle.partitions": "8",
    "spark.default.parallelism": "8",
    "spark.ui.showConsoleProgress": "false",
    "spark.ui.enabled": "false",
    "spark.sql.sources.partitionOverwriteMode": "dynamic",
    "spark.driver.memory": "4g",
    "spark.sql.execution.arrow.pyspark.enabled": "true",
    # A window read names one folder per day; past 32 paths Spark lists them with a job of one
    # task per path, which on a local disk costs more than listing them in the driver.
    "spark.sql.sources.parallelPartitionDiscovery.threshold": "100000",
}


# On a cluster, the driver's memory and parallelism are the cluster's business, and listing an
# object store in parallel pays off.
CLUSTER_DEFAULT_CONF: dict[str, str] = {
    key: value
    for key, value in LOCAL_DEFAULT_CONF.items()
    if key
    not in (
        "spark.driver.memory",
        "spark.default.parallelism",
        "spark.sql.sources.parallelPartitionDiscovery.threshold",
    )
}

# A Spark Connect client may set runtime SQL settings only; the server owns the rest.
CONNECT_DEFAULT_CONF: dict[str, str] = {
    key: value for key, value in CLUSTER_DEFAULT_CONF.items() if key.startswith("spark.sql.")
}


class SparkResource(dg.ConfigurableResource):
    """A Spark session, created on first use and reused by every step of the process.

    Locally it is `local[*]` inside the run's process (the definitions use the in-process executor
    so all steps share one JVM). The same resource connects to any master URL.
    """

    master: str = Field(
        default="local[*]",
        description=(
            "Spark master URL, e.g. local[*], spark://host:7077, yarn, k8s://..., sc://host:15002. "
            "Empty: the session the platform provides (a Databricks cluster's)."
        ),
    )
    app_name: str = Field(default="pdm_assets", description="Spark application name.")
    conf: dict[str, str] = Field(
        default_factory=dict, description="Extra Spark settings; they override the defaults."
    )
    conf_json: str = Field(
        default="{}",
        description=(
            "More Spark settings as a JSON object, over `conf`; set from PDM_SPARK_CONF as an "
            "EnvVar, so keys in it are not shown in the UI."
        ),
    )

    def get_session(self) -> SparkSession:
        active = SparkSession.getActiveSession()
        if active is not None:
            return active
        if not self.master:
            # On a Databricks driver the session already exists; getOrCreate() attaches to it
            # (and elsewhere falls back to Spark's own default, local[*]).
            builder = SparkSession.builder.appName(self.app_name)
        elif self.master.startswith("sc://"):
            # Spark Connect: the JVM runs on the server, nothing to start here.
            builder = SparkSession.builder.remote(self.master).appName(self.app_name)
        else:
            ensure_java()
            # Python workers must run this interpreter, not the first python3 on PATH (PySpark's
            # default); on a cluster the same path must exist on every worker.
            os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
            if self.master.startswith("local"):
                os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
            builder = SparkSession.builder.master(self.master).appName(self.app_name)
        if self.master.startswith("local"):
            defaults = LOCAL_DEFAULT_CONF
        elif self.master.startswith("sc://"):
            defaults = CONNECT_DEFAULT_CONF
        else:
            defaults = CLUSTER_DEFAULT_CONF
        for key, value in {**defaults, **self.conf, **parse_spark_conf(self.conf_json)}.items():
            builder = builder.config(key, value)
        session = builder.getOrCreate()
        if self.master.startswith("sc://"):
            if id(session) not in _CLOSING_AT_EXIT:
                _CLOSING_AT_EXIT.add(id(session))
                atexit.register(_close_connect_session, session)
        else:
            # A Spark Connect client has no SparkContext; the server owns its logging.
            session.sparkContext.setLogLevel("WARN")
        return session


_CLOSING_AT_EXIT: set[int] = set()


def _close_connect_session(session: SparkSession) -> None:
    """Free Spark ML objects and close the gRPC channel while gRPC still works.

    Left to interpreter shutdown, a Spark ML model's __del__ RPC or an unfinished response
    stream's __del__ can wait forever on a lock of gRPC's threads (seen with the scoring model,
    and with a response stream after an ingest); the run's process then never exits.
    """
    gc.collect()
    session.stop()


# Every Spark asset takes this resource. Dagster runs a step through whichever of its resources is
# a StepLauncher: in the databricks environment the key holds the Databricks launcher, elsewhere
# None, and the step runs in the run's own process.
StepLauncherParam = dg.ResourceParam[dg.StepLauncher | None]
