"""The Dagster instance configuration (dagster.yaml) that the project writes into its home.

What the project owns in it, and why:

* Run monitoring: the daemon fails a run whose worker never started, or that ran past
  `max_runtime_seconds`. (A worker killed with -9 is caught sooner by the run-worker watchdog
  sensor, watchdog.py: the default run launcher cannot see its worker die.)
* Run retries: a failed run is re-executed up to MAX_RETRIES times (the landing sensor's runs,
  a backfill's runs), so one crash or a lost lock does not leave a day stuck; what still fails
  is named stuck by the sensor.
* One run at a time writes the daily tables: the daily assets share the concurrency pool
  WAREHOUSE_POOL, and the pool's limit is 1 at run granularity, so the run queue holds a run
  until no other run of the pool is in progress. Two runs never read, compute and write the same
  partitions at once, whoever started them (the sensor, a backfill, the UI).

* Storage: with PDM_DAGSTER_POSTGRES_URL set, runs, events and schedules live in that Postgres
  database (dagster-postgres), the production form in which the webserver and the daemon run as
  two services (docs/deploy.md); the file names the variable, never the URL. Without it, the
  sqlite files under DAGSTER_HOME (Dagster's default), for one person on one machine.

A dagster.yaml that this module wrote (its first line says so) gets these keys merged in again
on every start, so an upgrade brings new ones and whatever else was added to the file stays. A
dagster.yaml someone else wrote is theirs: it is left as it is, and what it lacks of the above
is named.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Any

import yaml

from pdm_assets.settings import POSTGRES_URL_VARIABLE, load_settings

log = logging.getLogger(__name__)

HEADER = (
    "# Written by pdm_assets (pdm_assets/defs/instance_config.py); its keys are merged in again."
)
WAREHOUSE_POOL = "pdm_warehouse"
MAX_RETRIES = 2

PROJECT_SETTINGS: dict[str, Any] = {
    "run_monitoring": {
        "enabled": True,
        # A run whose worker has not started after 3 minutes is failed.
        "start_timeout_seconds": 180,
        # A run still going after 6 hours is failed: the longest job here (a year's ingest)
        # takes minutes, so such a run lost its worker (killed, machine slept).
        "max_runtime_seconds": 21600,
        "poll_interval_seconds": 60,
    },
    "run_retries": {"enabled": True, "max_retries": MAX_RETRIES},
    "concurrency": {"pools": {"granularity": "run", "default_limit": 1}},
}


def merged(current: dict[str, Any], owned: dict[str, Any]) -> dict[str, Any]:
    """`current` with every key of `owned` set to the project's value (nested, key by key)."""
    result = dict(current)
    for key, value in owned.items():
        if isinstance(value, dict) and isinstance(result.get(key), dict):
            result[key] = merged(result[key], value)
        else:
            result[key] = value
    return result


def missing_settings(current: dict[str, Any], owned: dict[str, Any], prefix: str = "") -> list[str]:
    """The project's keys that `current` lacks or sets otherwise, as `a.b: value`."""
    missing = []
    for key, value in owned.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            found = current.get(key)
            missing += missing_settings(found if isinstance(found, dict) else {}, value, f"{name}.")
        elif current.get(key) != value:
            missing.append(f"{name}: {value!r}")
    return missing


POSTGRES_STORAGE: dict[str, Any] = {
    "storage": {"postgres": {"postgres_url": {"env": POSTGRES_URL_VARIABLE}}}
}


def project_settings(postgres: bool) -> dict[str, Any]:
    return {**PROJECT_SETTINGS, **(POSTGRES_STORAGE if postgres else {})}


def ensure_instance_yaml(dagster_home: Path, postgres: bool = False) -> Path:
    """Write or update `<dagster_home>/dagster.yaml` with the project's settings (and Postgres
    storage when `postgres`); a file the project did not write is left alone, and the settings
    it lacks are logged."""
    dagster_home.mkdir(parents=True, exist_ok=True)
    path = dagster_home / "dagster.yaml"
    if path.exists():
        text = path.read_text(encoding="utf-8")
        current = yaml.safe_load(text) or {}
        if not text.startswith(HEADER):
            lacking = missing_settings(current, project_settings(postgres))
            if lacking:
                log.warning(
                    "%s is not the project's; it lacks %s (run retries, the one-writer pool and "
                    "run monitoring are then off or different)",
                    path,
                    "; ".join(lacking),
                )
            return path
    else:
        current = {}
    if not postgres:
        # The storage key is the project's: without the variable, back to the sqlite default.
        current.pop("storage", None)
    body = yaml.safe_dump(merged(current, project_settings(postgres)), sort_keys=False)
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(f"{HEADER}\n{body}", encoding="utf-8")
    temporary.replace(path)
    return path


if __name__ == "__main__":
    # `make ui`: python -m pdm_assets.defs.instance_config DAGSTER_HOME
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    ensure_instance_yaml(Path(sys.argv[1]), postgres=load_settings().dagster_postgres)
