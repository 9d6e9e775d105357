"""The production form: the webserver and the daemon as two services over Postgres storage.

A local PostgreSQL server (pdm_assets_tests/support/postgres.py) holds the instance;
`make webserver` and `make daemon` run the same two commands as here. Each must serve, share the
one instance (the daemon's heartbeat is what the webserver reports), and stop cleanly on SIGTERM,
as a service manager stops it.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest
from dagster_postgres import PostgresEventLogStorage, PostgresRunStorage

from pdm_assets.defs.instance_config import ensure_instance_yaml
from pdm_assets_tests.support.environment import clean_environment
from pdm_assets_tests.support.paths import REPO_ROOT, free_port
from pdm_assets_tests.support.postgres import local_postgres

pytestmark = pytest.mark.slow

BIN = Path(sys.executable).parent


@pytest.fixture(scope="module")
def postgres_url() -> Iterator[str]:
    with local_postgres() as url:
        yield url


def _env(home: Path, url: str) -> dict[str, str]:
    return {
        **clean_environment(),
        "PDM_HOME": str(home),
        "DAGSTER_HOME": str(home / "dagster"),
        "PDM_DAGSTER_POSTGRES_URL": url,
    }


def test_the_instance_lives_in_postgres_and_the_file_holds_no_url(
    postgres_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PDM_DAGSTER_POSTGRES_URL", postgres_url)
    path = ensure_instance_yaml(tmp_path, postgres=True)
    assert postgres_url not in path.read_text()
    assert "env: PDM_DAGSTER_POSTGRES_URL" in path.read_text()
    with dg.DagsterInstance.from_config(str(tmp_path)) as instance:
        assert isinstance(instance.run_storage, PostgresRunStorage)
        assert isinstance(instance.event_log_storage, PostgresEventLogStorage)
        for day in ("2015-01-01", "2015-01-02", "2015-01-01"):
            instance.report_runless_asset_event(dg.AssetMaterialization("probe", partition=day))
        # What the landing sensor plans from: the latest storage id per partition.
        latest = instance.get_latest_storage_id_by_partition(
            dg.AssetKey("probe"), dg.DagsterEventType.ASSET_MATERIALIZATION
        )
        assert latest["2015-01-01"] > latest["2015-01-02"]
    # Without the variable the project's file goes back to sqlite under DAGSTER_HOME.
    ensure_instance_yaml(tmp_path, postgres=False)
    assert "postgres" not in path.read_text()


def _stop(process: subprocess.Popen[bytes], name: str) -> float:
    started = time.monotonic()
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=60)
    except subprocess.TimeoutExpired:
        process.kill()
        raise AssertionError(f"{name} did not stop within 60 s of SIGTERM") from None
    return time.monotonic() - started


def test_the_webserver_and_the_daemon_serve_one_instance_and_stop_on_sigterm(
    postgres_url: str, tmp_path: Path
) -> None:
    home = tmp_path / "home"
    env = _env(home, postgres_url)
    subprocess.run(
        [sys.executable, "-m", "pdm_assets.defs.instance_config", env["DAGSTER_HOME"]],
        env=env,
        check=True,
    )
    port = free_port()
    logs = {name: (tmp_path / f"{name}.log").open("wb") for name in ("webserver", "daemon")}
    commands = {
        "webserver": [str(BIN / "dagster-webserver"), "-w", "workspace.yaml", "-h", "127.0.0.1"],
        "daemon": [str(BIN / "dagster-daemon"), "run", "-w", "workspace.yaml"],
    }
    commands["webserver"] += ["-p", str(port)]
    processes = {
        name: subprocess.Popen(
            command, cwd=REPO_ROOT, env=env, stdout=logs[name], stderr=subprocess.STDOUT
        )
        for name, command in commands.items()
    }
    try:
        deadline = time.monotonic() + 240
        healthy: dict[str, bool] = {}
        while time.monotonic() < deadline:
            assert all(p.poll() is None for p in processes.values()), {
                name: (tmp_path / f"{name}.log").read_text(errors="replace")[-2000:]
                for name in processes
            }
            try:
                healthy = _daemon_health(port)
            except OSError:
                healthy = {}
            # The webserver reads the daemon's heartbeats from Postgres: both are up, on one
            # instance.
            if healthy.get("SENSOR") and healthy.get("QUEUED_RUN_COORDINATOR"):
                break
            time.sleep(2)
        assert healthy.get("SENSOR") and healthy.get("QUEUED_RUN_COORDINATOR"), healthy
    finally:
        stopped = {name: _stop(process, name) for name, process in processes.items()}
        for handle in logs.values():
            handle.close()
    # Both stopped on SIGTERM, within seconds and without an error exit.
    codes = {name: process.returncode for name, process in processes.items()}
    assert all(code in (0, -signal.SIGTERM) for code in codes.values()), codes
    assert max(stopped.values()) < 60, stopped


def _daemon_health(port: int) -> dict[str, bool]:
    query = "{ instance { daemonHealth { allDaemonStatuses { daemonType healthy required } } } }"
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/graphql",
        data=json.dumps({"query": query}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        data = json.loads(response.read())
    statuses = data["data"]["instance"]["daemonHealth"]["allDaemonStatuses"]
    return {status["daemonType"]: bool(status["healthy"]) for status in statuses}
