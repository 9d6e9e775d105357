"""Whole runs where data used to be lost or changed silently: holey lookbacks, ranges run out of
order, the data's end, two runs writing the same partitions at once, and a machine whose local
time zone is not UTC. Each run here is a real Dagster run on a small simulated fleet."""

from __future__ import annotations

import fcntl
import re
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import dagster as dg
import pytest
from pyspark.sql import DataFrame

from pdm_assets.adapters.warehouse.folder import LOCK_FILE, FolderWarehouse
from pdm_assets.core.fleet import DEFAULT_FLEET_FILE
from pdm_assets.definitions import build_definitions
from pdm_assets.defs.jobs import INGEST_JOB
from pdm_assets.settings import Settings, load_settings
from pdm_assets.simulator.fleet_simulator import FleetSpec, simulate, write_landing
from pdm_assets_tests.support import graph_runs
from pdm_assets_tests.support.environment import clean_environment, range_tags, use_settings
from pdm_assets_tests.support.frames import assert_same_rows

pytestmark = pytest.mark.slow

MACHINES = 3
FLEET = {"PDM_SIM_MACHINES": str(MACHINES), "PDM_SIM_SEED": "7"}


def _failures(result: dg.ExecuteInProcessResult) -> str:
    """The text of every step failure of a run: descriptions and error messages."""
    texts = []
    for event in result.all_events:
        if event.is_step_failure:
            data = event.step_failure_data
            texts.append(data.error.message if data.error else "")
            if data.user_failure_data and data.user_failure_data.description:
                texts.append(data.user_failure_data.description)
    return "\n".join(texts)


@dataclass
class Home:
    settings: Settings
    defs: dg.Definitions
    instance: dg.DagsterInstance

    def ingest(self, first: str, last: str) -> dg.ExecuteInProcessResult:
        return self.defs.resolve_job_def(INGEST_JOB).execute_in_process(
            instance=self.instance, tags=range_tags(first, last), raise_on_error=False
        )

    def dataset(self, spark, name: str) -> DataFrame:  # type: ignore[no-untyped-def]
        return FolderWarehouse(Path(self.settings.warehouse)).read_all(spark, name)


@pytest.fixture
def make_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator:  # type: ignore[type-arg]
    patch = pytest.MonkeyPatch()
    instances: list[dg.DagsterInstance] = []

    def make(days: int) -> Home:
        home = tmp_path_factory.mktemp("home")
        use_settings(patch, home, **FLEET, PDM_SIM_DAYS=str(days))
        settings = load_settings()
        # In memory: an on-disk sqlite event log costs ~12 ms per event.
        instance = dg.DagsterInstance.ephemeral()
        instances.append(instance)
        return Home(settings, build_definitions(settings), instance)

    yield make
    for instance in instances:
        instance.dispose()
    patch.undo()


def test_holes_out_of_order_ranges_and_the_data_end(make_home, spark) -> None:  # type: ignore[no-untyped-def]
    # The reference: eight days landed and ingested in one run.
    reference = make_home(days=8)
    whole = reference.ingest("2015-01-01", "2015-01-08")
    assert whole.success, _failures(whole)
    # A clean range that starts at the first day passes null_rates: the first observation's
    # one-reading windows (1 of 16 rows, 6.25% > 5%) are reported apart, not judged.
    [check] = [c for c in whole.get_asset_check_evaluations() if c.check_name == "null_rates"]
    assert check.passed
    assert check.metadata["warm_up_null_rates_not_judged"].value["volt_sd_12h"] > 0.05

    # The data's end: day 9 has not landed, so it cannot be ingested as an empty day...
    beyond = reference.ingest("2015-01-09", "2015-01-09")
    assert not beyond.success
    message = _failures(beyond)
    assert "no complete landing folder for 2015-01-09" in message
    assert "the simulated fleet covers 2015-01-01 .. 2015-01-08" in message
    # ... and the labels whose horizon reaches past the last landed day stay censored:
    # t + 7 d <= 2015-01-09 00:00 only for 01-01 00:00, 01-01 12:00 and 01-02 00:00.
    labels = reference.dataset(spark, "failure_labels")
    assert labels.where("not censored").count() == MACHINES * 3

    # Another home: the later range first. Its features would read a lookback with holes.
    home = make_home(days=8)
    later = home.ingest("2015-01-06", "2015-01-08")
    assert not later.success
    message = _failures(later)
    # Whichever input is loaded first names its missing days (errors: 01-05; telemetry:
    # 01-04 .. 01-05; maintenance and failures: 01-01 .. 01-05).
    assert re.search(r"raw_\w+ lacks \d+ of the \d+ days .*: 2015-01-0[1-5]", message), message
    assert "materialise those days first" in message
    # A retry would find the same hole: the run is marked so that run retries leave it.
    failed = home.instance.get_run_by_id(later.run_id)
    assert failed is not None and failed.tags["dagster/retry_on_asset_or_op_failure"] == "false"
    assert home.instance.get_materialized_partitions(dg.AssetKey("machine_features")) == set()
    # The earlier range, then the later one again: now equal to the one-run reference.
    assert home.ingest("2015-01-01", "2015-01-05").success
    assert home.ingest("2015-01-06", "2015-01-08").success
    for name in ("machine_features", "failure_labels"):
        ours, theirs = home.dataset(spark, name), reference.dataset(spark, name)
        assert ours.count() == MACHINES * 8 * 2, name
        assert_same_rows(theirs, ours)


def _run_graph(home: Path, steps: list[str], log: Path, **env: str) -> subprocess.Popen[bytes]:
    """Jobs of the graph in a process of its own (pdm_assets_tests/support/graph_runs.py)."""
    environment = {**clean_environment(), **FLEET, "PDM_HOME": str(home), **env}
    return graph_runs.start(environment, steps, log)


WAITING = "raw_telemetry: another run is writing this dataset; waiting"


def test_two_runs_writing_the_same_partitions_at_once_take_turns(tmp_path: Path, spark) -> None:
    home = tmp_path / "home"
    # Landed beforehand, so the two runs only read the landing folder.
    write_landing(
        simulate(FleetSpec(machines=MACHINES, start=date(2015, 1, 1), days=4, seed=7)),
        home / "landing",
    )
    # The machines too: the runs write telemetry only, the lock under test. (Two runs writing
    # the machines as well would each validate telemetry against machines the other may have
    # replaced meanwhile, which the commit refuses: test_storage.py.)
    graph_runs.run_here({**FLEET, "PDM_HOME": str(home), "PDM_SIM_DAYS": "4"}, ["machines"])
    lock_path = home / "warehouse" / "raw_telemetry" / LOCK_FILE
    lock_path.parent.mkdir(parents=True)
    logs = [tmp_path / "first.log", tmp_path / "second.log"]
    with lock_path.open("a+") as lock:
        # This test holds the telemetry lock until both runs are queued behind it.
        fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
        steps = ["telemetry:2015-01-01:2015-01-04"]
        runs = [_run_graph(home, steps, log, PDM_SIM_DAYS="4") for log in logs]
        deadline = time.monotonic() + 300
        while not all(WAITING in log.read_text(errors="replace") for log in logs):
            assert time.monotonic() < deadline, [log.read_text()[-2000:] for log in logs]
            assert all(run.poll() is None for run in runs), "a run ended before the lock"
            time.sleep(0.5)
        fcntl.flock(lock.fileno(), fcntl.LOCK_UN)
    for run, log in zip(runs, logs, strict=True):
        graph_runs.finish(run, log, timeout=600)
    # Both are green; each said it waited and that its rows replace the other's.
    for log in logs:
        assert "raw_telemetry: waited" in log.read_text()
    warehouse = FolderWarehouse(home / "warehouse")
    telemetry = warehouse.dataset_path("raw_telemetry")
    assert [p.name for p in (telemetry / "_versions").iterdir() if p.name.startswith("_")] == []
    # Per day: the live version, and the one the other run's write replaced (kept an hour for
    # readers); nothing staged is left.
    for day_versions in (telemetry / "_versions").iterdir():
        assert len(list(day_versions.iterdir())) == 2, day_versions.name
    rows = warehouse.read_all(spark, "raw_telemetry")
    assert rows.select("machine_id", "datetime").distinct().count() == rows.count()
    assert MACHINES * 4 * 24 * 0.97 <= rows.count() <= MACHINES * 4 * 24


def _utc_all_year() -> bool:
    """Whether this process's local zone is UTC, with no summer time."""
    return time.timezone == 0 and time.altzone == 0 and not time.daylight


TZ_FLEET = {
    # Across the night Europe/Berlin moves its clocks forward (2015-03-29).
    "PDM_PARTITIONS_START": "2015-03-10",
    "PDM_SIM_DAYS": "25",
}


def _two_day_horizon(folder: Path) -> Path:
    """The default fleet description with a 48 h horizon, so 25 days hold a trainable month."""
    text = DEFAULT_FLEET_FILE.read_text().replace("horizon_hours = 168", "horizon_hours = 48")
    assert "horizon_hours = 48" in text
    path = folder / "fleet-48h.toml"
    path.write_text(text)
    return path


def test_ingest_and_scores_under_berlin_time_equal_the_utc_run(tmp_path: Path, spark) -> None:
    tz_fleet = {**TZ_FLEET, "PDM_FLEET": str(_two_day_horizon(tmp_path))}
    utc_home, berlin_home = tmp_path / "utc", tmp_path / "berlin"
    ingest, score = "ingest:2015-03-10:2015-04-03", "score:2015-04-01:2015-04-03"
    utc_log, berlin_log = tmp_path / "utc.log", tmp_path / "berlin.log"
    utc_steps = [ingest, "train:2015-04-01", score]
    if _utc_all_year():
        # This process is a UTC run already: its warm Spark saves a process and a JVM.
        graph_runs.run_here({**FLEET, **tz_fleet, "PDM_HOME": str(utc_home)}, utc_steps)
    else:
        utc_run = _run_graph(utc_home, utc_steps, utc_log, TZ="UTC", **tz_fleet)
        graph_runs.finish(utc_run, utc_log, timeout=600)
    # The Berlin run scores with the model the UTC run registered: same model, same inputs.
    tracking = f"sqlite:///{utc_home / 'mlflow' / 'mlflow.db'}"
    berlin = _run_graph(
        berlin_home,
        [ingest, score],
        berlin_log,
        TZ="Europe/Berlin",
        PDM_MLFLOW_TRACKING_URI=tracking,
        **tz_fleet,
    )
    graph_runs.finish(berlin, berlin_log, timeout=600)
    names = ("raw_telemetry", "raw_failures", "machine_features", "failure_labels")
    for name in (*names, "machine_scores"):
        utc_rows = FolderWarehouse(utc_home / "warehouse").read_all(spark, name)
        berlin_rows = FolderWarehouse(berlin_home / "warehouse").read_all(spark, name)
        assert_same_rows(utc_rows, berlin_rows)
    scores = FolderWarehouse(berlin_home / "warehouse").read_all(spark, "machine_scores")
    assert scores.count() == MACHINES * 3 * 2
    # Nothing was quarantined in either zone (a shifted window would move rows out of it).
    for home in (utc_home, berlin_home):
        quarantine = FolderWarehouse(home / "warehouse").read_all(spark, "quarantine_telemetry")
        assert quarantine.count() == 0
