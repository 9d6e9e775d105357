"""The model's logic on tiny inputs, against values computed by hand: thresholds, alerts, class
weights, metrics, the gate, the month split, rows a champion never saw, and the learners'
probabilities."""

from __future__ import annotations

import math
from datetime import date

import numpy as np
import pytest
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from pdm_assets import decision, scoring, training
from pdm_assets.fleet import DEFAULT_FLEET
from pdm_assets.timewindow import Window, from_spark
from pdm_assets_tests.frames import hour

SCORES = np.array([0.9, 0.8, 0.7, 0.6, 0.5, 0.4])
POSITIVE = np.array([True, False, True, True, False, False])


def test_max_f1_threshold_is_the_best_cut_of_the_ranking() -> None:
    # Cuts from the top: F1 0.5, 0.4, 2/3, 6/7 (3 hits in 4 alerts), 0.75, 2/3.
    fit = decision.max_f1_threshold(SCORES, POSITIVE)
    assert fit.threshold == 0.6
    assert (fit.alerts, fit.positives) == (4, 3)
    assert fit.precision == pytest.approx(0.75)
    assert fit.recall == pytest.approx(1.0)
    assert fit.f1 == pytest.approx(6 / 7)


def test_a_probability_of_zero_is_never_a_threshold() -> None:
    # Alerting every row would give F1 0.5 here, but the rows at 0 carry no evidence.
    fit = decision.max_f1_threshold(np.array([0.0, 0.0]), np.array([True, False]))
    assert fit.threshold == decision.NEVER


def test_tied_scores_alert_together() -> None:
    fit = decision.max_f1_threshold(np.array([0.7, 0.7, 0.2]), np.array([True, False, False]))
    assert (fit.threshold, fit.alerts) == (0.7, 2)
    assert fit.f1 == pytest.approx(2 / 3)


def test_precision_target_takes_the_most_recall_at_that_precision() -> None:
    # Precision from the top: 1, 0.5, 2/3, 0.75, 0.6, 0.5.
    assert decision.precision_target_threshold(SCORES, POSITIVE, 0.7).threshold == 0.6
    assert decision.precision_target_threshold(SCORES, POSITIVE, 0.8).threshold == 0.9
    unreachable = decision.precision_target_threshold(SCORES, POSITIVE, 1.01)
    assert unreachable.threshold == decision.NEVER
    assert unreachable.alerts == 0


def test_a_component_without_validation_failures_never_alerts() -> None:
    policy = decision.fit_policy(
        np.array([1, 0, 1, 0]),
        {"comp1": np.array([0.9, 0.1, 0.8, 0.2]), "comp2": np.array([0.5, 0.4, 0.3, 0.2])},
    )
    assert policy.thresholds == {"comp1": 0.8, "comp2": decision.NEVER}
    assert policy.validation["comp1"].f1 == 1.0
    assert decision.DecisionPolicy.from_json(policy.to_json()) == policy
    assert "| comp2 | never |" in policy.table()


def test_unknown_strategy_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown decision strategy 'argmax'"):
        decision.fit_policy(np.array([1]), {"comp1": np.array([0.5])}, "argmax")  # type: ignore[arg-type]


COMPONENT_COLUMNS = DEFAULT_FLEET.component_probability_columns


def _probabilities(spark: SparkSession, rows: list[tuple[int, float, list[float]]]) -> DataFrame:
    return spark.createDataFrame(
        [(machine, hour(h), *probabilities) for machine, h, probabilities in rows],
        ["machine_id", "datetime", *COMPONENT_COLUMNS],
    )


def _alerts(frame: DataFrame, policy: decision.DecisionPolicy) -> list[tuple[int, float, int]]:
    rows = decision.alerts(frame, policy, COMPONENT_COLUMNS).collect()
    assert all(row["alert"] == (row["alert_component"] > 0) for row in rows)
    return sorted((row["machine_id"], row["datetime"].hour, row["alert_component"]) for row in rows)


def test_a_row_alerts_for_the_component_furthest_over_its_threshold(spark: SparkSession) -> None:
    policy = decision.DecisionPolicy(
        "max_f1", {"comp1": 0.2, "comp2": 0.5, "comp3": 0.1, "comp4": 0.4}
    )
    frame = _probabilities(
        spark,
        [
            (1, 0, [0.3, 0.5, 0.05, 0.1]),  # ratios 1.5, 1.0, 0.5, 0.25: comp1
            (2, 0, [0.1, 0.6, 0.2, 0.0]),  # 0.5, 1.2, 2.0, 0: comp3, not the most probable
            (3, 0, [0.19, 0.4, 0.09, 0.39]),  # all below their thresholds: no alert
            (4, 0, [0.2, 0.0, 0.0, 0.0]),  # exactly at the threshold: alerts
            (5, 0, [0.4, 1.0, 0.2, 0.8]),  # all 2.0 over: the lowest component
        ],
    )
    assert _alerts(frame, policy) == [(1, 0, 1), (2, 0, 3), (3, 0, 0), (4, 0, 1), (5, 0, 1)]


def test_daily_top_k_alerts_the_k_riskiest_machines_of_each_day(spark: SparkSession) -> None:
    thresholds = {"comp1": 0.2, "comp2": 0.5, "comp3": 0.1, "comp4": 0.4}
    policy = decision.DecisionPolicy("daily_top_k", thresholds, daily_alert_budget=1)
    frame = _probabilities(
        spark,
        [
            (1, 0, [0.18, 0.0, 0.0, 0.0]),  # day 1: machine 1's best ratio 0.9
            (1, 12, [0.0, 0.0, 0.05, 0.0]),  # its other row of the day: comp3 at 0.5
            (2, 0, [0.0, 0.25, 0.0, 0.0]),  # machine 2: 0.5, second of the day
            (2, 24, [0.0, 0.25, 0.0, 0.0]),  # day 2: machine 2 alone
            (3, 24, [0.0, 0.0, 0.0, 0.0]),  # nothing to rank: never alerts
        ],
    )
    assert _alerts(frame, policy) == [(1, 0, 1), (1, 12, 3), (2, 0, 0), (2, 0, 2), (3, 0, 0)]


def test_class_weights_by_hand() -> None:
    counts = {0: 80, 1: 20}
    assert training.class_weights(counts, "none") == {0: 1.0, 1: 1.0}
    assert training.class_weights(counts, "balanced") == {0: 0.625, 1: 2.5}
    sqrt = training.class_weights(counts, "sqrt_balanced")
    assert sqrt == pytest.approx({0: math.sqrt(0.625), 1: math.sqrt(2.5)})


def test_component_metrics_and_macro_over_components_with_failures(spark: SparkSession) -> None:
    rows = [
        # label, alerted component, P(comp1), P(comp2)
        (1, 1, 0.9, 0.0),
        (1, 0, 0.8, 0.0),
        (0, 1, 0.3, 0.1),
        (0, 0, 0.1, 0.2),
        (2, 0, 0.2, 0.6),
        (0, 0, 0.05, 0.3),
    ]
    frame = spark.createDataFrame(
        [(label, alert, 1 - p1 - p2, p1, p2, 0.0, 0.0) for label, alert, p1, p2 in rows],
        ["label", "alert_component", *DEFAULT_FLEET.probability_columns],
    )
    metrics = training.component_metrics(frame)
    assert metrics["comp1"] == pytest.approx(
        {
            "precision": 0.5,
            "recall": 0.5,
            "f1": 0.5,
            "pr_auc": 1.0,
            "support": 2,
            "base_rate": 2 / 6,
        }
    )
    assert metrics["comp2"] == pytest.approx(
        {
            "precision": 0.0,
            "recall": 0.0,
            "f1": 0.0,
            "pr_auc": 1.0,
            "support": 1,
            "base_rate": 1 / 6,
        }
    )
    assert metrics["comp3"]["support"] == 0
    # comp3 and comp4 have no failures: they neither help nor hurt the macro.
    assert training.macro(metrics, "f1") == pytest.approx(0.25)
    assert training.macro(metrics, "pr_auc") == pytest.approx(1.0)


def _metrics(pr_aucs: list[float], base_rates: list[float], supports: list[int]):
    return {
        f"comp{index}": {"pr_auc": pr_auc, "base_rate": rate, "support": support, "f1": 0.0}
        for index, (pr_auc, rate, support) in enumerate(
            zip(pr_aucs, base_rates, supports, strict=True), start=1
        )
    }


def test_gate_floor_follows_the_base_rate_of_the_components_with_failures() -> None:
    metrics = _metrics([0.3, 0.1, 0.0, 0.0], [0.05, 0.05, 0.0, 0.0], [10, 10, 0, 0])
    passed = training.quality_gate(metrics, min_lift=2.0)
    assert passed.passed
    assert passed.macro_pr_auc == pytest.approx(0.2)  # not 0.1: comp3 and comp4 have no failures
    assert passed.floor == pytest.approx(0.1)
    failed = training.quality_gate(metrics, min_lift=5.0)
    assert not failed.passed
    assert failed.reasons == [
        "macro PR-AUC 0.200 over comp1, comp2 is below the floor 0.250 "
        "(5 x their mean base rate 0.050)"
    ]


def test_gate_floor_stops_halfway_to_one_where_failures_are_common() -> None:
    # A run-to-failure fleet near its end: 60 % of validation rows precede a failure.
    metrics = _metrics([0.9, 0.0, 0.0, 0.0], [0.6, 0.0, 0.0, 0.0], [10, 0, 0, 0])
    gate = training.quality_gate(metrics, min_lift=2.0)
    assert gate.passed and gate.floor == pytest.approx(0.8)  # not 1.2, which nothing reaches
    weak = training.quality_gate(
        _metrics([0.7, 0.0, 0.0, 0.0], [0.6, 0.0, 0.0, 0.0], [10, 0, 0, 0]), min_lift=2.0
    )
    assert weak.reasons == [
        "macro PR-AUC 0.700 over comp1 is below the floor 0.800 (halfway from their mean base "
        "rate 0.600 to 1, as 2 x it would pass 1)"
    ]


def test_gate_fails_without_any_validation_failure() -> None:
    metrics = _metrics([0.0] * 4, [0.0] * 4, [0] * 4)
    gate = training.quality_gate(metrics, min_lift=2.0)
    assert gate.reasons == ["no component has a failure in the validation window"]


def test_gate_compares_with_the_champion_within_the_tolerance() -> None:
    metrics = _metrics([0.5, 0.5, 0.5, 0.5], [0.05] * 4, [10] * 4)
    champion = training.ChampionScore("3", 0.5, 100, "after ...")
    assert training.quality_gate(metrics, 2.0, champion, 0.49, 0.02).passed
    worse = training.quality_gate(metrics, 2.0, champion, 0.47, 0.02)
    assert not worse.passed
    assert worse.reasons[0].startswith("macro PR-AUC 0.470 worse than champion v3's 0.500")


def test_rows_unseen_by_a_champion_start_after_its_cutoff_minus_the_horizon(
    spark: SparkSession,
) -> None:
    rows = spark.createDataFrame(
        [(1, hour(h)) for h in (0, 32, 33, 100)], ["machine_id", "datetime"]
    )
    unseen = training.rows_unseen_by(rows, hour(200), 168)
    assert sorted(from_spark(row["datetime"]) for row in unseen.collect()) == [hour(33), hour(100)]


def test_months_of_a_window_split_at_month_starts() -> None:
    window = Window.of_days(date(2015, 1, 30), date(2015, 2, 3))
    assert scoring.months_of(window) == [
        (date(2015, 1, 1), Window.of_days(date(2015, 1, 30), date(2015, 2, 1))),
        (date(2015, 2, 1), Window.of_days(date(2015, 2, 1), date(2015, 2, 3))),
    ]


def _learnable_rows(spark: SparkSession) -> DataFrame:
    """80 rows: class k (0..4) where volt_mean_24h is 100 k; every other feature 1."""
    rows = []
    for index in range(80):
        label = index % 5
        values = {name: 1.0 for name in DEFAULT_FLEET.numeric_features}
        values["volt_mean_24h"] = 100.0 * label
        rows.append((label, "model1", *values.values()))
    frame = spark.createDataFrame(
        rows, ["label", *DEFAULT_FLEET.categorical_features, *DEFAULT_FLEET.numeric_features]
    )
    return frame.withColumn("age", F.col("age").cast("int"))


@pytest.mark.parametrize("classifier", ["random_forest", "gbt_one_vs_rest"])
def test_both_learners_give_five_probabilities_that_sum_to_one(
    spark: SparkSession, classifier: training.Classifier
) -> None:
    rows = _learnable_rows(spark)
    params = training.ClassifierParams(
        classifier=classifier,
        num_trees=5,
        feature_subset_strategy="all",
        min_instances_per_node=1,
        gbt_iterations=5,
    )
    predicted = training.predict(training.fit(rows, params), rows).collect()
    for row in predicted:
        probabilities = [row[name] for name in DEFAULT_FLEET.probability_columns]
        assert sum(probabilities) == pytest.approx(1.0, abs=1e-9)
        assert all(0.0 <= value <= 1.0 for value in probabilities)
        # The classes are separable: each row's own class is the most probable.
        assert int(np.argmax(probabilities)) == row["label"]


def test_break_even_alerts_as_many_rows_as_there_are_failures() -> None:
    # Three positives: the third-highest score, 0.7, alerts three rows (two of them hits).
    fit = decision.break_even_threshold(SCORES, POSITIVE)
    assert (fit.threshold, fit.alerts, fit.fitted_on) == (0.7, 3, decision.BREAK_EVEN)
    assert fit.precision == pytest.approx(2 / 3) and fit.recall == pytest.approx(2 / 3)


def test_fallback_fills_only_components_validation_could_not_fit() -> None:
    validated = decision.fit_policy(
        np.array([1, 0, 0]),
        {"comp1": np.array([0.9, 0.1, 0.2]), "comp2": np.array([0.0, 0.0, 0.0])},
    )
    assert decision.needs_fallback(validated) == ["comp2"]
    labelled = np.array([2, 0, 2, 0, 1])
    probabilities = {
        "comp1": np.array([0.1, 0.1, 0.1, 0.1, 0.8]),
        "comp2": np.array([0.6, 0.5, 0.4, 0.1, 0.0]),
    }
    policy = decision.with_fallback(validated, labelled, probabilities)
    assert policy.thresholds == {"comp1": 0.9, "comp2": 0.5}  # comp1 keeps its validated fit
    assert policy.validation["comp2"].fitted_on == decision.BREAK_EVEN
    # A precision target nothing reaches means "do not alert": no fallback.
    strict = decision.fit_policy(
        np.array([1, 0]), {"comp1": np.array([0.5, 0.5])}, "precision_target", 0.9
    )
    assert decision.needs_fallback(strict) == []
