"""A landing folder someone else fills, selected as the source (PDM_DATA_SOURCE=landing): the
graph ingests it and leaves every byte of it as it was, writes nothing of its own there, and a
day that has not landed fails the run naming the day instead of being simulated."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import dagster as dg
import pytest

from pdm_assets.adapters.warehouse import FolderWarehouse
from pdm_assets.definitions import build_definitions
from pdm_assets.defs.jobs import INGEST_JOB
from pdm_assets.settings import load_settings
from pdm_assets.simulator.fleet_simulator import FleetSpec, simulate, write_landing
from pdm_assets_tests.support.environment import range_tags

pytestmark = pytest.mark.slow


def _tree(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def test_an_ingest_reads_a_producers_landing_folder_and_leaves_it_byte_for_byte(
    pdm_home: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, spark
) -> None:
    producer = tmp_path / "producer"
    simulated = simulate(FleetSpec(machines=4, days=5, seed=11))
    write_landing(simulated, producer, simulated.days[:3])
    before = _tree(producer)
    monkeypatch.setenv("PDM_DATA_SOURCE", "landing")
    monkeypatch.setenv("PDM_LANDING", str(producer))
    monkeypatch.setenv("PDM_PARTITIONS_END", "2015-01-06")
    settings = load_settings()
    defs = build_definitions(settings)
    job = defs.resolve_job_def(INGEST_JOB)
    with dg.DagsterInstance.ephemeral() as instance:
        tags = range_tags("2015-01-01", "2015-01-03")
        assert job.execute_in_process(instance=instance, tags=tags).success
        # Day 4 has not landed: the run fails naming it, and nothing is simulated for it.
        missing = job.execute_in_process(
            instance=instance, partition_key="2015-01-04", raise_on_error=False
        )
    assert not missing.success
    failure = next(event for event in missing.all_events if event.is_step_failure)
    error = failure.step_failure_data.error
    assert error is not None and "no complete landing folder for 2015-01-04" in error.message
    assert _tree(producer) == before
    assert not (pdm_home / "landing").exists()
    telemetry = FolderWarehouse(Path(settings.warehouse)).read_all(spark, "raw_telemetry")
    expected = sum(simulated.row_counts(day)["telemetry"] for day in simulated.days[:3])
    assert telemetry.count() == expected
    assert {row["date"] for row in telemetry.select("date").distinct().collect()} == {
        date(2015, 1, 1),
        date(2015, 1, 2),
        date(2015, 1, 3),
    }
