"""Materialise the graph into a temp home on a small simulated fleet: range runs, single
partitions, the model in MLflow, and scores."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import dagster as dg
import mlflow
import numpy as np
import pytest
from mlflow.tracking import MlflowClient
from pyspark.ml import PipelineModel
from pyspark.ml.functions import vector_to_array
from pyspark.sql import functions as F

from pdm_assets.adapters.mlflow_registry import CHAMPION_ALIAS, ModelRegistry
from pdm_assets.adapters.warehouse import FolderWarehouse
from pdm_assets.core import reasons
from pdm_assets.core.fleet import DEFAULT_FLEET
from pdm_assets.core.timewindow import Window, from_spark
from pdm_assets.definitions import build_assets, build_definitions
from pdm_assets.defs.jobs import INGEST_JOB, OUTCOMES_JOB, SCORE_JOB, TRAIN_JOB
from pdm_assets.defs.partitions import build_partitions
from pdm_assets.defs.resources import resources_for
from pdm_assets.settings import Settings, load_settings
from pdm_assets_tests.support.environment import range_tags, use_settings
from pdm_assets_tests.support.models import SMALL_MODEL

MACHINES = 6
DAYS = 45  # 2015-01-01 .. 2015-02-14
# Six machines have too few failures for fitted cuts: every cut is a budget cut, set high here so
# that each day has alerts to explain and list.
ALERTING_MODEL = {**SMALL_MODEL, "alert_budget_ratio": 4.0}


@dataclass
class Graph:
    settings: Settings
    defs: dg.Definitions
    instance: dg.DagsterInstance

    def run(
        self, job: str, tags: dict[str, str] | None = None, **kwargs
    ) -> dg.ExecuteInProcessResult:  # type: ignore[no-untyped-def]
        return self.defs.resolve_job_def(job).execute_in_process(
            instance=self.instance, tags=tags or {}, **kwargs
        )

    @property
    def warehouse(self) -> FolderWarehouse:
        return FolderWarehouse(Path(self.settings.warehouse))


@pytest.fixture(scope="module")
def graph(tmp_path_factory: pytest.TempPathFactory, spark) -> Iterator[Graph]:
    home = tmp_path_factory.mktemp("home")
    patch = pytest.MonkeyPatch()
    use_settings(
        patch,
        home,
        PDM_SIM_MACHINES=str(MACHINES),
        PDM_SIM_DAYS=str(DAYS),
        PDM_PARTITIONS_END="2015-02-15",
    )
    settings = load_settings()
    # In memory: an on-disk sqlite event log costs ~12 ms per event, and a range run writes
    # two per asset and day.
    with dg.DagsterInstance.ephemeral() as instance:
        graph = Graph(settings, build_definitions(settings), instance)
        result = graph.run(INGEST_JOB, range_tags("2015-01-01", "2015-02-14"))
        assert result.success
        yield graph
    patch.undo()


def test_a_range_backfill_is_one_run_writing_every_partition(graph: Graph) -> None:
    assert len(graph.instance.get_runs()) == 1
    for asset in ("raw_telemetry", "raw_failures", "machine_features", "failure_labels"):
        materialized = graph.instance.get_materialized_partitions(dg.AssetKey(asset))
        assert len(materialized) == DAYS, asset
        assert len(graph.warehouse.partition_dates(asset)) == DAYS, asset


def test_raw_telemetry_holds_every_machine_hour_and_quarantines_nothing(
    graph: Graph, spark
) -> None:
    rows = spark.read.parquet(str(graph.warehouse.dataset_path("raw_telemetry")))
    expected = MACHINES * DAYS * 24
    # The simulator drops a tiny share of hours on purpose (missing telemetry happens).
    assert expected * 0.99 <= rows.count() <= expected
    quarantine = spark.read.parquet(str(graph.warehouse.dataset_path("quarantine_telemetry")))
    assert quarantine.count() == 0


def test_features_have_one_row_per_machine_and_observation_time(graph: Graph, spark) -> None:
    features = spark.read.parquet(str(graph.warehouse.dataset_path("machine_features")))
    # 2 observation times a day; every simulated machine reports every 12 h.
    assert features.count() == MACHINES * DAYS * 2
    assert features.select("machine_id", "datetime").distinct().count() == features.count()


def test_labels_are_censored_only_where_failures_are_not_yet_known(graph: Graph, spark) -> None:
    labels = spark.read.parquet(str(graph.warehouse.dataset_path("failure_labels")))
    censored_times = {from_spark(row["datetime"]) for row in labels.where("censored").collect()}
    # Failures are known to the end of 2015-02-14: rows with t + 7 d later than that are censored.
    assert min(censored_times).isoformat() == "2015-02-08T12:00:00+00:00"
    assert labels.where("not censored").count() == MACHINES * (DAYS * 2 - 13)


def test_one_partition_materialises_alone_with_row_metadata(graph: Graph) -> None:
    result = graph.run(INGEST_JOB, partition_key="2015-01-10")
    assert result.success
    materializations = {
        event.asset_key.to_user_string(): event.metadata
        for event in result.asset_materializations_for_node("raw_telemetry")
    }
    metadata = materializations["raw_telemetry"]
    assert metadata["partitions_written"].value == 1
    assert MACHINES * 24 * 0.95 <= metadata["rows_written"].value <= MACHINES * 24
    assert metadata["quarantined_rows"].value == 0


@pytest.fixture(scope="module")
def trained(graph: Graph) -> dg.ExecuteInProcessResult:
    result = graph.run(
        TRAIN_JOB,
        partition_key="2015-02-01",
        run_config={"ops": {"failure_model": {"config": ALERTING_MODEL}}},
    )
    assert result.success
    return result


def test_model_is_registered_tagged_and_champion(graph: Graph, trained) -> None:
    metadata = trained.asset_materializations_for_node("failure_model")[0].metadata
    client = MlflowClient(tracking_uri=graph.settings.mlflow_tracking_uri)
    version = client.get_model_version(
        graph.settings.model_name, str(metadata["model_version"].value)
    )
    assert version.tags["cutoff"] == "2015-02-01"
    assert version.tags["dagster_run_id"] == trained.run_id
    champion = client.get_model_version_by_alias(graph.settings.model_name, CHAMPION_ALIAS)
    assert champion.version == version.version
    run = client.get_run(metadata["mlflow_run_id"].value)
    assert run.info.status == "FINISHED"
    assert run.data.tags["dagster_run_id"] == trained.run_id
    assert run.data.tags["dagster_partition"] == "2015-02-01"
    assert run.data.tags["dagster_asset"] == "failure_model"
    assert "comp1_f1" in run.data.metrics
    assert metadata["mlflow_run"].value.endswith(run.info.run_id)
    assert "| comp1 |" in metadata["metrics"].value
    # The decision policy: an artefact of the run, tags of the version, a table on the page.
    registry = ModelRegistry(
        tracking_uri=graph.settings.mlflow_tracking_uri, model_name=graph.settings.model_name
    )
    policy = registry.load_policy(version)
    assert policy.strategy == version.tags["decision_strategy"] == "max_f1"
    for component, threshold in policy.thresholds.items():
        assert float(version.tags[f"threshold_{component}"]) == pytest.approx(threshold, rel=1e-5)
        assert run.data.metrics[f"{component}_threshold"] == pytest.approx(threshold)
    assert "| comp1 |" in metadata["decision_policy"].value
    # Artefacts live under the project home, not in ./mlruns of the working directory.
    assert run.info.artifact_uri.startswith(graph.settings.mlflow_artifacts.as_uri())
    assert not Path("mlruns").exists()
    mlflow.set_tracking_uri(graph.settings.mlflow_tracking_uri)
    # A signature, which the Unity Catalog registry requires: the features in, the class out.
    signature = mlflow.models.get_model_info(f"models:/{version.name}/{version.version}").signature
    assert signature is not None
    assert signature.inputs.input_names() == [
        *DEFAULT_FLEET.numeric_features,
        *DEFAULT_FLEET.categorical_features,
    ]
    assert signature.outputs.input_names() == ["prediction"]


def test_scores_cover_every_feature_row_with_probabilities(graph: Graph, trained, spark) -> None:
    result = graph.run(SCORE_JOB, partition_key="2015-02-03")
    assert result.success
    scores = spark.read.parquet(str(graph.warehouse.dataset_path("machine_scores")))
    rows = scores.collect()
    assert len(rows) == MACHINES * 2
    version = trained.asset_materializations_for_node("failure_model")[0].metadata["model_version"]
    registry = ModelRegistry(
        tracking_uri=graph.settings.mlflow_tracking_uri, model_name=graph.settings.model_name
    )
    model_version = registry.version_for_cutoff(date(2015, 2, 1))
    assert model_version is not None
    thresholds = list(registry.load_policy(model_version).thresholds.values())
    for row in rows:
        # The stored policy, applied by hand: the component furthest over its threshold.
        ratios = [
            row[f"prob_comp{k}"] / threshold for k, threshold in enumerate(thresholds, start=1)
        ]
        expected = 1 + ratios.index(max(ratios)) if max(ratios) >= 1 else 0
        assert (row["alert"], row["alert_component"]) == (expected > 0, expected)
        total = sum(row[name] for name in DEFAULT_FLEET.probability_columns)
        assert total == pytest.approx(1.0, abs=1e-6)
        assert row["failure_probability"] == pytest.approx(1 - row["prob_none"])
        assert row["model_version"] == version.value
        assert str(row["model_cutoff"]) == "2015-02-01"


def test_every_alert_has_exact_reasons_and_the_day_a_work_list(
    graph: Graph, trained, spark
) -> None:
    result = graph.run(SCORE_JOB, partition_key="2015-02-05")
    assert result.success
    day = Window.of_days(date(2015, 2, 5), date(2015, 2, 6))
    scores = graph.warehouse.read_window(spark, "machine_scores", day).collect()
    alerts = [row for row in scores if row["alert"]]
    assert alerts, "the budget of ALERTING_MODEL alerts every day"
    registry = ModelRegistry(
        tracking_uri=graph.settings.mlflow_tracking_uri, model_name=graph.settings.model_name
    )
    version = registry.version_for_cutoff(date(2015, 2, 1))
    assert version is not None
    policy = registry.load_policy(version)
    for row in alerts:
        assert len(row["alert_reasons"]) == 3
        assert row["alert_threshold"] == policy.thresholds[row["alert_component_name"]]
    # The decomposition behind the reasons is exact on the registered model: for every row of
    # the day, the trees' root mean plus the contributions is Spark's probability.
    explainer = registry.load_explainer(version)
    assert explainer is not None
    model = registry.load(version.version)
    features = graph.warehouse.read_window(spark, "machine_features", day)
    assembled = PipelineModel(stages=model.stages[:-1]).transform(features)
    predicted = (
        model.stages[-1]
        .transform(assembled)
        .select(
            vector_to_array(F.col("features")).alias("x"),
            vector_to_array(F.col("probability")).alias("p"),
        )
    )
    collected = predicted.collect()
    vectors = np.array([row["x"] for row in collected])
    bias, contributions = reasons.contributions(explainer.forest, vectors)
    probabilities = np.array([row["p"] for row in collected])
    assert np.abs(bias + contributions.sum(axis=1) - probabilities).max() < 1e-9
    # The work list: one row per alerting machine and component, and its CSV.
    [materialization] = result.asset_materializations_for_node("maintenance_worklist")
    listed = {(row["machine_id"], row["alert_component_name"]) for row in alerts}
    assert materialization.metadata["dagster/row_count"].value == len(listed)
    assert materialization.metadata["top_of_the_list"].value.startswith("**2015-02-05**")
    csv_lines = (
        (Path(graph.settings.worklists) / "maintenance_worklist_2015-02-05.csv")
        .read_text()
        .splitlines()
    )
    assert len(csv_lines) == 1 + len(listed)
    assert csv_lines[1].startswith("1,2015-02-05,")


def test_scoring_a_month_without_a_model_is_skipped_with_the_reason(graph: Graph) -> None:
    result = graph.run(SCORE_JOB, partition_key="2015-01-20")
    assert result.success
    assert result.asset_materializations_for_node("machine_scores") == []
    observation = next(
        event.asset_observation_data.asset_observation
        for event in result.all_events
        if event.event_type_value == "ASSET_OBSERVATION"
    )
    reason = observation.metadata["skip_reason"].value
    assert "no registered" in reason and "2015-01-01" in reason
    assert "2015-01-20" not in {
        str(day) for day in graph.warehouse.partition_dates("machine_scores")
    }


def _checks(result: dg.ExecuteInProcessResult) -> dict[str, bool]:
    return {
        evaluation.check_name: evaluation.passed
        for evaluation in result.get_asset_check_evaluations()
    }


def test_quality_checks_pass_on_clean_data(graph: Graph, trained) -> None:
    ingest = graph.run(INGEST_JOB, partition_key="2015-02-04")
    assert _checks(ingest) == {
        "schema": True,
        "no_duplicate_keys": True,
        "quarantine_share": True,
        "every_machine_reporting": True,
        "null_rates": True,
    }
    scoring = graph.run(SCORE_JOB, partition_key="2015-02-04")
    assert _checks(scoring) == {
        "probabilities_valid": True,
        "every_active_machine_scored": True,
        "every_alert_explained": True,
    }
    # Six machines hold too few failures to judge the model: the gate warns, and the version is
    # used (the scoring above ran with it).
    [gate] = trained.get_asset_check_evaluations()
    assert (gate.check_name, gate.passed, gate.severity) == (
        "quality_gate",
        False,
        dg.AssetCheckSeverity.WARN,
    )
    assert gate.metadata["reasons"].value.startswith("not judged: no component has 10")
    metadata = scoring.asset_materializations_for_node("machine_scores")[0].metadata
    assert metadata["score_distribution"].value.startswith("![score distribution](data:image/png")


def test_model_page_shows_pictures(trained) -> None:
    metadata = trained.asset_materializations_for_node("failure_model")[0].metadata
    for name in ("confusion_matrix", "feature_importances"):
        assert metadata[name].value.startswith("![")
        assert "data:image/png;base64," in metadata[name].value


def test_a_model_failing_its_gate_is_registered_but_not_champion(graph: Graph, trained) -> None:
    client = MlflowClient(tracking_uri=graph.settings.mlflow_tracking_uri)
    champion_before = client.get_model_version_by_alias(graph.settings.model_name, CHAMPION_ALIAS)
    # An MLflow run left RUNNING by a Dagster run that was killed with -9 (and one of a run the
    # instance still has in progress would be kept).
    experiment = client.get_experiment_by_name(graph.settings.mlflow_experiment)
    assert experiment is not None
    abandoned = client.create_run(experiment.experiment_id, tags={"dagster_run_id": "killed-run"})
    # Judged with a single failure per component (six machines have few), against 10 x chance.
    strict = {**ALERTING_MODEL, "min_pr_auc_lift": 10.0, "min_validation_failures": 1}
    result = graph.run(
        TRAIN_JOB,
        partition_key="2015-02-01",
        run_config={"ops": {"failure_model": {"config": strict}}},
        raise_on_error=False,
    )
    assert _checks(result) == {"quality_gate": False}
    evaluation = result.get_asset_check_evaluations()[0]
    reasons = evaluation.metadata["reasons"].value
    assert "is below the floor" in reasons and "(10 x their mean base rate" in reasons
    new_version = result.asset_materializations_for_node("failure_model")[0].metadata
    version = client.get_model_version(
        graph.settings.model_name, str(new_version["model_version"].value)
    )
    assert version.tags["quality_gate"] == "failed"
    champion_after = client.get_model_version_by_alias(graph.settings.model_name, CHAMPION_ALIAS)
    assert champion_after.version == champion_before.version
    # The failed step ended its own MLflow run; the next training ended the abandoned one.
    run = client.get_run(new_version["mlflow_run_id"].value)
    assert run.info.status == "FAILED"
    assert client.get_run(abandoned.info.run_id).info.status == "KILLED"


def test_retraining_a_month_with_a_champion_compares_held_out_scores(graph: Graph, trained) -> None:
    # The champion of the same month was refit on every validation row; the gate compares its
    # held-out score on the same window instead, so the same training passes again.
    result = graph.run(
        TRAIN_JOB,
        partition_key="2015-02-01",
        run_config={"ops": {"failure_model": {"config": ALERTING_MODEL}}},
    )
    # Six machines are too few to judge the floor (the check warns), but the champion is still
    # compared, and the new fit is not worse.
    evaluation = result.get_asset_check_evaluations()[0]
    assert evaluation.severity == dg.AssetCheckSeverity.WARN
    assert "worse than champion" not in evaluation.metadata["reasons"].value
    champion = evaluation.metadata["champion"].value
    assert "of the same validation window" in champion
    first = trained.asset_materializations_for_node("failure_model")[0].metadata
    assert champion.startswith(f"v{first['model_version'].value}: ")
    assert evaluation.metadata["macro_pr_auc"].value == pytest.approx(first["macro_pr_auc"].value)


def test_a_kill_between_gate_tag_and_alias_leaves_a_usable_version_and_the_old_champion(
    graph: Graph, trained, monkeypatch: pytest.MonkeyPatch
) -> None:
    name = graph.settings.model_name
    registry = ModelRegistry(tracking_uri=graph.settings.mlflow_tracking_uri, model_name=name)
    client = registry.client()
    champion = client.get_model_version_by_alias(name, CHAMPION_ALIAS)
    copy = client.create_model_version(name, champion.source, run_id=champion.run_id)
    client.set_model_version_tag(name, copy.version, "cutoff", "2015-02-01")
    registry.wait_until_ready(copy.version)

    def killed(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt("killed before the alias moved")

    monkeypatch.setattr(MlflowClient, "set_registered_model_alias", killed)
    with pytest.raises(KeyboardInterrupt):
        registry.publish(copy.version, passed=True, cutoff=date(2015, 2, 1))
    # The verdict was written first: scoring takes the new version, the champion is unchanged.
    assert client.get_model_version(name, copy.version).tags["quality_gate"] == "passed"
    assert client.get_model_version_by_alias(name, CHAMPION_ALIAS).version == champion.version
    found = registry.version_for_cutoff(date(2015, 2, 1))
    assert found is not None and found.version == copy.version


def test_outcomes_measure_scores_against_known_labels(graph: Graph, trained, spark) -> None:
    assert graph.run(SCORE_JOB, partition_key="2015-02-02").success
    result = graph.run(OUTCOMES_JOB, partition_key="2015-02-02")
    assert result.success
    metadata = result.asset_materializations_for_node("model_outcomes")[0].metadata
    # Failures are known until the end of 2015-02-14: both observations of 2015-02-02 settled.
    assert metadata["scored_rows"].value == MACHINES * 2
    assert metadata["censored_rows"].value == 0
    assert "| comp1 |" in metadata["realised_metrics"].value
    assert metadata["trend"].value.startswith("![")
    # Drift of 2015-02-02 from the 28 days before the month's cutoff, recomputed in pandas.
    features = graph.warehouse.read_all(spark, "machine_features").toPandas()
    day = features[features["date"] == date(2015, 2, 2)]
    reference = features[
        (features["date"] >= date(2015, 1, 4)) & (features["date"] < date(2015, 2, 1))
    ]
    expected = max(
        abs(day[name].mean() - reference[name].mean()) / reference[name].std()
        for name in DEFAULT_FLEET.numeric_features
    )
    assert metadata["max_feature_drift"].value == pytest.approx(expected, rel=1e-9)
    rows = graph.warehouse.read_all(spark, "model_outcomes").collect()
    assert sorted(row["component"] for row in rows) == ["comp1", "comp2", "comp3", "comp4"]
    alerts = sum(
        1
        for row in graph.warehouse.read_all(spark, "machine_scores")
        .where("date = '2015-02-02'")
        .collect()
        if row["alert"]
    )
    assert rows[0]["alert_rate"] == pytest.approx(alerts / (MACHINES * 2))


def _max_difference(ours, theirs, columns: list[str]) -> dict[str, float]:  # type: ignore[no-untyped-def]
    """The largest |ours - theirs| per column; inf where a null stands against a value."""
    differences = {}
    for column in columns:
        mine, yardstick = ours[column].astype(float), theirs[column].astype(float)
        if not (mine.isna() == yardstick.isna()).all():
            differences[column] = float("inf")
            continue
        differences[column] = float((mine - yardstick).abs().max(skipna=True) or 0.0)
    return differences


def test_features_and_labels_equal_the_polars_yardstick(graph: Graph, spark) -> None:
    from benchmarks import polars_yardstick

    keys = ["machine_id", "datetime"]
    yardstick_features, yardstick_labels = polars_yardstick.compute(
        graph.settings.landing, date(2015, 1, 1), date(2015, 2, 15)
    )
    for dataset, theirs, columns in (
        ("machine_features", yardstick_features, [*DEFAULT_FLEET.numeric_features]),
        ("failure_labels", yardstick_labels, ["label", "hours_to_failure"]),
    ):
        ours = (
            spark.read.parquet(str(graph.warehouse.dataset_path(dataset)))
            .toPandas()
            .sort_values(keys, ignore_index=True)
        )
        theirs_pd = theirs.to_pandas().sort_values(keys, ignore_index=True)
        assert len(ours) == len(theirs_pd) > 0, dataset
        assert (ours["machine_id"] == theirs_pd["machine_id"]).all(), dataset
        # Spark hands UTC wall times to pandas without a zone (its session zone is UTC).
        assert (ours["datetime"] == theirs_pd["datetime"]).all(), dataset
        assert max(_max_difference(ours, theirs_pd, columns).values()) <= 1e-9, dataset
    labelled = spark.read.parquet(str(graph.warehouse.dataset_path("failure_labels"))).toPandas()
    labelled = labelled.sort_values(keys, ignore_index=True)
    theirs_labels = yardstick_labels.to_pandas().sort_values(keys, ignore_index=True)
    for column in ["censored", *DEFAULT_FLEET.fails_columns]:
        assert (labelled[column] == theirs_labels[column]).all(), column
    assert (labelled["label"] > 0).sum() > 0


def test_a_range_scores_the_months_with_a_model_and_says_which_it_could_not(
    graph: Graph, trained, spark
) -> None:
    from pdm_assets.core.timewindow import Window

    # January has no model (the first is February's): its days stay unscored, February's not.
    result = graph.run(SCORE_JOB, range_tags("2015-01-30", "2015-02-02"))
    assert result.success
    [materialization] = result.asset_materializations_for_node("machine_scores")[:1]
    assert "2015-01-01: no pdm_component_failure version" in (
        materialization.metadata["unscored_months"].value
    )
    scores = graph.warehouse.read_window(
        spark, "machine_scores", Window.of_days(date(2015, 1, 30), date(2015, 2, 3))
    )
    days = {str(row["date"]) for row in scores.select("date").distinct().collect()}
    assert days == {"2015-02-01", "2015-02-02"}
    assert scores.count() == MACHINES * 2 * 2
    [check] = [
        c
        for c in result.get_asset_check_evaluations()
        if c.check_name == "every_active_machine_scored"
    ]
    assert not check.passed and check.severity == dg.AssetCheckSeverity.WARN
    assert check.metadata["feature_rows_without_score"].value == MACHINES * 2 * 2


def test_scores_work_list_and_outcomes_of_a_day_each_materialise_alone(
    graph: Graph, trained, spark
) -> None:
    """`dg.materialize` of one asset at a time, its inputs read from the warehouse, as the UI's
    Materialize of a single asset runs it."""
    assets = build_assets(build_partitions(graph.settings))
    written = {}
    for name in ("machine_scores", "maintenance_worklist", "model_outcomes"):
        result = dg.materialize(
            assets,
            selection=[name],
            partition_key="2015-02-04",
            resources=resources_for(graph.settings),
            instance=graph.instance,
        )
        assert result.success, name
        (event,) = result.asset_materializations_for_node(name)
        written[name] = event.metadata
    assert written["machine_scores"]["rows"].value == MACHINES * 2
    scores = graph.warehouse.read_all(spark, "machine_scores").where("date = '2015-02-04'")
    alerting = {row["machine_id"] for row in scores.collect() if row["alert"]}
    worklist = graph.warehouse.read_all(spark, "maintenance_worklist").where("date = '2015-02-04'")
    # Every machine alerting that day is on the day's list (nobody acknowledged an alert).
    assert alerting <= {row["machine_id"] for row in worklist.collect()}
    assert written["model_outcomes"]["scored_rows"].value == MACHINES * 2
    outcomes = graph.warehouse.read_all(spark, "model_outcomes").where("date = '2015-02-04'")
    assert sorted(row["component"] for row in outcomes.collect()) == [
        "comp1",
        "comp2",
        "comp3",
        "comp4",
    ]
