"""The raw and feature assets called directly, as Dagster calls them in a step, on a landing
folder of two machines and three days: each body with its own inputs, resources and config."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import dagster as dg
import pytest
from pyspark.sql import DataFrame, SparkSession

from pdm_assets.adapters.sources import LandingFolderSource
from pdm_assets.adapters.spark import SparkResource
from pdm_assets.core.fleet import DEFAULT_FLEET
from pdm_assets.core.landing import table_path
from pdm_assets.definitions import build_definitions
from pdm_assets.defs.io_manager import WarehouseReader
from pdm_assets.defs.thresholds import CheckThresholds
from pdm_assets.settings import load_settings
from pdm_assets.simulator.fleet_simulator import FleetSpec, simulate, write_landing
from pdm_assets_tests.support.environment import use_settings

DAY = "2015-01-02"
RAW_TABLES = ("raw_telemetry", "raw_errors", "raw_maintenance", "raw_failures")


@dataclass
class Day:
    """What the raw assets returned for DAY, called one by one."""

    assets: dg.Definitions
    landing: Path
    home: Path
    outputs: dict[str, DataFrame]
    checks: dict[str, dict[str, dg.AssetCheckResult]]


def _outputs(results: list[object]) -> dict[str, DataFrame]:
    return {str(r.output_name): r.value for r in results if isinstance(r, dg.Output)}


def _checks(results: list[object]) -> dict[str, dg.AssetCheckResult]:
    return {str(r.check_name): r for r in results if isinstance(r, dg.AssetCheckResult)}


@pytest.fixture(scope="module")
def day(tmp_path_factory: pytest.TempPathFactory, spark: SparkSession) -> Iterator[Day]:
    landing = tmp_path_factory.mktemp("landing")
    write_landing(simulate(FleetSpec(machines=2, days=3, seed=5)), landing)
    home = tmp_path_factory.mktemp("home")
    with pytest.MonkeyPatch.context() as patch:
        use_settings(
            patch,
            home,
            PDM_DATA_SOURCE="landing",
            PDM_LANDING=str(landing),
            PDM_PARTITIONS_END="2015-01-04",
        )
        assets = build_definitions(load_settings())
        resources = {
            "spark": SparkResource(master="local[2]"),
            "source": LandingFolderSource(landing_dir=str(landing)),
            "step_launcher": None,
        }
        outputs = _outputs(list(assets.get_assets_def("raw_machines")(**resources)))
        checks = {}
        for name in RAW_TABLES:
            results = list(
                assets.get_assets_def(name)(
                    dg.build_asset_context(partition_key=DAY),
                    config=CheckThresholds(),
                    raw_machines=outputs["raw_machines"],
                    **resources,
                )
            )
            outputs.update(_outputs(results))
            checks[name] = _checks(results)
        yield Day(assets, landing, home, outputs, checks)


def _data_lines(path: str) -> int:
    return len(Path(path).read_text().splitlines()) - 1


def test_raw_machines_and_a_days_telemetry_keep_every_landed_row(day: Day) -> None:
    assert day.outputs["raw_machines"].count() == 2
    assert day.outputs["quarantine_machines"].count() == 0
    landed_rows = _data_lines(table_path(day.landing, date(2015, 1, 2), "telemetry"))
    assert day.outputs["raw_telemetry"].count() == landed_rows
    assert day.outputs["quarantine_telemetry"].count() == 0
    assert {str(row["date"]) for row in day.outputs["raw_telemetry"].collect()} == {DAY}
    checks = day.checks["raw_telemetry"]
    every = {"schema", "no_duplicate_keys", "quarantine_share"}
    assert set(checks) == {*every, "every_machine_reporting"}
    assert all(check.passed for check in checks.values())
    # The other tables have no machine check.
    assert set(day.checks["raw_failures"]) == every


def test_features_and_labels_of_a_day_from_its_raw_rows(day: Day) -> None:
    results = list(
        day.assets.get_assets_def("machine_features")(
            dg.build_asset_context(partition_key=DAY),
            step_launcher=None,
            raw_machines=day.outputs["raw_machines"],
            **{name: day.outputs[name] for name in RAW_TABLES},
        )
    )
    features = _outputs(results)["result"]
    # Every machine at every observation time of the day (each 12 h by default): 2 x 2 rows.
    per_day = 24 // DEFAULT_FLEET.observation_hours
    assert features.count() == 2 * per_day
    assert features.select("machine_id", "datetime").distinct().count() == 2 * per_day
    assert "null_rates" in _checks(results)
    # No raw_failures day is in the (empty) warehouse: failures are known up to the window's
    # start, so every label is censored.
    labelled = day.assets.get_assets_def("failure_labels")(
        dg.build_asset_context(partition_key=DAY),
        step_launcher=None,
        machine_features=features,
        raw_failures=day.outputs["raw_failures"],
        warehouse=WarehouseReader(root=str(day.home / "warehouse")),
    )
    assert labelled.metadata["failures_known_until"].value == "2015-01-02T00:00:00+00:00"
    rows = labelled.value.collect()
    assert len(rows) == 2 * per_day
    assert all(row["censored"] for row in rows)
