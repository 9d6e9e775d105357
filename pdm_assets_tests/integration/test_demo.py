"""The README's main command, end to end on a small fleet in a temp home."""

import re
from pathlib import Path

import pytest

from pdm_assets.dev import demo

pytestmark = pytest.mark.slow


def test_demo_runs_the_whole_graph_and_reports(
    pdm_home: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("PDM_SIM_MACHINES", "8")
    monkeypatch.setenv("PDM_SIM_DAYS", "75")  # 2015-01-01 .. 2015-03-16
    # The defaults: eight machines are too few to judge the model; the gate warns, the version
    # scores, and its cuts are cross-fitted.
    assert demo.main([]) == 0
    report = capsys.readouterr().out
    assert "model cutoff: 2015-03-01; scored 2015-03-01 .. 2015-03-16" in report
    for component in ("comp1", "comp2", "comp3", "comp4"):
        assert f"\n  {component} " in report
    # The top of the last day's work list instead of a risk list.
    assert "work list of 2015-03-16 (" in report
    listed = int(re.search(r"work list of 2015-03-16 \((\d+) open alerts", report).group(1))  # type: ignore[union-attr]
    assert report.count("      because ") == min(listed, 10)
    assert (pdm_home / "worklists" / "maintenance_worklist_2015-03-16.csv").exists()
    assert (pdm_home / "reports" / "demo.txt").read_text() in report
    assert (pdm_home / "landing" / "date=2015-03-16" / "_COMPLETE").exists()
    # Progress as it goes, kept in the report too: simulate, 7 ingest steps, train, score, work
    # list, report.
    assert "  [step 1 of 12] simulate the fleet and land its days done in" in report
    assert re.search(
        r"\n  \[step \d of 12\] raw_telemetry done in [\d.]+ s: "
        r"quarantine_telemetry 0 rows in 75 partitions, raw_telemetry [\d,]+ rows in 75 "
        r"partitions\n",
        report,
    )
    assert "  [step 9 of 12] failure_model done in" in report
    assert "  [step 12 of 12] holdout report done in" in report


def test_demo_refuses_a_cutoff_that_is_not_a_month_start(pdm_home: Path) -> None:
    with pytest.raises(SystemExit, match="first day of a month"):
        demo.main(["--cutoff", "2015-03-05"])
