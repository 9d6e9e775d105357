"""What keeps daily operation from losing runs: the dagster.yaml the project writes (retries,
the one-writer pool, run monitoring) and the watchdog that fails runs whose worker died."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest
import yaml
from dagster._core.events import EngineEventData

from pdm_assets.definitions import build_definitions
from pdm_assets.defs.instance_config import (
    HEADER,
    MAX_RETRIES,
    WAREHOUSE_POOL,
    ensure_instance_yaml,
)
from pdm_assets.defs.jobs import TRAIN_JOB
from pdm_assets.defs.watchdog import RUN_WORKER_WATCHDOG, fail_dead_runs, process_alive


def test_the_instance_the_project_writes_retries_monitors_and_has_one_writer(
    tmp_path: Path,
) -> None:
    ensure_instance_yaml(tmp_path / "dagster")
    with dg.DagsterInstance.from_config(str(tmp_path / "dagster")) as instance:
        assert instance.run_monitoring_enabled
        assert instance.run_monitoring_start_timeout_seconds == 180
        assert instance.run_monitoring_max_runtime_seconds == 21600
        assert instance.run_retries_enabled
        assert instance.run_retries_max_retries == MAX_RETRIES
        pools = instance.get_concurrency_config().pool_config
        assert pools.default_pool_limit == 1
        assert pools.pool_granularity.value == "run"


def test_the_project_file_is_merged_again_and_keeps_what_was_added(tmp_path: Path) -> None:
    path = ensure_instance_yaml(tmp_path / "dagster")
    # An older project file, plus a key someone added.
    path.write_text(f"{HEADER}\nrun_monitoring:\n  enabled: true\ntelemetry:\n  enabled: false\n")
    ensure_instance_yaml(tmp_path / "dagster")
    merged = yaml.safe_load(path.read_text())
    assert merged["telemetry"] == {"enabled": False}
    assert merged["run_retries"] == {"enabled": True, "max_retries": MAX_RETRIES}
    assert merged["run_monitoring"]["max_runtime_seconds"] == 21600


def test_a_users_own_file_is_left_alone_and_what_it_lacks_is_named(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "dagster" / "dagster.yaml"
    path.parent.mkdir()
    path.write_text("telemetry:\n  enabled: false\nrun_retries:\n  enabled: true\n")
    with caplog.at_level("WARNING"):
        ensure_instance_yaml(tmp_path / "dagster")
    assert path.read_text() == "telemetry:\n  enabled: false\nrun_retries:\n  enabled: true\n"
    assert f"run_retries.max_retries: {MAX_RETRIES}" in caplog.text
    assert "concurrency.pools.granularity: 'run'" in caplog.text
    assert "run_retries.enabled" not in caplog.text


def test_every_daily_asset_writes_in_the_one_writer_pool_and_training_does_not() -> None:
    defs = build_definitions()
    graph = defs.resolve_asset_graph()
    pools = {key.to_user_string(): graph.get(key).pools for key in graph.get_all_asset_keys()}
    model = defs.resolve_job_def(TRAIN_JOB).asset_layer.asset_graph
    assert pools["failure_model"] in (set(), None)
    daily = [name for name in pools if name != "failure_model"]
    assert daily and all(pools[name] == {WAREHOUSE_POOL} for name in daily), pools
    assert model is not None


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_a_started_run_whose_worker_died_is_failed_and_a_live_one_is_not() -> None:
    with dg.DagsterInstance.ephemeral() as instance:
        dead = instance.add_run(dg.DagsterRun(job_name="x", status=dg.DagsterRunStatus.STARTED))
        live = instance.add_run(dg.DagsterRun(job_name="x", status=dg.DagsterRunStatus.STARTED))
        waiting = instance.add_run(dg.DagsterRun(job_name="x", status=dg.DagsterRunStatus.STARTED))
        dead_pid = _dead_pid()
        for run, pid in ((dead, dead_pid), (live, os.getpid())):
            instance.report_engine_event(
                f"Started process for run (pid: {pid}).", run, EngineEventData.in_process(pid)
            )
        assert not process_alive(dead_pid) and process_alive(os.getpid())
        assert fail_dead_runs(instance) == [dead.run_id]
        statuses = {r.run_id: r.status for r in instance.get_runs()}
        assert statuses[dead.run_id] == dg.DagsterRunStatus.FAILURE
        # A run that has not reported its pid yet is left alone.
        assert statuses[live.run_id] == statuses[waiting.run_id] == dg.DagsterRunStatus.STARTED
        failure = instance.all_logs(dead.run_id, of_type=dg.DagsterEventType.RUN_FAILURE)
        assert f"pid {dead_pid}" in (failure[0].message or failure[0].dagster_event.message)


def test_the_watchdog_sensor_fails_dead_runs_on_the_default_launcher(tmp_path: Path) -> None:
    sensor = build_definitions().resolve_sensor_def(RUN_WORKER_WATCHDOG)
    # In memory, runs are in-process (nothing to watch): the sensor says so and skips.
    with dg.DagsterInstance.ephemeral() as memory:
        skipped = sensor.evaluate_tick(dg.build_sensor_context(instance=memory))
        assert "not the default run launcher" in skipped.skip_message
    # The instance `make ui` runs: sqlite storage, the default run launcher.
    ensure_instance_yaml(tmp_path)
    with dg.DagsterInstance.from_config(str(tmp_path)) as instance:
        run = instance.add_run(dg.DagsterRun(job_name="x", status=dg.DagsterRunStatus.STARTED))
        pid = _dead_pid()
        instance.report_engine_event("started", run, EngineEventData.in_process(pid))
        result = sensor.evaluate_tick(dg.build_sensor_context(instance=instance))
        assert f"failed 1 run(s) whose worker died: ['{run.run_id}']" in result.skip_message


def test_a_failure_a_retry_cannot_fix_is_not_retried_and_others_are(tmp_path: Path) -> None:
    from dagster._core.storage.tags import RUN_FAILURE_REASON_TAG
    from dagster._daemon.auto_run_reexecution.auto_run_reexecution import should_retry

    from pdm_assets.defs.retries import fail_without_retry

    ensure_instance_yaml(tmp_path)
    with dg.DagsterInstance.from_config(str(tmp_path)) as instance:

        def failed_run() -> dg.DagsterRun:
            return instance.add_run(
                dg.DagsterRun(
                    job_name="x",
                    status=dg.DagsterRunStatus.FAILURE,
                    tags={RUN_FAILURE_REASON_TAG: "STEP_FAILURE"},
                )
            )

        # The retry daemon's own decision, on the instance the project writes.
        assert should_retry(failed_run(), instance)
        hole = failed_run()
        failure = fail_without_retry(instance, hole.run_id, dg.Failure("raw_errors lacks 1 day"))
        assert failure.description == "raw_errors lacks 1 day"
        tagged = instance.get_run_by_id(hole.run_id)
        assert tagged is not None and not should_retry(tagged, instance)


_HANDLERS = (
    "import signal; print(signal.getsignal(signal.SIGINT) is signal.SIG_IGN, "
    "signal.getsignal(signal.SIGTERM) is signal.SIG_IGN)"
)


def test_a_background_job_of_make_ui_gets_sigint_and_sigterm_back() -> None:
    """A shell without job control starts `cmd &` with SIGINT ignored, and dagster maps SIGTERM
    onto SIGINT's handler: `make ui`'s dagster dev ignored both (issue 19, finding 10)."""
    python = sys.executable
    plain = subprocess.run(
        ["sh", "-c", f"'{python}' -c '{_HANDLERS}' & wait"], capture_output=True, text=True
    )
    assert plain.stdout.split() == ["True", "False"]  # what the shell does to a background job
    reset = subprocess.run(
        [
            "sh",
            "-c",
            f"'{python}' -m pdm_assets.dev.default_signals '{python}' -c '{_HANDLERS}' & wait",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    assert reset.stdout.split() == ["False", "False"]
