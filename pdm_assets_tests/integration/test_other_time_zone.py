"""The time-window tests again, in a process whose local zone is America/New_York.

A negative offset with summer time: a window edge built from a naive datetime, or a collected
timestamp read without `from_spark`, shifts there by 4 or 5 hours and these tests fail. The rest
of the suite runs in the machine's zone. One test here, so that the rerun shares make test's
workers with the other files instead of running alone after them.
"""

import os
import subprocess
import sys
import xml.etree.ElementTree as ElementTree
from pathlib import Path

import pytest

from pdm_assets_tests.support.paths import REPO_ROOT

pytestmark = pytest.mark.slow

ZONE = "America/New_York"
TIME_WINDOW_TESTS = (
    "test_features.py",
    "test_labels_and_training_rows.py",
    "test_validation.py",
    "test_sources.py",
    "test_storage.py",
)


def test_the_time_window_tests_pass_in_new_york_time(tmp_path: Path) -> None:
    report = tmp_path / "report.xml"
    tests = Path(__file__).parents[1] / "unit"
    rerun = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            f"--basetemp={tmp_path / 'rerun'}",
            f"--junitxml={report}",
            # Locks, sweeps and header checks read no time: once, in the machine's zone, is enough.
            "-m",
            "not any_zone",
            *(str(tests / name) for name in TIME_WINDOW_TESTS),
        ],
        cwd=REPO_ROOT,
        env={**os.environ, "TZ": ZONE},
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert rerun.returncode == 0, f"under TZ={ZONE}:\n{rerun.stdout[-6000:]}"
    suite = ElementTree.parse(report).getroot().find("testsuite")
    assert suite is not None
    outcomes = ("tests", "failures", "errors", "skipped")
    counts = {name: int(suite.get(name, "0")) for name in outcomes}
    assert counts["failures"] == counts["errors"] == counts["skipped"] == 0, counts
    # Every file ran, not only some of them.
    ran = {case.get("classname", "").split(".")[-1] for case in suite.iter("testcase")}
    assert ran == {name.removesuffix(".py") for name in TIME_WINDOW_TESTS}
    assert counts["tests"] >= 50, counts
