"""Shared fixtures: one local Spark session for the whole test session, and throwaway homes."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from pyspark.sql import SparkSession

from pdm_assets.adapters.spark import SparkResource
from pdm_assets_tests.support.environment import use_settings


@pytest.fixture(scope="session")
def spark() -> Iterator[SparkSession]:
    session = SparkResource(master="local[2]").get_session()
    yield session
    session.stop()


@pytest.fixture
def pdm_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A project home in a temp folder, with every PDM_* setting pointing into it."""
    home = tmp_path / "home"
    use_settings(monkeypatch, home)
    monkeypatch.setenv("DAGSTER_HOME", str(home / "dagster"))
    (home / "dagster").mkdir(parents=True)
    (home / "dagster" / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    return home


# The slow group first, then the assets, then the unit tests (make test passes
# --no-loadscope-reorder, or xdist would hand files out by their number of tests): the last files
# the two workers start are then short ones, not the standalone cluster or the daemon.
LAYER_ORDER = ("integration", "assets", "unit")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    def rank(item: pytest.Item) -> int:
        layer = item.path.parent.name
        return LAYER_ORDER.index(layer) if layer in LAYER_ORDER else len(LAYER_ORDER)

    # A stable sort: the files of a layer and the tests of a file keep their order.
    items.sort(key=rank)
