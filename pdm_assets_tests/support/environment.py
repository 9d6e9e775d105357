"""The environment a test home runs in, and the tags of a partition-range run.

A developer's shell may hold PDM_* settings (a CSV source, a Databricks environment, a tracking
server) that would steer a test's home elsewhere: every test home starts from none of them.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import pytest

RANGE_START = "dagster/asset_partition_range_start"
RANGE_END = "dagster/asset_partition_range_end"


def range_tags(first: str, last: str) -> dict[str, str]:
    """The tags of one run over the days first..last (a single-run backfill)."""
    return {RANGE_START: first, RANGE_END: last}


def clean_environment(base: Mapping[str, str] | None = None) -> dict[str, str]:
    """`base` (this process's environment by default) without PDM_* settings or DAGSTER_HOME,
    for a process a test starts."""
    base = os.environ if base is None else base
    return {
        name: value
        for name, value in base.items()
        if not name.startswith("PDM_") and name != "DAGSTER_HOME"
    }


def use_settings(patch: pytest.MonkeyPatch, home: Path, **settings: str) -> None:
    """Point this process's settings at `home` with `settings` (PDM_* names) and no others."""
    for name in [name for name in os.environ if name.startswith("PDM_")]:
        patch.delenv(name)
    patch.setenv("PDM_HOME", str(home))
    for name, value in settings.items():
        patch.setenv(name, value)
