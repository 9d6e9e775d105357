"""The same graph on a Spark standalone cluster and on a Spark Connect server, both on
127.0.0.1, equals local mode row for row.

A master and one worker start from the installed pyspark (executors in their own JVMs), and a
Spark Connect server from its spark-submit; the features and scores of a few days are computed
locally (in the test's own Spark), on the cluster and through Connect, with the same model from
the same MLflow registry, and compared.
"""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pyspark
import pytest
from pyspark.sql import SparkSession

from pdm_assets.adapters import spark_server
from pdm_assets.adapters.warehouse import FolderWarehouse
from pdm_assets_tests.support import graph_runs
from pdm_assets_tests.support.environment import clean_environment
from pdm_assets_tests.support.frames import assert_same_rows
from pdm_assets_tests.support.paths import REPO_ROOT, free_port

pytestmark = pytest.mark.slow

FLEET = {"PDM_SIM_MACHINES": "4", "PDM_SIM_DAYS": "40", "PDM_PARTITIONS_END": "2015-02-10"}
SPARK_HOME = Path(pyspark.__file__).parent
OUTPUT = REPO_ROOT / "test-output"


def _spark_class(args: list[str], log: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [str(SPARK_HOME / "bin" / "spark-class"), *args],
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
        env=env,
        start_new_session=True,
    )


def _wait_for(log: Path, pattern: str, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if log.exists() and re.search(pattern, log.read_text(errors="replace")):
            return
        time.sleep(0.5)
    raise AssertionError(f"no {pattern!r} in {log} after {timeout} s:\n{log.read_text()[-2000:]}")


@pytest.fixture(scope="module")
def standalone(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    folder = tmp_path_factory.mktemp("standalone")
    env = {
        **os.environ,
        "SPARK_HOME": str(SPARK_HOME),
        "SPARK_LOCAL_IP": "127.0.0.1",
        "PYSPARK_PYTHON": sys.executable,
    }
    port = free_port()
    master_url = f"spark://127.0.0.1:{port}"
    master = _spark_class(
        [
            "org.apache.spark.deploy.master.Master",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--webui-port",
            str(free_port()),
        ],
        folder / "master.log",
        env,
    )
    worker = None
    try:
        _wait_for(folder / "master.log", r"I have been elected leader")
        worker = _spark_class(
            [
                "org.apache.spark.deploy.worker.Worker",
                "--host",
                "127.0.0.1",
                "--cores",
                "2",
                "--memory",
                "2g",
                "--webui-port",
                str(free_port()),
                "--work-dir",
                str(folder / "work"),
                master_url,
            ],
            folder / "worker.log",
            env,
        )
        _wait_for(folder / "worker.log", r"Successfully registered with master")
        yield master_url
    finally:
        for process in (worker, master):
            if process is not None:
                # spark-class is a shell script around the JVM: stop the whole group.
                os.killpg(process.pid, signal.SIGTERM)
                process.wait(timeout=30)


@pytest.fixture(scope="module")
def connect_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator["ConnectServer"]:
    """The server `make ui` starts for the daemon's runs (pdm_assets.adapters.spark_server)."""
    home = tmp_path_factory.mktemp("connect")
    url = spark_server.start(home, port=free_port(), master="local[2]")
    try:
        yield ConnectServer(url, spark_server.client_environment(home))
    finally:
        assert spark_server.stop(home)


@dataclass(frozen=True)
class ConnectServer:
    url: str
    # What a client needs besides the URL: the server's token.
    env: dict[str, str]


_CLIENT = (
    "import sys; from pyspark.sql import SparkSession; "
    "print(SparkSession.builder.remote(sys.argv[1]).getOrCreate().range(3).count())"
)


def test_the_connect_server_serves_only_clients_with_its_token(
    connect_server: "ConnectServer",
) -> None:
    """Finding 9 of issue 19: anyone on the host could use the server (and its credentials)."""
    env = {k: v for k, v in os.environ.items() if k != spark_server.TOKEN_VARIABLE}

    def client(extra: dict[str, str]) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-c", _CLIENT, connect_server.url],
            env={**env, **extra},
            capture_output=True,
            text=True,
            timeout=120,
        )

    refused = client({spark_server.TOKEN_VARIABLE: "not-the-token"})
    assert refused.returncode != 0
    assert "UNAUTHENTICATED" in refused.stderr or "Invalid" in refused.stderr, refused.stderr[-800:]
    served = client(connect_server.env)
    assert served.returncode == 0, served.stderr[-800:]
    assert served.stdout.strip().splitlines()[-1] == "3"


def _graph_runs(logs: Path, *runs: tuple[dict[str, str], list[str]]) -> list[dict[str, float]]:
    """Graph runs in processes of their own, side by side; each one's step timings."""
    logs.mkdir(exist_ok=True)
    started = [
        (graph_runs.start(env, steps, logs / f"run{number}.log"), logs / f"run{number}.log")
        for number, (env, steps) in enumerate(runs)
    ]
    return [graph_runs.finish(process, log) for process, log in started]


INGEST = "ingest:2015-01-01:2015-02-05"
REMOTE_INGEST = "ingest:2015-02-01:2015-02-05"
SCORE = "score:2015-02-01:2015-02-05"
RAW_AND_DERIVED = ("raw_", "quarantine_", "machine_features", "failure_labels")


def _history_of(local_warehouse: Path, target: Path, first_remote_day: str) -> None:
    """The local warehouse's raw tables, features and labels before `first_remote_day`, for a
    remote home to ingest only the days after: their features read the whole replacement
    history, which is what makes a long ingest, not the days compared."""
    for dataset in local_warehouse.iterdir():
        if not dataset.name.startswith(RAW_AND_DERIVED) or dataset.name == "raw_machines":
            continue
        shutil.copytree(dataset, target / dataset.name, symlinks=True)
        for entry in [
            *(target / dataset.name).iterdir(),
            *(target / dataset.name / "_versions").iterdir(),
        ]:
            day = entry.name.removeprefix("date=")
            if entry.name.startswith("date=") and day >= first_remote_day:
                if entry.is_symlink():
                    entry.unlink()
                else:
                    shutil.rmtree(entry)


def test_features_and_scores_on_a_standalone_cluster_and_spark_connect_equal_local_mode(
    standalone: str, connect_server: ConnectServer, tmp_path: Path, spark: SparkSession
) -> None:
    local_home, cluster_home = tmp_path / "local", tmp_path / "cluster"
    connect_home = tmp_path / "connect"
    base = {**clean_environment(), **FLEET, "SPARK_LOCAL_IP": "127.0.0.1"}
    registry = f"sqlite:///{local_home / 'mlflow' / 'mlflow.db'}"

    def environment(home: Path, master: str) -> dict[str, str]:
        return {
            **base,
            "PDM_HOME": str(home),
            "PDM_ENV": "local",
            "PDM_SPARK_MASTER": master,
            "PDM_MLFLOW_TRACKING_URI": registry,
        }

    # Locally, in this process's Spark (the session the tests share is local[2]): the days, the
    # model all three score with (trained on January), and the scores.
    local_timings = graph_runs.run_here(
        environment(local_home, "local[2]"), [INGEST, "train:2015-02-01", SCORE]
    )
    # February on the cluster and through Connect, side by side, over January's history, and
    # scored with that model.
    for home in (cluster_home, connect_home):
        _history_of(local_home / "warehouse", home / "warehouse", "2015-02-01")
    cluster_timings, connect_timings = _graph_runs(
        tmp_path / "logs-remote",
        (environment(cluster_home, standalone), [REMOTE_INGEST, SCORE]),
        (
            {**environment(connect_home, connect_server.url), **connect_server.env},
            [REMOTE_INGEST, SCORE],
        ),
    )
    for dataset in ("raw_telemetry", "machine_features", "failure_labels", "machine_scores"):
        local = FolderWarehouse(local_home / "warehouse").read_all(spark, dataset)
        for home in (cluster_home, connect_home):
            other = FolderWarehouse(home / "warehouse").read_all(spark, dataset)
            assert local.columns == other.columns, (dataset, home.name)
            assert_same_rows(local, other)
    OUTPUT.mkdir(exist_ok=True)
    timings = {
        "local": local_timings,
        "standalone_cluster": cluster_timings,
        "spark_connect": connect_timings,
    }
    (OUTPUT / "cluster-timings.json").write_text(json.dumps(timings, indent=2))
