"""Training data, the Spark ML pipeline, and per-component evaluation.

The pipeline (null filling, model indexer, assembler, classifier) is fitted once on training rows
and the fitted PipelineModel is what scoring applies; nothing is refitted on scoring data.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from pyspark.ml import Pipeline, PipelineModel
from pyspark.ml.classification import DecisionTreeClassifier, RandomForestClassifier
from pyspark.ml.evaluation import BinaryClassificationEvaluator
from pyspark.ml.feature import SQLTransformer, StringIndexer, VectorAssembler
from pyspark.ml.functions import vector_to_array
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from pdm_assets.features import CATEGORICAL_FEATURES, NUMERIC_FEATURES
from pdm_assets.timewindow import timestamp_literal
from pdm_assets.validation import COMPONENTS

CLASSES = COMPONENTS + 1  # 0 = no failure within the horizon
MISSING_VALUE = -1.0
CLASS_NAMES = ["none", *[f"comp{component}" for component in range(1, COMPONENTS + 1)]]
PROBABILITY_COLUMNS = [f"prob_{name}" for name in CLASS_NAMES]


@dataclass(frozen=True)
class ClassifierParams:
    """Hyperparameters of the classifier (see ModelConfig for their meaning)."""

    classifier: Literal["random_forest", "decision_tree"] = "random_forest"
    num_trees: int = 40
    max_depth: int = 15
    feature_subset_strategy: str = "sqrt"
    subsampling_rate: float = 0.632
    min_instances_per_node: int = 1
    max_bins: int = 32
    seed: int = 42


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


def class_weights(rows: DataFrame) -> dict[int, float]:
    """Balanced weights n / (k * n_c) over the classes present, so rare failures count."""
    counts = {
        int(row["label"]): int(row["count"]) for row in rows.groupBy("label").count().collect()
    }
    total = sum(counts.values())
    return {label: total / (len(counts) * count) for label, count in counts.items()}


def with_weights(rows: DataFrame, weights: dict[int, float]) -> DataFrame:
    weight = F.lit(1.0)
    for label, value in weights.items():
        weight = F.when(F.col("label") == F.lit(label), F.lit(value)).otherwise(weight)
    return rows.withColumn("weight", weight)


def with_label_metadata(rows: DataFrame) -> DataFrame:
    """Declare all five classes on the label, so a month without comp4 failures still yields a
    model with five probabilities."""
    metadata = {"ml_attr": {"type": "nominal", "num_vals": CLASSES, "name": "label"}}
    return rows.withColumn("label", F.col("label").cast("double").alias("label", metadata=metadata))


def build_pipeline(params: ClassifierParams) -> Pipeline:
    filled = ", ".join(
        f"coalesce(CAST(`{name}` AS DOUBLE), {MISSING_VALUE}) AS `{name}__filled`"
        for name in NUMERIC_FEATURES
    )
    # A component never replaced has no "days since"; the trees can split a sentinel off.
    fill_missing = SQLTransformer(statement=f"SELECT *, {filled} FROM __THIS__")
    index_model = StringIndexer(
        inputCols=CATEGORICAL_FEATURES,
        outputCols=[f"{name}__index" for name in CATEGORICAL_FEATURES],
        handleInvalid="keep",
    )
    assemble = VectorAssembler(
        inputCols=[f"{name}__filled" for name in NUMERIC_FEATURES]
        + [f"{name}__index" for name in CATEGORICAL_FEATURES],
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
    }
    classifier: RandomForestClassifier | DecisionTreeClassifier
    if params.classifier == "random_forest":
        classifier = RandomForestClassifier(
            numTrees=params.num_trees,
            featureSubsetStrategy=params.feature_subset_strategy,
            subsamplingRate=params.subsampling_rate,
            **common,
        )
    else:
        classifier = DecisionTreeClassifier(**common)
    return Pipeline(stages=[fill_missing, index_model, assemble, classifier])


def fit(rows: DataFrame, params: ClassifierParams) -> PipelineModel:
    weighted = with_weights(with_label_metadata(rows), class_weights(rows))
    return build_pipeline(params).fit(weighted)


def predict(model: PipelineModel, features: DataFrame) -> DataFrame:
    """Predicted class and one probability column per class, keeping the input columns."""
    scored = model.transform(features)
    probabilities = vector_to_array(F.col("probability"))
    return scored.select(
        *features.columns,
        F.col("prediction").cast("int").alias("predicted_component"),
        *[probabilities[index].alias(name) for index, name in enumerate(PROBABILITY_COLUMNS)],
    )


def component_metrics(predictions: DataFrame) -> dict[str, dict[str, float]]:
    """Precision, recall, F1 (one component vs the rest) and PR-AUC per component.

    `predictions` has `label`, `predicted_component` and the probability columns. A metric whose
    denominator is zero is reported as 0.0, the convention of scikit-learn's zero_division=0.
    """
    counts = predictions.agg(
        *[
            aggregate
            for component in range(1, COMPONENTS + 1)
            for aggregate in (
                F.sum(_both(component)).alias(f"tp{component}"),
                F.sum(_flag(F.col("predicted_component") == component)).alias(f"pp{component}"),
                F.sum(_flag(F.col("label") == component)).alias(f"p{component}"),
            )
        ]
    ).first()
    assert counts is not None
    metrics: dict[str, dict[str, float]] = {}
    for component in range(1, COMPONENTS + 1):
        tp = float(counts[f"tp{component}"] or 0)
        predicted = float(counts[f"pp{component}"] or 0)
        actual = float(counts[f"p{component}"] or 0)
        precision = tp / predicted if predicted else 0.0
        recall = tp / actual if actual else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        metrics[f"comp{component}"] = {
            "precision": precision,
            "recall": recall,
            "f1": f1,
            "pr_auc": _pr_auc(predictions, component) if actual else 0.0,
            "support": actual,
        }
    return metrics


def _flag(condition: F.Column) -> F.Column:
    return F.when(condition, F.lit(1)).otherwise(F.lit(0))


def _both(component: int) -> F.Column:
    return _flag((F.col("label") == component) & (F.col("predicted_component") == component))


def _pr_auc(predictions: DataFrame, component: int) -> float:
    scored = predictions.select(
        F.col(PROBABILITY_COLUMNS[component]).alias("score"),
        (F.col("label") == component).cast("double").alias("is_component"),
    )
    evaluator = BinaryClassificationEvaluator(
        rawPredictionCol="score", labelCol="is_component", metricName="areaUnderPR"
    )
    return float(evaluator.evaluate(scored))


def macro(metrics: dict[str, dict[str, float]], name: str) -> float:
    return sum(values[name] for values in metrics.values()) / len(metrics)


def confusion_matrix(predictions: DataFrame) -> list[list[int]]:
    """Rows: actual class 0..4; columns: predicted class 0..4."""
    counts = {
        (int(row["label"]), int(row["predicted_component"])): int(row["count"])
        for row in predictions.groupBy("label", "predicted_component").count().collect()
    }
    return [
        [counts.get((actual, predicted), 0) for predicted in range(CLASSES)]
        for actual in range(CLASSES)
    ]


def feature_importances(model: PipelineModel) -> dict[str, float]:
    """The classifier's importances, named by the feature each assembler slot came from."""
    assembler = next(stage for stage in model.stages if isinstance(stage, VectorAssembler))
    classifier = model.stages[-1]
    names = [name.split("__")[0] for name in assembler.getInputCols()]
    values = classifier.featureImportances.toArray()  # type: ignore[attr-defined]
    return {name: float(value) for name, value in zip(names, values, strict=True)}


@dataclass(frozen=True)
class GateResult:
    passed: bool
    reasons: list[str]
    macro_pr_auc: float
    champion_macro_pr_auc: float | None


def quality_gate(
    metrics: dict[str, dict[str, float]],
    champion_metrics: dict[str, dict[str, float]] | None,
    min_macro_pr_auc: float,
    champion_tolerance: float,
) -> GateResult:
    """A new version may become champion if its macro PR-AUC clears the floor and is not worse
    than the champion's on the same validation rows (by more than the tolerance)."""
    score = macro(metrics, "pr_auc")
    reasons = []
    if score < min_macro_pr_auc:
        reasons.append(f"macro PR-AUC {score:.3f} below the floor {min_macro_pr_auc:.3f}")
    champion_score = macro(champion_metrics, "pr_auc") if champion_metrics else None
    if champion_score is not None and score < champion_score - champion_tolerance:
        reasons.append(
            f"macro PR-AUC {score:.3f} worse than the champion's {champion_score:.3f} "
            f"(tolerance {champion_tolerance:.3f}) on the same validation rows"
        )
    return GateResult(not reasons, reasons, score, champion_score)
