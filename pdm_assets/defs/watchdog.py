"""A sensor that fails runs whose worker process died, so their retries start.

Dagster's default run launcher starts each run's worker as a process on this host and has no
health check: a worker killed with -9 (the OOM killer, a reboot, a kill by hand) leaves its run
STARTED until run monitoring's `max_runtime_seconds`, hours later, and the days it was writing
wait for it. The worker reports its pid in an engine event when it starts ("Started process for
run (pid: N)"); every tick this sensor looks at each STARTED run's pid and, when no such process
lives (or it is a zombie), reports the run failed, naming the pid. The instance's run retries
(instance_config.py) then re-execute it.

Only for the default run launcher, whose workers run on the host of the code location that runs
this sensor; with any other launcher (Kubernetes, Docker, ECS: each has its own health check)
the sensor skips.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import dagster as dg
from dagster._core.launcher import DefaultRunLauncher

RUN_WORKER_WATCHDOG = "run_worker_watchdog"


def process_alive(pid: int) -> bool:
    """True when a process with this pid exists and is not a zombie."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    stat = Path(f"/proc/{pid}/stat")
    try:
        # The state is the field after the parenthesised command name.
        state = stat.read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True
    return state not in ("Z", "X")


def worker_pid(instance: dg.DagsterInstance, run_id: str) -> int | None:
    """The pid the run's worker reported when it started, or None before it did."""
    records = instance.get_records_for_run(
        run_id, of_type=dg.DagsterEventType.ENGINE_EVENT, limit=50
    ).records
    for record in records:
        event = record.event_log_entry.dagster_event
        data = event.engine_event_data if event else None
        pid = data.metadata.get("pid") if data and data.metadata else None
        if pid is not None and str(pid.value).isdigit():
            return int(str(pid.value))
    return None


def fail_dead_runs(
    instance: dg.DagsterInstance, alive: Callable[[int], bool] = process_alive
) -> list[str]:
    """Report every STARTED run whose worker process is gone as failed; their ids."""
    failed = []
    for run in instance.get_runs(filters=dg.RunsFilter(statuses=[dg.DagsterRunStatus.STARTED])):
        pid = worker_pid(instance, run.run_id)
        if pid is None or alive(pid):
            continue
        instance.report_run_failed(
            run,
            message=(
                f"The run worker (pid {pid}) is gone (killed, or its machine restarted) while the "
                "run was STARTED; failed by the run-worker watchdog so that its retry starts."
            ),
        )
        failed.append(run.run_id)
    return failed


def build_run_worker_watchdog(minimum_interval_seconds: int = 30) -> dg.SensorDefinition:
    @dg.sensor(
        name=RUN_WORKER_WATCHDOG,
        minimum_interval_seconds=minimum_interval_seconds,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description=(
            "Fails a STARTED run whose worker process died (kill -9, OOM, reboot), so the "
            "instance's run retries start it again; the default run launcher cannot see it."
        ),
    )
    def run_worker_watchdog(context: dg.SensorEvaluationContext) -> dg.SkipReason:
        if not isinstance(context.instance.run_launcher, DefaultRunLauncher):
            return dg.SkipReason("not the default run launcher: its own health check applies")
        failed = fail_dead_runs(context.instance)
        if failed:
            context.log.warning(f"failed runs whose worker died: {', '.join(failed)}")
            return dg.SkipReason(f"failed {len(failed)} run(s) whose worker died: {failed}")
        return dg.SkipReason("every started run's worker is alive")

    return run_worker_watchdog
