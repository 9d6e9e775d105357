"""Shared fixtures: one local Spark session for the whole test session, and throwaway homes."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from pyspark.sql import SparkSession

from pdm_assets.adapters.spark import SparkResource


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


# The longest files first (make test passes --no-loadscope-reorder, or xdist would hand files
# out by their number of tests): on the workers the last file to start is then a short one,
# not the standalone cluster or the daemon (measured with --durations).
LONGEST_FIRST = (
    "test_runs_and_time_zones.py",
    "test_ui_and_daemon.py",
    "test_cluster.py",
    "test_assets.py",
    "test_unity_catalog.py",
    "test_databricks.py",
    "test_demo.py",
    "test_other_time_zone.py",
    "test_public_sample.py",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    rank = {name: position for position, name in enumerate(LONGEST_FIRST)}
    # A stable sort: the tests of a file keep their order.
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))
