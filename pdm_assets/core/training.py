"""Training data, the Spark ML pipeline, validation, the decision policy and the quality gate.

The pipeline (null filling, model indexer, assembler, classifier) is fitted on training rows and
the fitted PipelineModel is what scoring applies; nothing is refitted on scoring data.
`train_and_validate` is the whole training step: split, fit, validate, fit the decision policy,
refit.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from functools import reduce
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
from pyspark.ml import Pipeline, PipelineModel
from pyspark.ml.classification import (
    DecisionTreeClassifier,
    GBTClassifier,
    OneVsRest,
    OneVsRestModel,
    RandomForestClassifier,
)
from pyspark.ml.evaluation import BinaryClassificationEvaluator
from pyspark.ml.feature import SQLTransformer, StringIndexer, VectorAssembler
from pyspark.ml.functions import vector_to_array
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from pdm_assets.core import decision
from pdm_assets.core.fleet import DEFAULT_FLEET, Fleet
from pdm_assets.core.timewindow import timestamp_literal

MISSING_VALUE = -1.0
Classifier = Literal["random_forest", "gbt_one_vs_rest", "decision_tree"]
ClassWeighting = Literal["none", "sqrt_balanced", "balanced"]


@dataclass(frozen=True)
class ClassifierParams:
    """Hyperparameters of the classifier; their defaults and meaning are ModelConfig's
    (pdm_assets/defs/model/config.py)."""

    classifier: Classifier
    num_trees: int
    max_depth: int
    feature_subset_strategy: str
    subsampling_rate: float
    min_instances_per_node: int
    class_weighting: ClassWeighting
    gbt_iterations: int
    gbt_max_depth: int
    gbt_step_size: float
    max_bins: int
    seed: int


# Spark's default is 256; the driver has 4 GB locally.
TREE_MEMORY_MB = 1024


@dataclass(frozen=True)
class DecisionParams:
    """How the decision policy is fitted; defaults and meaning are ModelConfig's."""

    strategy: decision.Strategy
    precision_target: float
    daily_alert_budget: int
    min_validation_failures: int
    budget_ratio: float
    max_alerts_per_failure: float
    cross_fit_folds: int


def training_rows(
    features: DataFrame, labels: DataFrame, cutoff: datetime, horizon_hours: int
) -> DataFrame:
    """Feature rows with known labels: t + H <= cutoff and not censored."""
    last_observation = cutoff - timedelta(hours=horizon_hours)
    joined = features.drop("date").join(labels.drop("date"), ["machine_id", "datetime"], "inner")
    return joined.where(
        (F.col("datetime") <= timestamp_literal(last_observation)) & ~F.col("censored")
    )


def temporal_split(
    rows: DataFrame, cutoff: datetime, horizon_hours: int, validation_days: int
) -> tuple[DataFrame, DataFrame]:
    """Validation: the last `validation_days` of observations whose label is known by the cutoff.

    Training rows end one horizon before the validation rows start, so no training label looks
    into the validation period: training labels need t + H <= validation start.
    """
    horizon = timedelta(hours=horizon_hours)
    validation_end = cutoff - horizon
    validation_start = validation_end - timedelta(days=validation_days)
    validation = rows.where(
        (F.col("datetime") > timestamp_literal(validation_start))
        & (F.col("datetime") <= timestamp_literal(validation_end))
    )
    train = rows.where(F.col("datetime") <= timestamp_literal(validation_start - horizon))
    return train, validation


def class_weights(counts: dict[int, int], weighting: ClassWeighting) -> dict[int, float]:
    """Row weight per class from the class counts.

    `balanced`: n / (k * n_c) over the k classes present, so every class weighs the same in all;
    `sqrt_balanced`: the square root of that, halfway; `none`: 1 for every class. With fully
    grown trees weights hardly move the leaves; they move the split choices and, with a
    minimum leaf size, the leaves' class shares.
    """
    if weighting == "none":
        return {label: 1.0 for label in counts}
    total = sum(counts.values())
    balanced = {label: total / (len(counts) * count) for label, count in counts.items()}
    if weighting == "balanced":
        return balanced
    return {label: math.sqrt(value) for label, value in balanced.items()}


def label_counts(rows: DataFrame) -> dict[int, int]:
    return {int(row["label"]): int(row["count"]) for row in rows.groupBy("label").count().collect()}


def failure_counts(rows: DataFrame, fleet: Fleet = DEFAULT_FLEET) -> dict[str, int]:
    """Distinct failures (machine and failure time) behind the labelled rows, per component:
    the evidence a window holds, which its failure rows overstate (one failure labels every
    observation of the horizon before it)."""
    failed_at = F.unix_timestamp("datetime") + F.round(F.col("hours_to_failure") * 3600).cast(
        "long"
    )
    counted = {
        int(row["label"]): int(row["failures"])
        for row in rows.where(F.col("label") > 0)
        .groupBy("label")
        .agg(F.countDistinct("machine_id", failed_at).alias("failures"))
        .collect()
    }
    return {name: counted.get(c, 0) for c, name in enumerate(fleet.component_names, start=1)}


def with_weights(rows: DataFrame, weights: dict[int, float]) -> DataFrame:
    weight = F.lit(1.0)
    for label, value in weights.items():
        weight = F.when(F.col("label") == F.lit(label), F.lit(value)).otherwise(weight)
    return rows.withColumn("weight", weight)


def with_label_metadata(rows: DataFrame, fleet: Fleet = DEFAULT_FLEET) -> DataFrame:
    """Declare every class (none + each component) on the label, so a month without failures of
    the last component still yields a model with a probability for every class."""
    metadata = {"ml_attr": {"type": "nominal", "num_vals": fleet.classes, "name": "label"}}
    return rows.withColumn("label", F.col("label").cast("double").alias("label", metadata=metadata))


def build_pipeline(params: ClassifierParams, fleet: Fleet = DEFAULT_FLEET) -> Pipeline:
    numeric, categorical = fleet.numeric_features, fleet.categorical_features
    filled = ", ".join(
        f"coalesce(CAST(`{name}` AS DOUBLE), {MISSING_VALUE}) AS `{name}__filled`"
        for name in numeric
    )
    # A component never replaced has no "days since"; the trees can split a sentinel off.
    fill_missing = SQLTransformer(statement=f"SELECT *, {filled} FROM __THIS__")
    # A fleet without categorical machine attributes has nothing to index.
    index_stages = (
        [
            StringIndexer(
                inputCols=categorical,
                outputCols=[f"{name}__index" for name in categorical],
                handleInvalid="keep",
            )
        ]
        if categorical
        else []
    )
    assemble = VectorAssembler(
        inputCols=[f"{name}__filled" for name in numeric]
        + [f"{name}__index" for name in categorical],
        outputCol="features",
    )
    common: dict[str, Any] = {
        "labelCol": "label",
        "featuresCol": "features",
        "weightCol": "weight",
        "maxDepth": params.max_depth,
        "maxBins": params.max_bins,
        "minInstancesPerNode": params.min_instances_per_node,
        "seed": params.seed,
        # Neither changes a split (same trees, same probabilities, checked on a 349k-row fit);
        # both make deep trees cheaper to grow. More memory per pass over the rows grows more
        # nodes per pass (fewer passes); cached node ids spare re-walking every tree per pass.
        # Measured 1.4-1.9x faster on 349k rows.
        "maxMemoryInMB": TREE_MEMORY_MB,
        "cacheNodeIds": True,
    }
    classifier: RandomForestClassifier | DecisionTreeClassifier | OneVsRest
    if params.classifier == "random_forest":
        classifier = RandomForestClassifier(
            numTrees=params.num_trees,
            featureSubsetStrategy=params.feature_subset_strategy,
            subsamplingRate=params.subsampling_rate,
            **common,
        )
    elif params.classifier == "gbt_one_vs_rest":
        # One boosted binary model per class; predict() turns their margins into probabilities.
        boosted = GBTClassifier(
            **(common | {"maxDepth": params.gbt_max_depth}),
            maxIter=params.gbt_iterations,
            stepSize=params.gbt_step_size,
        )
        classifier = OneVsRest(
            classifier=boosted, labelCol="label", featuresCol="features", weightCol="weight"
        )
    else:
        classifier = DecisionTreeClassifier(**common)
    return Pipeline(stages=[fill_missing, *index_stages, assemble, classifier])


def fit(rows: DataFrame, params: ClassifierParams, fleet: Fleet = DEFAULT_FLEET) -> PipelineModel:
    weights = class_weights(label_counts(rows), params.class_weighting)
    # The forest samples rows per partition with a seed per partition index, so the row order
    # it sees shapes the model: sorted by machine and time, not in whatever order the warehouse
    # files were written.
    keys = [name for name in ("machine_id", "datetime") if name in rows.columns]
    ordered = rows.orderBy(*keys) if keys else rows
    labelled = with_weights(with_label_metadata(ordered, fleet), weights)
    return build_pipeline(params, fleet).fit(labelled)


def _class_probabilities(model: PipelineModel, classes: int) -> F.Column:
    """An array of the class probabilities of a transformed row."""
    if not isinstance(model.stages[-1], OneVsRestModel):
        return vector_to_array(F.col("probability"))
    # OneVsRest keeps each binary model's margin m; Spark's GBT gives P(class) = 1/(1+e^(-2m)).
    # The one-against-the-rest probabilities are then normalised to sum to 1.
    margins = vector_to_array(F.col("rawPrediction"))
    odds = [F.lit(1.0) / (F.lit(1.0) + F.exp(F.lit(-2.0) * margins[k])) for k in range(classes)]
    total = odds[0]
    for value in odds[1:]:
        total = total + value
    return F.array(*[value / total for value in odds])


def predict(model: PipelineModel, features: DataFrame, fleet: Fleet = DEFAULT_FLEET) -> DataFrame:
    """Most probable class and one probability column per class (`prob_none`,
    `prob_<component>`), keeping the input columns."""
    probabilities_of = _class_probabilities(model, fleet.classes)
    scored = model.transform(features).withColumn("_probabilities", probabilities_of)
    probabilities = F.col("_probabilities")
    return scored.select(
        *features.columns,
        F.col("prediction").cast("int").alias("predicted_component"),
        *[probabilities[index].alias(name) for index, name in enumerate(fleet.probability_columns)],
    )


def component_metrics(
    predictions: DataFrame, predicted: str = "alert_component", fleet: Fleet = DEFAULT_FLEET
) -> dict[str, dict[str, float]]:
    """Precision, recall, F1 (one component vs the rest), PR-AUC and base rate per component.

    `predictions` has `label`, the `predicted` component column (0 = none) and the probability
    columns. A metric whose denominator is zero is reported as 0.0, the convention of
    scikit-learn's zero_division=0. The base rate (positives / rows) is the PR-AUC of a ranking
    by chance.
    """
    components = range(1, len(fleet.component_names) + 1)
    counts = predictions.agg(
        F.count(F.lit(1)).alias("rows"),
        *[
            aggregate
            for component in components
            for aggregate in (
                F.sum(_both(component, predicted)).alias(f"tp{component}"),
                F.sum(_flag(F.col(predicted) == component)).alias(f"pp{component}"),
                F.sum(_flag(F.col("label") == component)).alias(f"p{component}"),
            )
        ],
    ).first()
    assert counts is not None
    rows = float(counts["rows"] or 0)
    metrics: dict[str, dict[str, float]] = {}
    for component, name in zip(components, fleet.component_names, strict=True):
        tp = float(counts[f"tp{component}"] or 0)
        alerted = float(counts[f"pp{component}"] or 0)
        actual = float(counts[f"p{component}"] or 0)
        precision = tp / alerted if alerted else 0.0
        recall = tp / actual if actual else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        metrics[name] = {
            "precision": precision,
            "recall": recall,
            "f1": f1,
            "pr_auc": _pr_auc(predictions, component, fleet) if actual else 0.0,
            "support": actual,
            "base_rate": actual / rows if rows else 0.0,
        }
    return metrics


def _flag(condition: F.Column) -> F.Column:
    return F.when(condition, F.lit(1)).otherwise(F.lit(0))


def _both(component: int, predicted: str) -> F.Column:
    return _flag((F.col("label") == component) & (F.col(predicted) == component))


def _pr_auc(predictions: DataFrame, component: int, fleet: Fleet) -> float:
    scored = predictions.select(
        F.col(fleet.probability_columns[component]).alias("score"),
        (F.col("label") == component).cast("double").alias("is_component"),
    )
    evaluator = BinaryClassificationEvaluator(
        rawPredictionCol="score", labelCol="is_component", metricName="areaUnderPR"
    )
    return float(evaluator.evaluate(scored))


def macro(metrics: dict[str, dict[str, float]], name: str) -> float:
    """Mean of a metric over the components with positives (none: 0.0)."""
    present = [values[name] for values in metrics.values() if values["support"] > 0]
    return sum(present) / len(present) if present else 0.0


def confusion_matrix(
    predictions: DataFrame, predicted: str = "alert_component", fleet: Fleet = DEFAULT_FLEET
) -> list[list[int]]:
    """Rows: actual class 0..k; columns: predicted class 0..k (the alerted component)."""
    counts = {
        (int(row["label"]), int(row[predicted])): int(row["count"])
        for row in predictions.groupBy("label", predicted).count().collect()
    }
    return [
        [counts.get((actual, predicted), 0) for predicted in range(fleet.classes)]
        for actual in range(fleet.classes)
    ]


def feature_importances(model: PipelineModel) -> dict[str, float]:
    """The classifier's importances, named by the feature each assembler slot came from."""
    assembler = next(stage for stage in model.stages if isinstance(stage, VectorAssembler))
    classifier = model.stages[-1]
    names = [name.split("__")[0] for name in assembler.getInputCols()]
    if isinstance(classifier, OneVsRestModel):
        # The mean of the binary models' importances, each summing to 1.
        values = np.mean(
            [m.featureImportances.toArray() for m in classifier.models],  # type: ignore[attr-defined]
            axis=0,
        )
    else:
        values = classifier.featureImportances.toArray()  # type: ignore[attr-defined]
    return {name: float(value) for name, value in zip(names, values, strict=True)}


@dataclass(frozen=True)
class ChampionScore:
    """The champion's macro PR-AUC on validation rows neither model trained on."""

    version: str
    macro_pr_auc: float
    rows: int
    basis: str


@dataclass(frozen=True)
class GateResult:
    passed: bool
    reasons: list[str]
    macro_pr_auc: float
    floor: float
    champion: ChampionScore | None
    challenger_macro_pr_auc: float | None
    # The components whose PR-AUC the floor judged; none: too few failures to judge any.
    judged: tuple[str, ...] = ()
    not_judged: str = ""


def quality_gate(
    metrics: dict[str, dict[str, float]],
    min_lift: float,
    champion: ChampionScore | None = None,
    challenger_macro_pr_auc: float | None = None,
    champion_tolerance: float | None = None,
    failures: dict[str, dict[str, int]] | None = None,
    min_failures: int = 0,
) -> GateResult:
    """May the new version become its month's model (and champion)?

    1. Macro PR-AUC over the components with validation positives must reach `min_lift` times
       their mean base rate (the PR-AUC of a ranking by chance): a floor that follows how rare
       failures are, instead of a fixed number. Where failures are common (a run-to-failure
       fleet near its end: base rates over 1 / (2 min_lift)) that multiple would pass 1, which
       no ranking reaches; the floor is then halfway from chance to a perfect ranking.
    2. Where a champion exists, the new model's macro PR-AUC on validation rows neither model
       trained on (`challenger_macro_pr_auc`) may be at most `champion_tolerance` below the
       champion's on the same rows.

    A component is judged only with `min_failures` distinct failures both in the validated
    fit's training rows and in the validation window (`failures["training"]`,
    `failures["validation"]`): a fit that never saw a component fail, or a handful of
    validation failures, says nothing about the model that ships (on twenty real machines the
    first weeks held no failure of the component that failed in validation). Where no component
    has that evidence, the floor is not applied: the version passes, unjudged, and says so.
    """
    present = {name: values for name, values in metrics.items() if values["support"] > 0}
    judged = {
        name: values
        for name, values in present.items()
        if failures is None
        or min(failures["training"].get(name, 0), failures["validation"].get(name, 0))
        >= min_failures
    }
    # Unjudged, the score is still reported (and compared with a champion's) over every
    # component with failures.
    score = macro(judged or present, "pr_auc")
    reasons = []
    not_judged = ""
    if failures is not None and min_failures > 0 and not judged:
        floor = 0.0
        not_judged = (
            f"not judged: no component has {min_failures} distinct failures both in the "
            "validated fit's training rows and in the validation window ("
            + ", ".join(
                f"{name} {failures['training'].get(name, 0)}/{failures['validation'].get(name, 0)}"
                for name in metrics
            )
            + " training/validation)"
        )
    elif not present:
        reasons.append("no component has a failure in the validation window")
        floor = 0.0
    else:
        present = judged
        base_rate = sum(values["base_rate"] for values in present.values()) / len(present)
        halfway = (1.0 + base_rate) / 2
        floor = min(min_lift * base_rate, halfway)
        if score < floor:
            rule = (
                f"{min_lift:g} x their mean base rate {base_rate:.3f}"
                if floor < halfway
                else f"halfway from their mean base rate {base_rate:.3f} to 1, as {min_lift:g} "
                "x it would pass 1"
            )
            reasons.append(
                f"macro PR-AUC {score:.3f} over {', '.join(present)} is below the floor "
                f"{floor:.3f} ({rule})"
            )
    if champion is not None and champion_tolerance is None:
        raise ValueError("a comparison with the champion needs champion_tolerance")
    if (
        champion is not None
        and challenger_macro_pr_auc is not None
        and champion_tolerance is not None
        and challenger_macro_pr_auc < champion.macro_pr_auc - champion_tolerance
    ):
        reasons.append(
            f"macro PR-AUC {challenger_macro_pr_auc:.3f} worse than champion "
            f"v{champion.version}'s {champion.macro_pr_auc:.3f} (tolerance "
            f"{champion_tolerance:.3f}) on {champion.rows} validation rows {champion.basis}"
        )
    return GateResult(
        not reasons,
        reasons,
        score,
        floor,
        champion,
        challenger_macro_pr_auc,
        tuple(judged),
        not_judged,
    )


def rows_unseen_by(rows: DataFrame, cutoff: datetime, horizon_hours: int) -> DataFrame:
    """The rows whose labels a model trained at `cutoff` never saw: t + H > cutoff."""
    return rows.where(
        F.col("datetime") > timestamp_literal(cutoff - timedelta(hours=horizon_hours))
    )


def labels_and_probabilities(
    predictions: DataFrame, fleet: Fleet
) -> tuple[npt.NDArray[np.int64], dict[str, npt.NDArray[np.float64]]]:
    columns = fleet.component_probability_columns
    collected = np.array(
        predictions.select(F.col("label").cast("double"), *columns).collect(),
        dtype=np.float64,
    ).reshape(-1, 1 + len(columns))
    labels = collected[:, 0].astype(np.int64)
    probabilities = {
        name: collected[:, index] for index, name in enumerate(fleet.component_names, 1)
    }
    return labels, probabilities


def fit_decision_policy(
    predictions: DataFrame, params: DecisionParams, fleet: Fleet = DEFAULT_FLEET
) -> decision.DecisionPolicy:
    """Collect the validation rows' labels and component probabilities, fit the thresholds."""
    labels, probabilities = labels_and_probabilities(predictions, fleet)
    return decision.fit_policy(
        labels,
        probabilities,
        params.strategy,
        precision_target=params.precision_target,
        daily_alert_budget=params.daily_alert_budget,
    )


def component_probabilities(
    predictions: DataFrame, fleet: Fleet
) -> dict[str, npt.NDArray[np.float64]]:
    columns = fleet.component_probability_columns
    collected = np.array(predictions.select(*columns).collect(), dtype=np.float64).reshape(
        -1, len(columns)
    )
    return {name: collected[:, i] for i, name in enumerate(fleet.component_names)}


def policy_evidence(
    model: PipelineModel,
    rows: DataFrame,
    recent: DataFrame | None,
    validation_failures: dict[str, int],
    validation_days: int,
    fleet: Fleet = DEFAULT_FLEET,
) -> decision.Evidence:
    """The evidence rules' inputs: base rates over every labelled row, and the shipped model's
    probabilities of the recent rows no label covers yet (all labelled rows, in-sample, when
    there are none)."""
    base_rates = _base_rates(rows, fleet)
    reference_rows = recent if recent is not None and not recent.isEmpty() else None
    if reference_rows is None:
        reference_rows, basis = rows, "the labelled rows (in-sample: no recent rows)"
    else:
        basis = "the recent rows no label covers yet"
    predicted = predict(model, reference_rows, fleet).withColumn("_day", F.to_date("datetime"))
    predicted = predicted.cache()
    days = predicted.select("_day").distinct().count()
    reference = component_probabilities(predicted, fleet)
    predicted.unpersist()
    return decision.Evidence(
        failures=validation_failures,
        base_rates=base_rates,
        reference=reference,
        reference_days=days,
        reference_basis=basis,
        validation_days=validation_days,
    )


class NotEnoughHistoryError(ValueError):
    """Too few labelled rows before the cutoff to train and validate."""


@dataclass(frozen=True)
class TrainingOutcome:
    """What one training step produced."""

    model: PipelineModel  # what ships: the refit on every labelled row, or the validated fit
    validated_model: PipelineModel
    validation: DataFrame
    predictions: DataFrame  # the validated fit's scores of the validation rows, with alerts; cached
    metrics: dict[str, dict[str, float]]
    policy: decision.DecisionPolicy
    train_rows: int
    validation_rows: int
    refit_rows: int
    # Distinct failures per component in the validated fit's training rows and in validation.
    failures: dict[str, dict[str, int]] = field(default_factory=dict)
    # How the policy was fitted and the gate judged: temporal validation or cross-fitted.
    evaluation: str = "temporal"


def train_and_validate(
    rows: DataFrame,
    cutoff: datetime,
    horizon_hours: int,
    validation_days: int,
    params: ClassifierParams,
    decision_params: DecisionParams,
    refit_on_all: bool = True,
    fleet: Fleet = DEFAULT_FLEET,
    recent: DataFrame | None = None,
) -> TrainingOutcome:
    """Split at the cutoff, fit on the training rows, validate, fit the decision policy on the
    validation rows, then (by default) refit on every labelled row.

    The held-out metrics of the validated fit are what the gate judges; the refit (validation
    rows included, so it cannot be measured there) is what ships, with the validated policy
    under the evidence rules of `decision.apply_evidence_rules`, whose budget cuts read the
    shipped model's scores of `recent` (feature rows in (cutoff - H, cutoff), which no label
    covers yet). `metrics` are the validation rows' under the final cuts.
    """
    train, validation = temporal_split(rows, cutoff, horizon_hours, validation_days)
    train_rows, validation_rows = train.count(), validation.count()
    if train_rows == 0 or validation_rows == 0:
        raise NotEnoughHistoryError(
            f"Not enough labelled history before the cutoff {cutoff.date()}: {train_rows} "
            f"training and {validation_rows} validation rows. Materialise machine_features and "
            f"failure_labels for the days before the cutoff (at least {validation_days} days "
            "+ 2 x the horizon)."
        )
    failures = {
        "training": failure_counts(train, fleet),
        "validation": failure_counts(validation, fleet),
    }
    validated_model = fit(train, params, fleet)
    model = fit(rows, params, fleet) if refit_on_all else validated_model
    evaluated = policy_inputs(
        rows,
        validation,
        failures,
        model,
        validated_model,
        recent,
        params,
        decision_params,
        validation_days,
        fleet,
    )
    scored, labels, probabilities = evaluated.scored, evaluated.labels, evaluated.probabilities
    evidence, failures = evaluated.evidence, evaluated.failures
    policy = decision.fit_policy(
        labels,
        probabilities,
        decision_params.strategy,
        precision_target=decision_params.precision_target,
        daily_alert_budget=decision_params.daily_alert_budget,
    )
    policy = decision.apply_evidence_rules(
        policy,
        labels,
        probabilities,
        evidence,
        decision_params.min_validation_failures,
        decision_params.budget_ratio,
        decision_params.max_alerts_per_failure,
    )
    if decision.needs_fallback(policy):
        shipped = labels_and_probabilities(predict(model, rows, fleet), fleet)
        policy = decision.with_fallback(policy, *shipped)
    policy = replace(
        policy,
        expected=decision.expectation(
            policy, labels, probabilities, evidence, sum(failures["validation"].values())
        ),
    )
    # Kept for the caller (pictures, the champion comparison), who unpersists it.
    predictions = decision.alerts(scored, policy, fleet.component_probability_columns).cache()
    metrics = component_metrics(predictions, fleet=fleet)
    scored.unpersist()
    return TrainingOutcome(
        model=model,
        validated_model=validated_model,
        validation=evaluated.rows,
        predictions=predictions,
        metrics=metrics,
        policy=policy,
        train_rows=train_rows,
        validation_rows=evaluated.row_count,
        refit_rows=rows.count() if refit_on_all else train_rows,
        failures=failures,
        evaluation=evaluated.how,
    )


@dataclass(frozen=True)
class PolicyInputs:
    """What the decision policy is fitted on and the gate judges: scored rows with known labels
    (`scored`, cached: the caller unpersists it) as numpy arrays, the failures behind them and
    the evidence of `decision.apply_evidence_rules`."""

    rows: DataFrame
    row_count: int
    scored: DataFrame
    labels: npt.NDArray[np.int64]
    probabilities: dict[str, npt.NDArray[np.float64]]
    failures: dict[str, dict[str, int]]
    evidence: decision.Evidence
    how: str


def policy_inputs(
    rows: DataFrame,
    validation: DataFrame,
    failures: dict[str, dict[str, int]],
    model: PipelineModel,
    validated_model: PipelineModel,
    recent: DataFrame | None,
    params: ClassifierParams,
    decision_params: DecisionParams,
    validation_days: int,
    fleet: Fleet = DEFAULT_FLEET,
) -> PolicyInputs:
    """The validation window scored by the validated fit; or, where it holds fewer than
    `min_validation_failures` failures per component on average (a small fleet), every
    labelled row scored by fits that never saw its machine (`cross_fitted`), whose scores also
    stand in for the shipped model's in the budget cuts: thousands of rows, with every kind of
    failure the history holds, instead of a week of a few machines."""
    thin = sum(failures["validation"].values()) < decision_params.min_validation_failures * len(
        fleet.component_names
    )
    if thin and decision_params.cross_fit_folds > 1:
        folds = min(decision_params.cross_fit_folds, rows.select("machine_id").distinct().count())
        scored = cross_fitted(rows, params, folds, fleet).cache()
        total = failure_counts(rows, fleet)
        labels, probabilities = labels_and_probabilities(scored, fleet)
        evidence = decision.Evidence(
            failures=total,
            base_rates=_base_rates(rows, fleet),
            reference=probabilities,
            reference_days=rows.select(F.to_date("datetime")).distinct().count(),
            reference_basis="the cross-fitted labelled rows",
            validation_days=validation_days,
        )
        return PolicyInputs(
            rows,
            rows.count(),
            scored,
            labels,
            probabilities,
            {"training": total, "validation": total},
            evidence,
            f"cross-fitted: every labelled row scored by {folds} fits without its machine",
        )
    scored = predict(validated_model, validation, fleet).cache()
    labels, probabilities = labels_and_probabilities(scored, fleet)
    evidence = policy_evidence(model, rows, recent, failures["validation"], validation_days, fleet)
    return PolicyInputs(
        validation,
        validation.count(),
        scored,
        labels,
        probabilities,
        failures,
        evidence,
        f"temporal: the last {validation_days} days of labelled rows",
    )


def cross_fitted(
    rows: DataFrame, params: ClassifierParams, folds: int, fleet: Fleet = DEFAULT_FLEET
) -> DataFrame:
    """Every row scored by a fit on the other machines' rows: machines (sorted) are dealt
    round-robin into `folds` groups, and each group is scored by a fit on the rest. No row's
    own history, nor its label, reaches the model that scores it."""
    machines = sorted(int(row[0]) for row in rows.select("machine_id").distinct().collect())
    parts = []
    for fold in range(folds):
        held = machines[fold::folds]
        inside = F.col("machine_id").isin(*held)
        fitted = fit(rows.where(~inside), params, fleet)
        parts.append(predict(fitted, rows.where(inside), fleet))
    return reduce(DataFrame.unionByName, parts)


def _base_rates(rows: DataFrame, fleet: Fleet) -> dict[str, float]:
    counts = label_counts(rows)
    total = sum(counts.values())
    return {
        name: counts.get(c, 0) / total if total else 0.0
        for c, name in enumerate(fleet.component_names, start=1)
    }


def compare_with_champion(
    outcome: TrainingOutcome,
    champion_model: PipelineModel,
    champion_version: str,
    champion_cutoff: datetime,
    horizon_hours: int,
    fleet: Fleet = DEFAULT_FLEET,
) -> tuple[ChampionScore, float] | None:
    """Champion and challenger macro PR-AUC on the validation rows the champion never saw.

    The challenger's validated fit never saw any validation row; the champion saw the rows up
    to its own cutoff - H. None when the champion saw them all (e.g. the same month retrained).
    """
    unseen = rows_unseen_by(outcome.validation, champion_cutoff, horizon_hours).cache()
    rows = unseen.count()
    if rows == 0:
        unseen.unpersist()
        return None
    champion_metrics = component_metrics(
        predict(champion_model, unseen, fleet), predicted="predicted_component", fleet=fleet
    )
    challenger_metrics = component_metrics(
        rows_unseen_by(outcome.predictions, champion_cutoff, horizon_hours), fleet=fleet
    )
    unseen.unpersist()
    basis = (
        f"after champion v{champion_version}'s cutoff - H "
        f"({(champion_cutoff - timedelta(hours=horizon_hours)).isoformat()})"
    )
    champion = ChampionScore(champion_version, macro(champion_metrics, "pr_auc"), rows, basis)
    return champion, macro(challenger_metrics, "pr_auc")
