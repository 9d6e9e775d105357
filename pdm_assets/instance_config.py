"""The Dagster instance configuration (dagster.yaml) that the project writes into its home.

Run monitoring is on, so the daemon fails a run whose worker never started or that ran past
`max_runtime_seconds` (a run killed with -9 stays STARTED otherwise: the default run launcher
cannot see its worker die). An existing dagster.yaml is the user's and is left as it is.
"""

import sys
from pathlib import Path

RUN_MONITORING_YAML = """\
# Written by pdm_assets (pdm_assets/instance_config.py); edit freely, it is not rewritten.
run_monitoring:
  enabled: true
  # A run whose worker has not started after 3 minutes is failed.
  start_timeout_seconds: 180
  # A run still going after 6 hours is failed: the longest job here (a year's ingest) takes
  # minutes, so such a run lost its worker (killed, machine slept) and would stay STARTED.
  max_runtime_seconds: 21600
  poll_interval_seconds: 60
"""


def ensure_instance_yaml(dagster_home: Path) -> Path:
    """Write `<dagster_home>/dagster.yaml` with run monitoring on, unless one exists."""
    dagster_home.mkdir(parents=True, exist_ok=True)
    path = dagster_home / "dagster.yaml"
    if not path.exists():
        path.write_text(RUN_MONITORING_YAML, encoding="utf-8")
    return path


if __name__ == "__main__":
    # `make ui`: python -m pdm_assets.instance_config DAGSTER_HOME
    ensure_instance_yaml(Path(sys.argv[1]))
