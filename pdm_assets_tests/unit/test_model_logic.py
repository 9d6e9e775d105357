"""The model's logic on tiny inputs, against values computed by hand: thresholds, alerts, class
weights, metrics, the gate, the month split, rows a champion never saw, and the learners'
probabilities."""

from __future__ import annotations

import math
from dataclasses import replace
from datetime import UTC, date, datetime

import numpy as np
import numpy.typing as npt
import pytest
from pyspark.sql import DataFrame, SparkSession

from pdm_assets.core import decision, scoring, training
from pdm_assets.core.fleet import DEFAULT_FLEET
from pdm_assets.core.timewindow import Window, from_spark
from pdm_assets.defs.model.config import ModelConfig
from pdm_assets_tests.support.frames import hour
from pdm_assets_tests.support.learnable import labelled_history, learnable_rows

# The model's defaults, from the one place that holds them.
DEFAULT_PARAMS = ModelConfig().params()
DEFAULT_DECISION = ModelConfig().decision_params()


def _fit(
    labels: npt.NDArray[np.int64],
    probabilities: dict[str, decision.FloatArray],
    strategy: str = DEFAULT_DECISION.strategy,
    precision_target: float = DEFAULT_DECISION.precision_target,
) -> decision.DecisionPolicy:
    return decision.fit_policy(
        labels,
        probabilities,
        strategy,  # type: ignore[arg-type]
        precision_target,
        DEFAULT_DECISION.daily_alert_budget,
    )


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
    policy = _fit(
        np.array([1, 0, 1, 0]),
        {"comp1": np.array([0.9, 0.1, 0.8, 0.2]), "comp2": np.array([0.5, 0.4, 0.3, 0.2])},
    )
    assert policy.thresholds == {"comp1": 0.8, "comp2": decision.NEVER}
    assert policy.validation["comp1"].f1 == 1.0
    assert decision.DecisionPolicy.from_json(policy.to_json()) == policy
    assert "| comp2 | never |" in policy.table()


def test_unknown_strategy_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown decision strategy 'argmax'"):
        _fit(np.array([1]), {"comp1": np.array([0.5])}, "argmax")


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


@pytest.mark.parametrize("classifier", ["random_forest", "gbt_one_vs_rest"])
def test_both_learners_give_five_probabilities_that_sum_to_one(
    spark: SparkSession, classifier: training.Classifier
) -> None:
    rows = learnable_rows(spark)
    params = replace(
        DEFAULT_PARAMS,
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
    validated = _fit(
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
    strict = _fit(np.array([1, 0]), {"comp1": np.array([0.5, 0.5])}, "precision_target", 0.9)
    assert decision.needs_fallback(strict) == []


def test_a_budget_cut_alerts_at_most_its_share_of_the_reference_rows() -> None:
    reference = np.array([0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1, 0.0])
    assert decision.budget_threshold(reference, 0.2) == 0.8  # 2 of 10 rows
    assert decision.budget_threshold(reference, 0.25) == 0.8  # 2.5 rows: at most 2
    assert decision.budget_threshold(reference, 0.05) == decision.NEVER  # half a row: none
    # Ties alert together: three rows at 0.9 do not fit a budget of two.
    assert decision.budget_threshold(np.array([0.9, 0.9, 0.9, 0.1]), 0.5) == decision.NEVER


def test_a_validated_cut_is_raised_to_one_alert_per_failure_row() -> None:
    # The cut 0.4 alerts all six rows for three positives: raised to 0.7 (three alerts).
    assert decision.capped_threshold(0.4, SCORES, POSITIVE, 1.0) == 0.7
    assert decision.capped_threshold(0.8, SCORES, POSITIVE, 1.0) == 0.8  # within: kept
    assert decision.capped_threshold(0.4, SCORES, POSITIVE, 2.0) == 0.4


def _evidence(failures: dict[str, int]) -> decision.Evidence:
    return decision.Evidence(
        failures=failures,
        base_rates={"comp1": 0.3, "comp2": 0.2},
        # Ten recent rows over two days; comp2's scores 0.05 .. 0.5.
        reference={
            "comp1": np.linspace(0.0, 0.9, 10),
            "comp2": np.linspace(0.05, 0.5, 10),
        },
        reference_days=2,
        reference_basis="recent rows",
        validation_days=21,
    )


def test_evidence_rules_keep_a_cut_only_with_enough_failures_else_a_budget() -> None:
    labels = np.array([1, 0, 1, 1, 0, 0])
    probabilities = {"comp1": SCORES, "comp2": np.array([0.1, 0.45, 0.2, 0.3, 0.35, 0.05])}
    fitted = _fit(labels, probabilities)
    assert fitted.thresholds["comp1"] == 0.6  # max F1 (see the first test)
    policy = decision.apply_evidence_rules(
        fitted, labels, probabilities, _evidence({"comp1": 12, "comp2": 3}), 10, 0.5, 1.0
    )
    # comp1 has 12 failures: its cut stays, as it alerts 4 rows for 3 failure rows it is
    # raised to 0.7 (3 alerts).
    assert policy.thresholds["comp1"] == 0.7
    assert policy.validation["comp1"].fitted_on.startswith("validation, raised")
    # comp2 has 3 < 10: the budget is 0.5 x 0.2 = 10% of the 10 recent rows, one row: 0.5.
    assert policy.thresholds["comp2"] == pytest.approx(0.5)
    assert policy.validation["comp2"].fitted_on.startswith("budget: 0.5 x base rate 0.2000")
    # Its validation figures are those at the budget cut: no validation row reaches 0.5.
    assert policy.validation["comp2"].alerts == 0
    # Round trip, with an expectation attached.
    expected = decision.expectation(policy, labels, probabilities, _evidence({}), 12)
    stored = decision.replace(policy, expected=expected)
    assert decision.DecisionPolicy.from_json(stored.to_json()) == stored


def test_expectation_counts_alerts_per_day_on_the_recent_rows_and_precision_on_validation() -> None:
    policy = decision.DecisionPolicy("max_f1", {"comp1": 0.7, "comp2": 0.45})
    labels = np.array([1, 0, 2, 0])
    probabilities = {
        "comp1": np.array([0.8, 0.75, 0.1, 0.1]),
        "comp2": np.array([0.1, 0.1, 0.5, 0.1]),
    }
    expected = decision.expectation(policy, labels, probabilities, _evidence({}), 7)
    # Recent rows 7, 8, 9 have comp1 0.7, 0.8, 0.9 (at or over 0.7) and comp2 0.4, 0.45, 0.5:
    # all three alert (for comp1, furthest over its cut); no other row reaches a cut. 3 alerts
    # in 10 rows over 2 days.
    assert (expected.alert_share, expected.alerts_per_day) == (0.3, 1.5)
    # Validation: rows 0 (comp1, right), 1 (comp1, wrong), 2 (comp2, right): 2 of 3 right,
    # 2 of 2 failure rows found.
    assert expected.precision == pytest.approx(2 / 3)
    assert expected.recall == 1.0
    assert expected.validation_failures == 7
    assert "1.5 alerts per day" in expected.text()


def test_the_gate_judges_only_components_with_enough_failures_on_both_sides() -> None:
    metrics = {
        "comp1": {"pr_auc": 0.05, "support": 40.0, "base_rate": 0.05},
        "comp2": {"pr_auc": 0.60, "support": 50.0, "base_rate": 0.10},
    }
    failures = {
        "training": {"comp1": 2, "comp2": 30},
        "validation": {"comp1": 12, "comp2": 11},
    }
    # comp1 was never seen failing enough in training: only comp2 is judged, 0.6 >= 2 x 0.1.
    gate = training.quality_gate(metrics, 2.0, failures=failures, min_failures=10)
    assert gate.passed and gate.judged == ("comp2",) and gate.macro_pr_auc == 0.6
    # With both too thin the floor is not applied, and the verdict says why.
    thin = {"training": {"comp1": 2, "comp2": 3}, "validation": {"comp1": 12, "comp2": 4}}
    unjudged = training.quality_gate(metrics, 2.0, failures=thin, min_failures=10)
    assert unjudged.passed and unjudged.judged == ()
    assert "comp1 2/12, comp2 3/4 training/validation" in unjudged.not_judged
    # Without the rule both are judged: the mean 0.325 is under 5 x the mean base rate 0.075.
    assert not training.quality_gate(metrics, 5.0).passed


def test_a_thin_validation_window_is_replaced_by_fits_that_never_saw_the_machine(
    spark: SparkSession,
) -> None:
    rows = labelled_history(spark).cache()
    params = replace(DEFAULT_PARAMS, num_trees=3, min_instances_per_node=1, max_depth=3)
    scored = training.cross_fitted(rows, params, 2, DEFAULT_FLEET)
    # Every row once, each scored by the fit on the other fold's machines.
    assert scored.count() == rows.count() == 80
    assert scored.select("machine_id", "datetime").distinct().count() == 80
    # Four machines with 16 failures over 60 days: far fewer than 10 per component in the 21
    # validation days, so the policy and the gate read the cross-fitted rows.
    outcome = training.train_and_validate(
        rows,
        datetime(2015, 3, 1, tzinfo=UTC),
        168,
        21,
        params,
        replace(DEFAULT_DECISION, cross_fit_folds=2),
        fleet=DEFAULT_FLEET,
    )
    assert outcome.evaluation.startswith("cross-fitted: every labelled row scored by 2 fits")
    assert outcome.validation_rows == 80
    # One failure a day after each failing row: 16 per component.
    assert outcome.failures["validation"] == {f"comp{c}": 16 for c in range(1, 5)}
    assert outcome.policy.expected is not None
    outcome.predictions.unpersist()
    rows.unpersist()
