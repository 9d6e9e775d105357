"""End to end on the real public sample (pdm_assets_tests/data/azure-pdm-sample): machines 1-10,
2015-01-01 06:00 .. 2015-04-01 05:00, read in place through the CSV source."""

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import pytest
from pyspark.sql import DataFrame

from pdm_assets.adapters.warehouse import FolderWarehouse
from pdm_assets.core.validation import AFTER_LAST_PARTITION
from pdm_assets.definitions import build_definitions
from pdm_assets.defs.jobs import INGEST_JOB, SCORE_JOB, TRAIN_JOB
from pdm_assets.settings import Settings, load_settings
from pdm_assets_tests.support.environment import range_tags
from pdm_assets_tests.support.paths import SAMPLE_DIR

pytestmark = pytest.mark.slow

MACHINES = 10
DAYS = 90  # 2015-01-01 .. 2015-03-31; 2015-04-01 00:00-05:00 lies past the partitions


@dataclass
class SampleRun:
    settings: Settings
    instance: dg.DagsterInstance
    results: dict[str, dg.ExecuteInProcessResult]

    def dataset(self, spark, name: str) -> DataFrame:  # type: ignore[no-untyped-def]
        return FolderWarehouse(Path(self.settings.warehouse)).read_all(spark, name)


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory, spark) -> Iterator[SampleRun]:
    assert SAMPLE_DIR.exists(), f"the public sample is expected at {SAMPLE_DIR}"
    home = tmp_path_factory.mktemp("sample-home")
    patch = pytest.MonkeyPatch()
    for name, value in {
        "PDM_HOME": str(home),
        "PDM_DATA_SOURCE": "csv",
        "PDM_CSV_DIR": str(SAMPLE_DIR),
        "PDM_PARTITIONS_END": "2015-04-01",
    }.items():
        patch.setenv(name, value)
    patch.delenv("PDM_MLFLOW_TRACKING_URI", raising=False)
    settings = load_settings()
    defs = build_definitions(settings)
    # In memory: an on-disk sqlite event log costs ~12 ms per event (90 days x 12 assets x 2).
    with dg.DagsterInstance.ephemeral() as instance:

        def run(job: str, **kwargs) -> dg.ExecuteInProcessResult:  # type: ignore[no-untyped-def]
            result = defs.resolve_job_def(job).execute_in_process(instance=instance, **kwargs)
            assert result.success, job
            return result

        results = {
            "ingest": run(
                INGEST_JOB,
                tags=range_tags("2015-01-01", "2015-03-31"),
            ),
            # The defaults: ten machines are too few to judge the model (the gate warns) and their
            # cuts are cross-fitted and budgeted (docs/model.md).
            "train": run(TRAIN_JOB, partition_key="2015-03-01"),
            "score": run(
                SCORE_JOB,
                tags=range_tags("2015-03-01", "2015-03-31"),
            ),
        }
        yield SampleRun(settings, instance, results)
    patch.undo()


def test_every_sample_row_is_ingested_and_only_those_past_the_end_quarantined(
    sample: SampleRun, spark
) -> None:
    # Row counts of the sample's README, less the rows of 2015-04-01 (past the last partition);
    # maintenance includes its 2014 history, kept in the first partition.
    expected = {
        "raw_telemetry": 21_600 - 6 * MACHINES,  # 2015-04-01 00:00..05:00 is past the last day
        "raw_errors": 100 - 1,  # one error at 2015-04-01 05:00
        "raw_maintenance": 109,
        "raw_failures": 17,
        "raw_machines": MACHINES,
    }
    counts = {name: sample.dataset(spark, name).count() for name in expected}
    assert counts == expected
    # The rows after the last partition are not dropped: quarantined in its last day, with
    # the reason and the file and line they came from.
    past_end = {"telemetry": 6 * MACHINES, "errors": 1, "maint": 0, "failures": 0}
    for table, count in past_end.items():
        quarantine = sample.dataset(spark, f"quarantine_{table}")
        assert quarantine.count() == count, table
        for row in quarantine.collect():
            assert row["reason"] == AFTER_LAST_PARTITION
            assert str(row["date"]) == "2015-03-31"
            assert row["source_file"].endswith(f"PdM_{table}.csv.gz") and row["line"] > 1


def test_a_failure_resets_days_since_replacement(sample: SampleRun, spark) -> None:
    features = sample.dataset(spark, "machine_features")
    # Machine 1's comp4 failed 2015-01-05 06:00; at 2015-01-05 12:00 it was replaced 0.25 d ago.
    row = features.where("machine_id = 1 and datetime = '2015-01-05 12:00:00'").first()
    assert row is not None
    assert row["comp4_days_since_replacement"] == pytest.approx(0.25)


def test_features_labels_and_scores_have_the_expected_rows_and_schema(
    sample: SampleRun, spark
) -> None:
    features = sample.dataset(spark, "machine_features")
    # Two observations a day for 90 days, except 2015-01-01 00:00: telemetry starts at 06:00.
    assert features.count() == MACHINES * (DAYS * 2 - 1)
    labels = sample.dataset(spark, "failure_labels")
    assert labels.count() == features.count()
    assert labels.where("label > 0").count() > 0
    scores = sample.dataset(spark, "machine_scores")
    assert scores.count() == MACHINES * 31 * 2
    assert scores.columns == [
        "machine_id",
        "datetime",
        "predicted_component",
        "prob_none",
        "prob_comp1",
        "prob_comp2",
        "prob_comp3",
        "prob_comp4",
        "failure_probability",
        "alert",
        "alert_component",
        "alert_component_name",
        "alert_threshold",
        "alert_reasons",
        "days_since_replacement",
        "model_name",
        "model_version",
        "model_cutoff",
        "date",
    ]
    metadata = sample.results["train"].asset_materializations_for_node("failure_model")[0].metadata
    assert metadata["training_rows"].value > 0 and metadata["validation_rows"].value > 0


def test_alerts_come_when_failures_are_near(sample: SampleRun, spark) -> None:
    # The argmax of the balanced forest never alerted on this slice; the thresholds fitted on
    # validation do, and some alerts name the component that fails within the week.
    scores = sample.dataset(spark, "machine_scores")
    labels = sample.dataset(spark, "failure_labels").where("NOT censored")
    judged = scores.join(
        labels.select("machine_id", "datetime", "label"), ["machine_id", "datetime"]
    )
    alerts = judged.where("alert").count()
    hits = judged.where("alert AND alert_component = label").count()
    failing_rows = judged.where("label > 0").count()
    # Few alerts, not the 28% of all rows the max-F1 cuts of four validation failures gave: at
    # most as many as the rows a week before a failure, and most of them right.
    assert 0 < alerts <= failing_rows
    assert hits > 0, f"{alerts} alerts, none on the {failing_rows} rows a week before a failure"
    assert hits / alerts >= 0.4
    # Every alert has its reasons, and every scored day its work list.
    assert judged.where("alert AND size(alert_reasons) = 3").count() == alerts
    listed = sample.dataset(spark, "maintenance_worklist")
    worklist_days = {row["date"] for row in listed.select("date").distinct().collect()}
    alert_days = {row["date"] for row in scores.where("alert").select("date").distinct().collect()}
    assert alert_days <= worklist_days
    csv_files = sorted(Path(sample.settings.worklists).glob("maintenance_worklist_2015-03-*.csv"))
    assert len(csv_files) == 31  # one per scored day, empty days included
