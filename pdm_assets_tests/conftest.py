"""Shared fixtures: one local Spark session for the whole test session, and throwaway homes."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from pyspark.sql import SparkSession

from pdm_assets.spark import SparkResource


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
