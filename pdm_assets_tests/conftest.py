"""Shared fixtures: one local Spark session for the whole test session, and throwaway homes."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from pyspark.sql import SparkSession

from pdm_assets.spark import SparkResource

REPO_ROOT = Path(__file__).resolve().parents[1]
SAMPLE_DIR = REPO_ROOT.parent / "shared" / "data" / "azure-pdm-sample"
NO_TELEMETRY = {"telemetry": {"enabled": False}}


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture(scope="session")
def spark() -> Iterator[SparkSession]:
    session = SparkResource(master="local[2]").get_session()
    yield session
    session.stop()


@pytest.fixture
def pdm_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A project home in a temp folder, with every PDM_* setting pointing into it."""
    home = tmp_path / "home"
    monkeypatch.setenv("PDM_HOME", str(home))
    monkeypatch.setenv("DAGSTER_HOME", str(home / "dagster"))
    (home / "dagster").mkdir(parents=True)
    (home / "dagster" / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    for name in ("PDM_DATA_SOURCE", "PDM_CSV_DIR", "PDM_MLFLOW_TRACKING_URI", "PDM_ENV"):
        monkeypatch.delenv(name, raising=False)
    return home
