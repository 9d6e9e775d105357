"""The README's main command, end to end on a small fleet in a temp home."""

import re
from pathlib import Path

import pytest

from pdm_assets import demo

pytestmark = pytest.mark.slow


def test_demo_runs_the_whole_graph_and_reports(
    pdm_home: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("PDM_SIM_MACHINES", "8")
    monkeypatch.setenv("PDM_SIM_DAYS", "75")  # 2015-01-01 .. 2015-03-16
    # Eight machines give too few failures for the gate's fleet-sized floor.
    assert demo.main(["--min-pr-auc-lift", "0"]) == 0
    report = capsys.readouterr().out
    assert "model cutoff: 2015-03-01; scored 2015-03-01 .. 2015-03-16" in report
    for component in ("comp1", "comp2", "comp3", "comp4"):
        assert f"\n  {component} " in report
    assert report.count("P(failure within horizon)") == 8
    assert (pdm_home / "reports" / "demo.txt").read_text() in report
    assert (pdm_home / "landing" / "date=2015-03-16" / "_COMPLETE").exists()
    # Progress as it goes, kept in the report too: simulate, 7 ingest steps, train, score, report.
    assert "  [step 1 of 11] simulate the fleet and land its days done in" in report
    assert re.search(
        r"\n  \[step \d of 11\] raw_telemetry done in [\d.]+ s: "
        r"quarantine_telemetry 0 rows in 75 partitions, raw_telemetry [\d,]+ rows in 75 "
        r"partitions\n",
        report,
    )
    assert "  [step 9 of 11] failure_model done in" in report
    assert "  [step 11 of 11] holdout report done in" in report


def test_demo_refuses_a_cutoff_that_is_not_a_month_start(pdm_home: Path) -> None:
    with pytest.raises(SystemExit, match="first day of a month"):
        demo.main(["--cutoff", "2015-03-05"])
