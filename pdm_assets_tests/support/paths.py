"""Where the tests find the checkout and the public sample, and a free local port."""

from __future__ import annotations

import socket
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
# The public sample, shipped with the tests (its source and licence in the README beside it).
SAMPLE_DIR = REPO_ROOT / "pdm_assets_tests" / "data" / "azure-pdm-sample"
# Dagster instance settings for a test home: no telemetry is sent from a test run.
NO_TELEMETRY = {"telemetry": {"enabled": False}}


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])
