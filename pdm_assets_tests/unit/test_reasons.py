"""Exact reasons for forest probabilities: a forest written by hand in Spark's saved layout with
its contributions worked out by hand, forests fitted and saved by Spark (alone, in a pipeline, a
lone decision tree) against Spark's own probabilities, the choice of reasons, and the refusal of
learners without exact reasons."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from pyspark.ml import Pipeline
from pyspark.ml.classification import (
    DecisionTreeClassifier,
    LogisticRegression,
    RandomForestClassificationModel,
    RandomForestClassifier,
)
from pyspark.ml.feature import StringIndexer, VectorAssembler
from pyspark.ml.functions import vector_to_array
from pyspark.ml.linalg import Vectors
from pyspark.sql import DataFrame, SparkSession

from pdm_assets.core import reasons
from pdm_assets.core.reasons import Reason, UnsupportedModelError

FOREST = "org.apache.spark.ml.classification.RandomForestClassificationModel"
TREE = "org.apache.spark.ml.classification.DecisionTreeClassificationModel"

SPLIT = pa.struct(
    [
        ("featureIndex", pa.int32()),
        ("leftCategoriesOrThreshold", pa.list_(pa.float64())),
        ("numCategories", pa.int32()),
    ]
)
NODE = pa.struct(
    [
        ("id", pa.int32()),
        ("prediction", pa.float64()),
        ("impurity", pa.float64()),
        ("impurityStats", pa.list_(pa.float64())),
        ("rawCount", pa.int64()),
        ("gain", pa.float64()),
        ("leftChild", pa.int32()),
        ("rightChild", pa.int32()),
        ("split", SPLIT),
    ]
)


def node(
    stats: list[float],
    left: int = -1,
    right: int = -1,
    feature: int = -1,
    threshold: float | None = None,
    categories: list[float] | None = None,
    num_categories: int = -1,
) -> dict[str, Any]:
    """A node as Spark saves it: leaves have children -1 and an empty split."""
    split_values = [threshold] if threshold is not None else (categories or [])
    return {
        "prediction": float(np.argmax(stats)),
        "impurity": 0.0,
        "impurityStats": stats,
        "rawCount": int(sum(stats)),
        "gain": -1.0 if left < 0 else 0.1,
        "leftChild": left,
        "rightChild": right,
        "split": {
            "featureIndex": feature,
            "leftCategoriesOrThreshold": split_values,
            "numCategories": num_categories,
        },
    }


# Three features: f0 and f2 continuous, f1 categorical with 3 categories; three classes. Every
# class count sums to a power of two, so all distributions and contributions are exact floats.
# Tree 0:
#   0 [4,2,2] -> (.5,.25,.25)      f0 <= 0.5 ? 1 : 4
#   1 [3,1,0] -> (.75,.25,0)       f1 in {0,2} ? 2 : 3   (2 of 3 listed: Spark keeps the
#   2 [3,0,0] -> (1,0,0)                                  complement {1}, so a non-category
#   3 [0,1,0] -> (0,1,0)                                  value such as 7 goes left)
#   4 [1,1,2] -> (.25,.25,.5)      f2 <= 10 ? 5 : 6
#   5 [1,1,0] -> (.5,.5,0)
#   6 [0,0,2] -> (0,0,1)
# Tree 1:
#   0 [2,4,2] -> (.25,.5,.25)      f2 <= 3 ? 1 : 2
#   1 [2,2,0] -> (.5,.5,0)
#   2 [0,2,2] -> (0,.5,.5)         f1 in {1} ? 3 : 4     (1 of 3: a non-category goes right)
#   3 [0,2,0] -> (0,1,0)
#   4 [0,0,2] -> (0,0,1)
HAND_TREES = [
    [
        node([4, 2, 2], 1, 4, feature=0, threshold=0.5),
        node([3, 1, 0], 2, 3, feature=1, categories=[0.0, 2.0], num_categories=3),
        node([3, 0, 0]),
        node([0, 1, 0]),
        node([1, 1, 2], 5, 6, feature=2, threshold=10.0),
        node([1, 1, 0]),
        node([0, 0, 2]),
    ],
    [
        node([2, 4, 2], 1, 2, feature=2, threshold=3.0),
        node([2, 2, 0]),
        node([0, 2, 2], 3, 4, feature=1, categories=[1.0], num_categories=3),
        node([0, 2, 0]),
        node([0, 0, 2]),
    ],
]
# Bias: the mean root distribution, ((.5,.25,.25) + (.25,.5,.25)) / 2.
HAND_BIAS = np.array([0.375, 0.375, 0.25])
HAND_ROWS = np.array(
    [
        # A: tree 0 goes 0 -> 1 (f0: +.25,0,-.25) -> 2 (f1: +.25,-.25,0), leaf (1,0,0);
        #    tree 1 goes 0 -> 1 (f2: +.25,0,-.25), leaf (.5,.5,0). Probability (.75,.25,0).
        [0.0, 2.0, 1.0],
        # B: tree 0: 0 -> 4 (f0: -.25,0,+.25) -> 6 (f2: -.25,-.25,+.5), leaf (0,0,1);
        #    tree 1: 0 -> 2 (f2: -.25,0,+.25) -> 3 (f1: 0,+.5,-.5), leaf (0,1,0).
        #    Probability (0,.5,.5).
        [1.0, 1.0, 20.0],
        # C: ties go left (0.5 <= 0.5, 3 <= 3); category 7 is none of 0..2 and goes left at tree
        #    0's node 1. Same path as A, probability (.75,.25,0).
        [0.5, 7.0, 3.0],
        # D: tree 0: 0 -> 1 (f0: +.25,0,-.25) -> 2 (category 7 left; f1: +.25,-.25,0);
        #    tree 1: 0 -> 2 (f2: -.25,0,+.25) -> 4 (category 7 right; f1: 0,-.5,+.5).
        #    Probability ((1,0,0) + (0,0,1)) / 2 = (.5,0,.5).
        [0.0, 7.0, 5.0],
    ]
)
# Each tree's changes halved (two trees), per row, feature, class.
HAND_CONTRIB = np.array(
    [
        [[0.125, 0.0, -0.125], [0.125, -0.125, 0.0], [0.125, 0.0, -0.125]],
        [[-0.125, 0.0, 0.125], [0.0, 0.25, -0.25], [-0.25, -0.125, 0.375]],
        [[0.125, 0.0, -0.125], [0.125, -0.125, 0.0], [0.125, 0.0, -0.125]],
        [[0.125, 0.0, -0.125], [0.125, -0.375, 0.25], [-0.125, 0.0, 0.125]],
    ]
)
HAND_PROBABILITY = np.array(
    [[0.75, 0.25, 0.0], [0.0, 0.5, 0.5], [0.75, 0.25, 0.0], [0.5, 0.0, 0.5]]
)


def write_model(
    folder: Path,
    trees: list[list[dict[str, Any]]],
    model_class: str = FOREST,
    num_features: int = 3,
    num_classes: int = 3,
) -> Path:
    """A model folder in Spark's saved layout: metadata JSON line, data parquet (a forest's nodes
    nested under nodeData beside treeID, a lone tree's nodes as top-level columns)."""
    (folder / "metadata").mkdir(parents=True)
    (folder / "data").mkdir()
    metadata: dict[str, Any] = {
        "class": model_class,
        "timestamp": 0,
        "sparkVersion": "4.3.0",
        "uid": "hand_1",
        "paramMap": {},
        # Spark's reader needs the impurity to rebuild the nodes.
        "defaultParamMap": {"impurity": "gini"},
        "numFeatures": num_features,
        "numClasses": num_classes,
    }
    rows = [
        (tree_id, {"id": node_id, **data})
        for tree_id, tree in enumerate(trees)
        for node_id, data in enumerate(tree)
    ]
    if model_class == FOREST:
        metadata["numTrees"] = len(trees)
        table = pa.table(
            {
                "treeID": pa.array([tree_id for tree_id, _ in rows], pa.int32()),
                "nodeData": pa.array([data for _, data in rows], NODE),
            }
        )
    else:
        table = pa.Table.from_struct_array(pa.array([data for _, data in rows], NODE))
    (folder / "metadata" / "part-00000").write_text(json.dumps(metadata) + "\n")
    (folder / "data" / "_SUCCESS").write_text("")
    pq.write_table(table, folder / "data" / "part-00000-hand-c000.snappy.parquet")
    return folder


def test_hand_forest_contributions_are_exact(tmp_path: Path) -> None:
    forest = reasons.read_forest(write_model(tmp_path / "forest", HAND_TREES))
    assert (len(forest.trees), forest.num_classes, forest.num_features) == (2, 3, 3)
    first = forest.trees[0]
    assert first.feature.tolist() == [0, 1, -1, -1, 2, -1, -1]
    assert first.num_categories.tolist() == [0, 3, 0, 0, 0, 0, 0]
    assert first.left_categories[1].tolist() == [True, False, True]
    assert np.isnan(first.threshold[1]) and first.threshold[4] == 10.0

    bias, contrib = reasons.contributions(forest, HAND_ROWS)
    assert np.array_equal(bias, HAND_BIAS)
    assert np.array_equal(contrib, HAND_CONTRIB)
    assert np.array_equal(bias + contrib.sum(axis=1), HAND_PROBABILITY)
    assert np.array_equal(reasons.probabilities(forest, HAND_ROWS), HAND_PROBABILITY)
    # A URI reads the same files.
    by_uri = reasons.read_forest((tmp_path / "forest").as_uri())
    assert np.array_equal(reasons.contributions(by_uri, HAND_ROWS)[1], HAND_CONTRIB)


def test_a_lone_tree_reads_from_flat_columns(tmp_path: Path) -> None:
    # Tree 1 alone: bias is its root (.25,.5,.25); row B goes 0 -> 2 (f2: -.25,0,+.25) -> 3
    # (f1: 0,+.5,-.5), leaf (0,1,0).
    tree = reasons.read_forest(write_model(tmp_path / "tree", HAND_TREES[1:], TREE))
    bias, contrib = reasons.contributions(tree, HAND_ROWS[1:2])
    assert np.array_equal(bias, [0.25, 0.5, 0.25])
    assert np.array_equal(contrib[0], [[0.0, 0.0, 0.0], [0.0, 0.5, -0.5], [-0.25, 0.0, 0.25]])


def test_rows_must_have_every_feature(tmp_path: Path) -> None:
    forest = reasons.read_forest(write_model(tmp_path / "forest", HAND_TREES))
    with pytest.raises(ValueError, match="3 features"):
        reasons.contributions(forest, np.zeros((2, 2)))


def test_spark_loads_the_hand_forest_and_agrees(spark: SparkSession, tmp_path: Path) -> None:
    """The hand layout is Spark's: Spark loads the hand-written folder (given the per-tree
    metadata its reader also wants) and predicts the hand probabilities, category 7 included."""
    folder = write_model(tmp_path / "forest", HAND_TREES)
    # Spark's reader wants each tree's metadata too: (treeID, metadata JSON, weight) rows.
    tree_metadata = json.dumps(
        {
            "class": TREE,
            "timestamp": 0,
            "sparkVersion": "4.3.0",
            "uid": "dtc_hand",
            "paramMap": {},
            "defaultParamMap": {"impurity": "gini"},
        }
    )
    (folder / "treesMetadata").mkdir()
    pq.write_table(
        pa.table(
            {
                "_1": pa.array([0, 1], pa.int32()),
                "_2": [tree_metadata, tree_metadata],
                "_3": [1.0, 1.0],
            }
        ),
        folder / "treesMetadata" / "part-00000.parquet",
    )
    model = RandomForestClassificationModel.load(str(folder))
    rows = spark.createDataFrame(
        [(Vectors.dense(row.tolist()),) for row in HAND_ROWS], ["features"]
    )
    predicted = model.transform(rows).select(vector_to_array("probability").alias("p")).collect()
    assert np.array_equal(np.array([row.p for row in predicted]), HAND_PROBABILITY)


def fleet_like_rows(spark: SparkSession) -> DataFrame:
    """200 rows: a, b continuous, c one of four categories. The rarest category (index 3 after
    the frequency-ordered StringIndexer) alone makes class 2, so the trees split it off with the
    three others listed on the left (Spark then keeps the complement)."""
    rng = np.random.default_rng(7)
    rows = []
    for _ in range(200):
        a, b = float(rng.normal()), float(rng.uniform())
        c = str(rng.choice(["p", "q", "r", "s"], p=[0.4, 0.3, 0.2, 0.1]))
        label = 2 if c == "s" else (0 if a < 0.2 and c != "r" else 1)
        if rng.uniform() < 0.1:
            label = int(rng.integers(3))
        rows.append((a, b, c, float(label)))
    return spark.createDataFrame(rows, ["a", "b", "c", "label"])


def spark_probabilities(frame: DataFrame) -> tuple[np.ndarray, np.ndarray]:
    collected = frame.select(
        vector_to_array("features").alias("x"), vector_to_array("probability").alias("p")
    ).collect()
    return np.array([row.x for row in collected]), np.array([row.p for row in collected])


@pytest.fixture(scope="module")
def fitted(spark: SparkSession, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A pipeline (indexer, assembler, forest) and a lone tree fitted on the rows and saved."""
    rows = fleet_like_rows(spark)
    pipeline = Pipeline(
        stages=[
            StringIndexer(inputCol="c", outputCol="c_index"),
            VectorAssembler(inputCols=["a", "b", "c_index"], outputCol="features"),
            RandomForestClassifier(numTrees=5, maxDepth=4, seed=3),
        ]
    ).fit(rows)
    folder = tmp_path_factory.mktemp("fitted")
    pipeline.write().save(str(folder / "pipeline"))
    pipeline.stages[-1].write().save(str(folder / "forest"))
    assembled = pipeline.stages[1].transform(pipeline.stages[0].transform(rows))
    tree = DecisionTreeClassifier(maxDepth=4, seed=3).fit(assembled)
    tree.write().save(str(folder / "tree"))
    return {
        "folder": folder,
        "scored": spark_probabilities(pipeline.transform(rows)),
        "tree_scored": spark_probabilities(tree.transform(assembled)),
        "forest": pipeline.stages[-1],
        "tree": tree,
    }


def assert_exact(forest: reasons.Forest, x: np.ndarray, probability: np.ndarray) -> None:
    bias, contrib = reasons.contributions(forest, x)
    assert contrib.shape == (x.shape[0], forest.num_features, forest.num_classes)
    np.testing.assert_allclose(bias + contrib.sum(axis=1), probability, rtol=0, atol=1e-9)
    np.testing.assert_allclose(reasons.probabilities(forest, x), probability, rtol=0, atol=1e-12)


def test_saved_spark_forest_reasons_sum_to_its_probability(fitted: dict[str, Any]) -> None:
    forest = reasons.read_forest(fitted["folder"] / "forest")
    assert (len(forest.trees), forest.num_classes, forest.num_features) == (5, 3, 3)
    # The data must exercise the categorical reading, including Spark's kept complement.
    counts = [t.num_categories[t.num_categories > 0] for t in forest.trees]
    assert any(c.size for c in counts)
    listed = [t.left_categories[t.num_categories > 0].sum(axis=1) for t in forest.trees]
    assert any((s > 2).any() for s in listed)
    x, probability = fitted["scored"]
    assert_exact(forest, x, probability)


def test_the_pipelines_classifier_stage_is_found(fitted: dict[str, Any]) -> None:
    stage = reasons.find_forest_stage(fitted["folder"] / "pipeline")
    assert Path(stage).parent.name == "stages"
    assert Path(stage).name.startswith("2_RandomForestClassifier_")
    x, probability = fitted["scored"]
    assert_exact(reasons.read_forest(stage), x, probability)


def test_an_mlflow_model_folder_holds_the_pipeline_under_sparkml(
    fitted: dict[str, Any], tmp_path: Path
) -> None:
    shutil.copytree(fitted["folder"] / "pipeline", tmp_path / "model" / "sparkml")
    stage = reasons.find_forest_stage(tmp_path / "model")
    assert Path(stage).parent.parent.name == "sparkml"


def test_a_saved_decision_tree_reads_too(fitted: dict[str, Any]) -> None:
    tree = reasons.read_forest(fitted["folder"] / "tree")
    assert len(tree.trees) == 1
    x, probability = fitted["tree_scored"]
    assert_exact(tree, x, probability)


def test_values_that_are_no_category_go_where_spark_sends_them(
    spark: SparkSession, fitted: dict[str, Any]
) -> None:
    """Fractional, negative and unseen category indices, and NaNs: Spark's membership test on
    the shorter side of each categorical split decides, and NaN goes right at a threshold."""
    forest = reasons.read_forest(fitted["folder"] / "forest")
    x = np.array(
        [
            [a, b, c]
            for a in (-1.0, 0.1, 1.0, np.nan)
            for b in (0.3, 0.8)
            for c in (-1, 1.5, 3, 4, 9)
        ]
    )
    frame = spark.createDataFrame([(Vectors.dense(row.tolist()),) for row in x], ["features"])
    _, probability = spark_probabilities(fitted["forest"].transform(frame))
    assert_exact(forest, x, probability)


def test_top_reasons_are_the_largest_positive_pushes() -> None:
    names = ["vibration", "pressure", "age", "model"]
    values = [45.0, 100.0, 12.0, 3.0]
    typical = [40.0, 101.0, 10.0, 2.0]
    pushes = [0.05, -0.2, 0.3, 0.1]
    assert reasons.top_reasons(pushes, values, names, typical) == [
        Reason("age", 12.0, 10.0, 0.3),
        Reason("model", 3.0, 2.0, 0.1),
        Reason("vibration", 45.0, 40.0, 0.05),
    ]
    assert [r.feature for r in reasons.top_reasons(pushes, values, names, typical, k=2)] == [
        "age",
        "model",
    ]
    # Only the positive ones, however many are asked for; none pushes up, no reasons.
    assert len(reasons.top_reasons(pushes, values, names, typical, k=10)) == 3
    assert reasons.top_reasons([0.0, -0.1, -0.3, 0.0], values, names, typical) == []
    with pytest.raises(ValueError):
        reasons.top_reasons(pushes[:3], values, names, typical)


def test_learners_without_exact_reasons_are_named(spark: SparkSession, tmp_path: Path) -> None:
    rows = spark.createDataFrame(
        [(Vectors.dense([float(i % 7), float(i % 3)]), float(i % 2)) for i in range(40)],
        ["features", "label"],
    )
    logistic = Pipeline(stages=[LogisticRegression(maxIter=5)]).fit(rows)
    logistic.write().save(str(tmp_path / "logistic"))
    with pytest.raises(UnsupportedModelError, match="LogisticRegressionModel") as raised:
        reasons.find_forest_stage(tmp_path / "logistic")
    assert raised.value.model_class is not None
    assert raised.value.model_class.endswith("LogisticRegressionModel")
    stage = next((tmp_path / "logistic" / "stages").iterdir())
    with pytest.raises(UnsupportedModelError, match="LogisticRegressionModel"):
        reasons.read_forest(stage)

    # OneVsRest of boosted trees, as PySpark saves it (checked on a fit): a Python pipeline class,
    # the stage's metadata and its classifier's under classifier/.
    boosted = tmp_path / "boosted"
    stage = boosted / "stages" / "0_OneVsRestModel_ab12"
    for folder, saved_class in (
        (boosted, "pyspark.ml.pipeline.PipelineModel"),
        (stage, "org.apache.spark.ml.classification.OneVsRestModel"),
        (stage / "classifier", "org.apache.spark.ml.classification.GBTClassifier"),
    ):
        (folder / "metadata").mkdir(parents=True)
        metadata = {"class": saved_class, "paramMap": {"stageUids": ["OneVsRestModel_ab12"]}}
        (folder / "metadata" / "part-00000-x-c000.txt").write_text(json.dumps(metadata))
    with pytest.raises(UnsupportedModelError, match="OneVsRestModel of GBTClassifier"):
        reasons.find_forest_stage(boosted)
    # A forest is no pipeline, and a folder without a model is no model.
    with pytest.raises(UnsupportedModelError, match="not a saved PipelineModel"):
        reasons.find_forest_stage(write_model(tmp_path / "forest", HAND_TREES))
    with pytest.raises(UnsupportedModelError, match="no metadata"):
        reasons.read_forest(tmp_path / "nothing")
    with pytest.raises(UnsupportedModelError, match="no metadata"):
        reasons.find_forest_stage(tmp_path / "nothing")


def test_contributions_stay_exact_at_fleet_size() -> None:
    """40 full trees of depth 15 on 5000 rows and 40 features, the fleet model's shape. No clock
    is asserted (the suite shares its cores); the walk is per level, not per row, about 0.3 s."""
    rng = np.random.default_rng(0)
    depth, features, classes = 15, 40, 3
    trees = []
    for _ in range(40):
        internal = 2**depth - 1
        count = 2 * internal + 1
        ids = np.arange(count)
        # Heap order: node i's children are 2i+1 and 2i+2; Spark's ids are pre-order, but any
        # 0..n-1 numbering with the root at 0 reads the same.
        left = np.where(ids < internal, 2 * ids + 1, -1)
        right = np.where(ids < internal, 2 * ids + 2, -1)
        stats = rng.integers(1, 20, size=(count, classes)).astype(float)
        trees.append(
            reasons.Tree(
                feature=np.where(ids < internal, rng.integers(0, features, count), -1),
                threshold=np.where(ids < internal, rng.normal(size=count), np.nan),
                num_categories=np.zeros(count, dtype=np.int64),
                left_categories=np.zeros((count, 0), dtype=bool),
                left=left,
                right=right,
                distribution=stats / stats.sum(axis=1, keepdims=True),
            )
        )
    forest = reasons.Forest(trees=tuple(trees), num_classes=classes, num_features=features)
    x = rng.normal(size=(5000, features))
    bias, contrib = reasons.contributions(forest, x)
    np.testing.assert_allclose(
        bias + contrib.sum(axis=1), reasons.probabilities(forest, x), rtol=0, atol=1e-12
    )
