"""The real webserver and daemon on 127.0.0.1: GraphQL, headless Chromium, sensor-launched runs.

`dagster dev` runs in its own process group in a temp home, its runs on a warm Spark Connect
server as `make ui` sets it up; a small fleet's January is ingested and the February model
trained beforehand, in process, against the same instance.
"""

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import dagster as dg
import pytest
from dagster_graphql import DagsterGraphQLClient, DagsterGraphQLClientError

from pdm_assets.adapters import spark_server
from pdm_assets.definitions import build_definitions
from pdm_assets.defs.instance_config import ensure_instance_yaml
from pdm_assets.defs.jobs import INGEST_JOB, TRAIN_JOB
from pdm_assets.settings import load_settings
from pdm_assets_tests.support.browser import CHROMIUM, open_page
from pdm_assets_tests.support.environment import clean_environment, range_tags
from pdm_assets_tests.support.models import model_run_config
from pdm_assets_tests.support.paths import REPO_ROOT, free_port

pytestmark = pytest.mark.slow

OUTPUT = REPO_ROOT / "test-output"
FLEET = {"PDM_SIM_MACHINES": "4", "PDM_SIM_DAYS": "40", "PDM_PARTITIONS_END": "2015-02-10"}


@dataclass
class Server:
    port: int
    home: Path
    env: dict[str, str]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def graphql(self, query: str, **variables: object) -> dict:  # type: ignore[type-arg]
        request = urllib.request.Request(
            f"{self.url}/graphql",
            data=json.dumps({"query": query, "variables": variables}).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.loads(response.read())  # type: ignore[no-any-return]


def _wait_until(predicate, timeout: float, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(1)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def _prepare_home(home: Path) -> dict[str, str]:
    """Ingest January and train February's model in process, against the home's instance."""
    env = {
        **clean_environment(),
        **FLEET,
        "PDM_HOME": str(home),
        "DAGSTER_HOME": str(home / "dagster"),
    }
    # The instance `make ui` writes (retries, the one-writer pool, run monitoring), without
    # telemetry.
    path = ensure_instance_yaml(home / "dagster")
    path.write_text(path.read_text() + "telemetry:\n  enabled: false\n")
    patch = pytest.MonkeyPatch()
    for name, value in env.items():
        patch.setenv(name, value)
    try:
        defs = build_definitions(load_settings())
        with dg.DagsterInstance.from_config(str(home / "dagster")) as instance:
            ingest = defs.resolve_job_def(INGEST_JOB).execute_in_process(
                instance=instance,
                tags=range_tags("2015-01-01", "2015-01-31"),
            )
            assert ingest.success
            train = defs.resolve_job_def(TRAIN_JOB).execute_in_process(
                instance=instance, partition_key="2015-02-01", run_config=model_run_config()
            )
            assert train.success
    finally:
        patch.undo()
    return env


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, spark) -> Iterator[Server]:
    home = tmp_path_factory.mktemp("ui-home")
    # As under `make ui`, the runs dagster dev launches meet a warm Spark Connect server instead
    # of starting a JVM each; it starts while January is ingested here.
    with ThreadPoolExecutor(max_workers=1) as pool:
        warm_spark = pool.submit(spark_server.start, home, free_port())
        try:
            env = _prepare_home(home)
            env["PDM_SPARK_MASTER"] = warm_spark.result()
            env.update(spark_server.client_environment(home))
        except BaseException:
            warm_spark.exception()  # its start ends first, so that stop finds its pid file
            spark_server.stop(home)
            raise
    port = free_port()
    log = (home / "dagster-dev.log").open("w")
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "dagster",
            "dev",
            "-w",
            str(REPO_ROOT / "workspace.yaml"),
            "-h",
            "127.0.0.1",
            "-p",
            str(port),
        ],
        cwd=REPO_ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        # Its own session, and default SIGINT handling: dagster dev ignores signals otherwise.
        start_new_session=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    running = Server(port=port, home=home, env=env)

    def answers() -> bool:
        try:
            data = running.graphql("{ version }")
        except OSError:
            return False
        return "data" in data

    try:
        _wait_until(answers, 120, "the webserver")
        yield running
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
        log.close()
        spark_server.stop(home)


def test_graphql_lists_the_assets_and_a_launched_partition_succeeds(server: Server) -> None:
    nodes = server.graphql("{ assetNodes { assetKey { path } groupName description } }")
    listed = {tuple(node["assetKey"]["path"]): node for node in nodes["data"]["assetNodes"]}
    assert ("failure_model",) in listed and ("machine_scores",) in listed
    assert all(node["description"] for node in listed.values())

    client = DagsterGraphQLClient("127.0.0.1", port_number=server.port)
    run_id = client.submit_job_execution(INGEST_JOB, tags={"dagster/partition": "2015-01-15"})

    def finished() -> bool:
        try:
            return client.get_run_status(run_id).value in ("SUCCESS", "FAILURE", "CANCELED")
        except DagsterGraphQLClientError:
            return False

    _wait_until(finished, 240, f"run {run_id}")
    assert client.get_run_status(run_id).value == "SUCCESS"


def test_chromium_renders_the_asset_graph(server: Server, tmp_path: Path) -> None:
    assert Path(CHROMIUM).exists(), "make test installs Debian's chromium package"
    url = f"{server.url}/locations/pdm_assets.definitions/asset-groups/features"
    with open_page(url, tmp_path / "profile") as page:
        # The graph draws its nodes one by one: wait until both are drawn.
        nodes = page.wait_for_text(["machine_features", "failure_labels"], timeout=90, every=True)
        assert nodes, f"the asset graph page shows no asset nodes: {page.text()[:500]}"
        # A first visit shows a "Join the community" dialog over the graph.
        if page.wait_for_text(["Join the Dagster community"], timeout=5):
            page.click_text("Skip")
            time.sleep(1)
        OUTPUT.mkdir(exist_ok=True)
        screenshot = OUTPUT / "asset-graph.png"
        page.screenshot(screenshot)
    assert screenshot.stat().st_size > 10_000
    assert sorted(nodes) == ["failure_labels", "machine_features"]


RAW_GROUP_ASSETS = [
    *(f"raw_{table}" for table in ("machines", "telemetry", "errors", "maintenance", "failures")),
    *(f"quarantine_{table}" for table in ("machines", "telemetry", "errors", "maint", "failures")),
]


def test_chromium_shows_the_quarantine_assets_with_their_rows_and_reasons(
    server: Server, tmp_path: Path
) -> None:
    # The group's list view: the graph view draws only the nodes in sight.
    list_url = f"{server.url}/locations/pdm_assets.definitions/asset-groups/raw/list"
    OUTPUT.mkdir(exist_ok=True)
    with open_page(list_url, tmp_path / "list") as page:
        nodes = page.wait_for_text(RAW_GROUP_ASSETS, timeout=90, every=True)
        if page.wait_for_text(["Join the Dagster community"], timeout=5):
            page.click_text("Skip")
            time.sleep(1)
        page.screenshot(OUTPUT / "raw-group-with-quarantine.png")
    assert sorted(nodes) == sorted(RAW_GROUP_ASSETS)
    # January was ingested before the server started: the asset page shows its last partition's
    # metadata, the rows written and the table of reasons.
    asset_url = f"{server.url}/assets/quarantine_telemetry"
    with open_page(asset_url, tmp_path / "asset") as page:
        expected = ["rows_written", "quarantine_reasons", "no rows quarantined"]
        shown = page.wait_for_text(expected, timeout=90, every=True)
        page.screenshot(OUTPUT / "quarantine-asset.png")
        assert shown == expected, page.text()[:800]


def test_a_dropped_day_is_scored_by_a_sensor_launched_run(server: Server) -> None:
    instance_dir = server.home / "dagster"
    started = time.monotonic()
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pdm_assets.simulator.fleet_simulator",
            "--landing",
            str(server.home / "landing"),
            "--machines",
            FLEET["PDM_SIM_MACHINES"],
            "--days",
            FLEET["PDM_SIM_DAYS"],
            "--start",
            "2015-01-01",
            "--seed",
            "42",
            "--day",
            "2015-02-01",
        ],
        check=True,
        env=server.env,
    )

    def scored() -> bool:
        with dg.DagsterInstance.from_config(str(instance_dir)) as instance:
            keys = instance.get_materialized_partitions(dg.AssetKey("machine_scores"))
        return "2015-02-01" in keys

    _wait_until(scored, 300, "machine_scores 2015-02-01 from a sensor-launched run")
    latency = time.monotonic() - started

    def sensor_runs() -> dict[str, dg.DagsterRun]:
        with dg.DagsterInstance.from_config(str(instance_dir)) as instance:
            runs = instance.get_runs(dg.RunsFilter(tags={"dagster/sensor_name": "landing_sensor"}))
        return {str(run.tags.get("dagster/partition")): run for run in runs}

    # Day 02-01's failures complete the 7-day horizon of 01-25 (ingested by the backfill, not
    # scored): its labels follow, in a run of their own once the landed day's run has written
    # them; the labels of 01-26 .. 01-31 wait for their horizons.
    def relabelled() -> bool:
        run = sensor_runs().get("2015-01-25")
        return run is not None and run.status == dg.DagsterRunStatus.SUCCESS

    _wait_until(relabelled, 240, "the labels of 2015-01-25 from a sensor-launched run")
    runs = sensor_runs()
    assert sorted(runs) == ["2015-01-25", "2015-02-01"]
    assert runs["2015-02-01"].asset_selection is None
    assert runs["2015-01-25"].asset_selection == {dg.AssetKey("failure_labels")}
    OUTPUT.mkdir(exist_ok=True)
    (OUTPUT / "sensor-latency.json").write_text(
        json.dumps({"day": str(date(2015, 2, 1)), "landed_to_scored_seconds": round(latency, 1)})
    )


def test_a_30_day_backfill_launched_over_graphql_is_one_run(server: Server) -> None:
    days = [date(2015, 1, day).isoformat() for day in range(2, 32)]
    launched = server.graphql(
        """mutation Launch($days: [String!]) {
          launchPartitionBackfill(backfillParams: {
            assetSelection: [{path: ["machine_features"]}], partitionNames: $days
          }) {
            __typename
            ... on LaunchBackfillSuccess { backfillId }
            ... on PythonError { message }
          }
        }""",
        days=days,
    )["data"]["launchPartitionBackfill"]
    assert launched["__typename"] == "LaunchBackfillSuccess", launched
    backfill_id = launched["backfillId"]

    def status() -> str:
        reply = server.graphql(
            """query Status($id: String!) {
              partitionBackfillOrError(backfillId: $id) { ... on PartitionBackfill { status } }
            }""",
            id=backfill_id,
        )
        return str(reply["data"]["partitionBackfillOrError"]["status"])

    _wait_until(
        lambda: status() in ("COMPLETED", "COMPLETED_SUCCESS", "FAILED", "CANCELED"),
        300,
        f"backfill {backfill_id}",
    )
    assert status() in ("COMPLETED", "COMPLETED_SUCCESS")
    with dg.DagsterInstance.from_config(str(server.home / "dagster")) as instance:
        runs = instance.get_runs(dg.RunsFilter(tags={"dagster/backfill": backfill_id}))
        assert len(runs) == 1
        run_id = runs[0].run_id
        written = {
            record.event_log_entry.dagster_event.partition  # type: ignore[union-attr]
            for record in instance.fetch_materializations(
                dg.AssetKey("machine_features"), limit=1000
            ).records
            if record.run_id == run_id
        }
    assert written == set(days)
