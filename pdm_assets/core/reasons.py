"""Exact per-feature reasons for a Spark ML random forest's class probabilities.

A forest's probability for a row is the mean over its trees of the class distribution of the leaf
the row reaches. Walking a tree from the root to that leaf, every split moves the distribution from
the parent's to the child's; crediting that move to the split's feature (the "Saabas" or
tree-interpreter decomposition) gives, for every row,

    probability = bias + sum over features of contribution[feature]

exactly, where bias is the mean root distribution (the training class mix). Unlike sampled
explanations (SHAP estimates, permutations) this costs one walk per tree and needs nothing but the
trees, so the reasons shown next to an alert always add up to the alert's probability.

The trees are read from the saved model's parquet files with pyarrow, not through Spark: the
reasons can then be computed in any process (no JVM, Spark Connect clients, a notebook on the
MLflow artifact), and numpy walks all rows of a tree level by level instead of one row at a time.
Only Spark's RandomForestClassificationModel and DecisionTreeClassificationModel qualify: their
probability is an average of leaf distributions. Boosted trees (alone or inside OneVsRest) add
margins through a sigmoid, so no such exact split of the probability exists, and the readers here
refuse them by name.

Saved layout (checked against Spark 4.3): a model folder holds `metadata/part-00000*` (one JSON
line whose `class` names the model, plus `numFeatures` and `numClasses`) and `data/*.parquet`. A
forest's data has one row per node, `treeID` and a `nodeData` struct; a lone decision tree's data
has the same node fields as top-level columns. Node ids run 0..n-1 per tree in pre-order, the root
is id 0 and leaves have leftChild = rightChild = -1. A split with numCategories = -1 is continuous
(left iff x <= leftCategoriesOrThreshold[0]); with numCategories > 0 it is categorical and
leftCategoriesOrThreshold lists the categories that go left. A PipelineModel folder lists its
stage uids in metadata `paramMap.stageUids` and keeps stage i in `stages/<i>_<uid>` (i zero-padded
to the digits of the stage count); an MLflow Spark model keeps its PipelineModel under `sparkml/`.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.fs as pafs
import pyarrow.parquet as pq

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]

SPARK_ML = "org.apache.spark.ml."
FOREST_CLASSES = frozenset(
    {
        SPARK_ML + "classification.RandomForestClassificationModel",
        SPARK_ML + "classification.DecisionTreeClassificationModel",
    }
)
PIPELINE_CLASS = SPARK_ML + "PipelineModel"
# PySpark writes a pipeline holding a Python-side stage (OneVsRest is one) under its own class
# name, in the same layout.
PIPELINE_CLASSES = frozenset({PIPELINE_CLASS, "pyspark.ml.pipeline.PipelineModel"})
ONE_VS_REST_CLASS = SPARK_ML + "classification.OneVsRestModel"


class UnsupportedModelError(ValueError):
    """The folder holds no saved model, or a model whose probabilities have no exact reasons.

    `model_class` is the saved model's Spark class when one was found, so a caller can say which
    learner it met (and fall back to showing no reasons)."""

    def __init__(self, message: str, model_class: str | None = None) -> None:
        super().__init__(message)
        self.model_class = model_class


@dataclass(frozen=True, eq=False)
class Tree:
    """One classification tree as flat per-node arrays, indexed by Spark's node id.

    feature is -1 at leaves. threshold is NaN except at continuous splits. num_categories is 0
    except at categorical splits, where left_categories[node, c] says whether category c goes left
    (the matrix is as wide as the tree's largest categorical feature). left and right are the
    children's ids, -1 at leaves. distribution[node] is the node's class mix normalised to sum 1,
    which is what the node would predict as a leaf."""

    feature: IntArray
    threshold: FloatArray
    num_categories: IntArray
    left_categories: BoolArray
    left: IntArray
    right: IntArray
    distribution: FloatArray

    @property
    def nodes(self) -> int:
        return int(self.feature.shape[0])

    def go_left(self, nodes: IntArray, values: FloatArray) -> BoolArray:
        """Whether each row (at internal node nodes[i], with values[i] of that node's feature)
        goes to the left child, exactly as Spark decides it."""
        # NaN thresholds (categorical nodes) compare False; those rows are decided below. A NaN
        # value goes right at a continuous split, as in Spark (NaN <= t is false on the JVM too).
        left = values <= self.threshold[nodes]
        categorical = self.num_categories[nodes] > 0
        if categorical.any():
            left[categorical] = self._categorical_left(nodes[categorical], values[categorical])
        return left

    def _categorical_left(self, nodes: IntArray, values: FloatArray) -> BoolArray:
        count = self.num_categories[nodes]
        valid = (values >= 0) & (values < count) & (values == np.floor(values))
        index = np.where(valid, values, 0).astype(np.int64)
        listed = self.left_categories[nodes, index]
        in_left = valid & listed
        in_right = valid & ~listed
        # Spark keeps whichever side is shorter (left if len(left) <= numCategories / 2, integer
        # division) and tests membership in it, so a value that is no category at all (out of
        # range, fractional) goes right when the left side is kept and left otherwise.
        keeps_left = self.left_categories[nodes].sum(axis=1) <= count // 2
        return np.where(keeps_left, in_left, ~in_right)


@dataclass(frozen=True, eq=False)
class Forest:
    """The trees of a forest (a lone decision tree is a forest of one) and its input and output
    widths. Every tree counts equally: Spark's forest ignores its saved tree weights (all 1)."""

    trees: tuple[Tree, ...]
    num_classes: int
    num_features: int


@dataclass(frozen=True)
class Reason:
    """One feature behind a class probability: its value in the row, a typical value to compare
    with, and how much it moved that class's probability (positive: towards the class)."""

    feature: str
    value: float
    typical: float
    contribution: float


def _filesystem(path: str | os.PathLike[str]) -> tuple[pafs.FileSystem, str]:
    text = os.fspath(path)
    # A URI (file:, s3://, gs://, hdfs://) picks its filesystem; a plain path is local.
    if re.match(r"^[A-Za-z][A-Za-z0-9+.-]*:", text) and not re.match(r"^[A-Za-z]:[\\/]", text):
        filesystem, inner = pafs.FileSystem.from_uri(text)
        return filesystem, inner.rstrip("/")
    return pafs.LocalFileSystem(), os.path.abspath(text)


def _is_dir(filesystem: pafs.FileSystem, path: str) -> bool:
    return bool(filesystem.get_file_info(path).type == pafs.FileType.Directory)


def _read_metadata(filesystem: pafs.FileSystem, folder: str) -> dict[str, object]:
    metadata = f"{folder}/metadata"
    if not _is_dir(filesystem, metadata):
        raise UnsupportedModelError(f"No saved Spark ML model at {folder}: it has no metadata/.")
    # Spark 4 names the file part-00000-<uuid>-c000.txt, older Sparks plain part-00000; both
    # hold one JSON line. Checksums (.part-*.crc) and _SUCCESS are skipped.
    parts = sorted(
        info.path
        for info in filesystem.get_file_info(pafs.FileSelector(metadata))
        if info.type == pafs.FileType.File
        and info.base_name.startswith("part-")
        and not info.base_name.endswith(".crc")
    )
    for part in parts:
        with filesystem.open_input_stream(part) as stream:
            text = stream.read().decode("utf-8").strip()
        if text:
            loaded = json.loads(text.splitlines()[0])
            if isinstance(loaded, dict):
                return loaded
    raise UnsupportedModelError(f"The metadata of {folder} holds no model description.")


def _short(model_class: str) -> str:
    return model_class.rsplit(".", 1)[-1]


def _column(table: pa.Table, name: str) -> pa.Array:
    return table.column(name).combine_chunks()


def _fixed_lists(array: pa.Array, width: int, what: str) -> FloatArray:
    lengths = pc.list_value_length(array).to_numpy(zero_copy_only=False)
    if lengths.size and not (lengths == width).all():
        raise UnsupportedModelError(f"{what}: expected {width} values per node.")
    values = pc.list_flatten(array).to_numpy(zero_copy_only=False).astype(np.float64)
    return values.reshape(-1, width)


def _build_tree(table: pa.Table, prefix: str, num_classes: int, where: str) -> Tree:
    ids = _column(table, prefix + "id").to_numpy(zero_copy_only=False).astype(np.int64)
    order = np.argsort(ids, kind="stable")
    table = table.take(pa.array(order))
    count = ids.size
    # Spark rebuilds a tree by indexing an array with node ids, so they are 0..n-1 with the root
    # at 0; the arrays here rely on the same.
    if not np.array_equal(ids[order], np.arange(count)):
        raise UnsupportedModelError(f"{where}: node ids are not 0..{count - 1}.")

    def ints(name: str) -> IntArray:
        return _column(table, prefix + name).to_numpy(zero_copy_only=False).astype(np.int64)

    left, right = ints("leftChild"), ints("rightChild")
    feature = ints("split.featureIndex")
    num_categories = np.maximum(ints("split.numCategories"), 0)
    leaf = left < 0
    feature[leaf] = -1
    num_categories[leaf] = 0
    if ((left >= count) | (right >= count) | ((right < 0) != leaf)).any():
        raise UnsupportedModelError(f"{where}: a child id points outside the tree.")

    stats = _fixed_lists(_column(table, prefix + "impurityStats"), num_classes, where)
    totals = stats.sum(axis=1, keepdims=True)
    # A node without weight (possible only with zero row weights) predicts nothing; Spark skips
    # such a leaf's vote too.
    distribution = np.divide(stats, totals, out=np.zeros_like(stats), where=totals != 0)

    split_values = _column(table, prefix + "split.leftCategoriesOrThreshold")
    lengths = pc.list_value_length(split_values).to_numpy(zero_copy_only=False).astype(np.int64)
    flat = pc.list_flatten(split_values).to_numpy(zero_copy_only=False).astype(np.float64)
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
    continuous = ~leaf & (num_categories == 0)
    threshold = np.full(count, np.nan)
    if (lengths[continuous] != 1).any():
        raise UnsupportedModelError(f"{where}: a continuous split without one threshold.")
    threshold[continuous] = flat[starts[continuous]]

    width = int(num_categories.max()) if count else 0
    left_categories = np.zeros((count, width), dtype=np.bool_)
    categorical = np.flatnonzero(num_categories > 0)
    sizes = lengths[categorical]
    owner = np.repeat(categorical, sizes)
    # The positions of every categorical node's list in the flat values, without a Python loop:
    # each list's start, repeated over its length, plus the place within the list.
    within = np.arange(owner.size) - np.repeat(np.cumsum(sizes) - sizes, sizes)
    listed_values = flat[np.repeat(starts[categorical], sizes) + within]
    listed = listed_values.astype(np.int64)
    if ((listed_values != listed) | (listed < 0) | (listed >= num_categories[owner])).any():
        raise UnsupportedModelError(f"{where}: a categorical split lists no category.")
    left_categories[owner, listed] = True
    return Tree(
        feature=feature,
        threshold=threshold,
        num_categories=num_categories,
        left_categories=left_categories,
        left=left,
        right=right,
        distribution=distribution,
    )


def read_forest(folder: str | os.PathLike[str]) -> Forest:
    """The trees of a saved RandomForestClassificationModel or DecisionTreeClassificationModel:
    the folder `model.write().save(folder)` wrote, or a pipeline's stage folder (see
    `find_forest_stage`). Raises UnsupportedModelError for anything else or a missing folder."""
    filesystem, path = _filesystem(folder)
    metadata = _read_metadata(filesystem, path)
    model_class = str(metadata.get("class", "?"))
    if model_class not in FOREST_CLASSES:
        raise UnsupportedModelError(
            f"{path} holds a {_short(model_class)}, not a random forest or decision tree "
            "classifier: no exact reasons for this learner.",
            model_class,
        )
    num_classes = int(str(metadata["numClasses"]))
    num_features = int(str(metadata["numFeatures"]))
    data = f"{path}/data"
    if not _is_dir(filesystem, data):
        raise UnsupportedModelError(f"{path} has no data/ folder.", model_class)
    # The dataset reader skips _SUCCESS and the hidden .crc checksums.
    table = pq.read_table(data, filesystem=filesystem)
    # flatten() twice turns nodeData.split.featureIndex (or split.featureIndex) into columns.
    table = table.flatten().flatten()
    if "treeID" in table.column_names:
        prefix = "nodeData."
        tree_ids = _column(table, "treeID").to_numpy(zero_copy_only=False).astype(np.int64)
    else:
        prefix = ""
        tree_ids = np.zeros(table.num_rows, dtype=np.int64)
    # One sort by tree, then zero-copy slices: the files need not be in tree order.
    order = np.argsort(tree_ids, kind="stable")
    table = table.take(pa.array(order))
    found, starts, sizes = np.unique(tree_ids[order], return_index=True, return_counts=True)
    trees = [
        _build_tree(
            table.slice(int(start), int(size)), prefix, num_classes, f"{path} tree {int(tree_id)}"
        )
        for tree_id, start, size in zip(found, starts, sizes, strict=True)
    ]
    if not trees:
        raise UnsupportedModelError(f"{path} has no trees.", model_class)
    return Forest(trees=tuple(trees), num_classes=num_classes, num_features=num_features)


def _stage_folders(filesystem: pafs.FileSystem, path: str) -> dict[str, str]:
    stages = f"{path}/stages"
    if not _is_dir(filesystem, stages):
        raise UnsupportedModelError(f"{path} is a PipelineModel without stages/.", PIPELINE_CLASS)
    found: dict[str, str] = {}
    for info in filesystem.get_file_info(pafs.FileSelector(stages)):
        match = re.match(r"^(\d+)_(.+)$", info.base_name)
        if info.type == pafs.FileType.Directory and match:
            found[match.group(2)] = info.path
    return found


def find_forest_stage(pipeline_folder: str | os.PathLike[str]) -> str:
    """The folder of the classifier stage (the last stage) of a saved PipelineModel, for
    `read_forest`. Also takes an MLflow Spark model folder (PipelineModel under `sparkml/`) and a
    nested pipeline as last stage. Raises UnsupportedModelError naming the classifier when it is
    not a random forest or decision tree classifier."""
    filesystem, path = _filesystem(pipeline_folder)
    if not _is_dir(filesystem, f"{path}/metadata") and _is_dir(filesystem, f"{path}/sparkml"):
        path = f"{path}/sparkml"
    metadata = _read_metadata(filesystem, path)
    model_class = str(metadata.get("class", "?"))
    if model_class not in PIPELINE_CLASSES:
        raise UnsupportedModelError(
            f"{path} holds a {_short(model_class)}, not a saved PipelineModel.", model_class
        )
    folders = _stage_folders(filesystem, path)
    param_map = metadata.get("paramMap")
    uids = param_map.get("stageUids") if isinstance(param_map, dict) else None
    if isinstance(uids, list) and uids:
        last = str(uids[-1])
        if last not in folders:
            raise UnsupportedModelError(f"{path}/stages has no folder for {last}.", model_class)
        stage = folders[last]
    elif folders:
        # Without the uid list, the numeric prefix orders the stages.
        stage = max(
            folders.values(), key=lambda folder: int(folder.rsplit("/", 1)[-1].split("_")[0])
        )
    else:
        raise UnsupportedModelError(f"{path}/stages is empty.", model_class)

    stage_class = str(_read_metadata(filesystem, stage).get("class", "?"))
    if stage_class in FOREST_CLASSES:
        return stage
    if stage_class in PIPELINE_CLASSES:
        return find_forest_stage(stage)
    learner = _short(stage_class)
    if stage_class == ONE_VS_REST_CLASS and _is_dir(filesystem, f"{stage}/classifier/metadata"):
        inner = _read_metadata(filesystem, f"{stage}/classifier").get("class", "?")
        learner = f"{learner} of {_short(str(inner))}"
    raise UnsupportedModelError(
        f"The classifier of {path} is a {learner}: no exact reasons for this learner "
        "(only random forest and decision tree classifiers).",
        stage_class,
    )


def _rows(forest: Forest, X: npt.ArrayLike) -> FloatArray:
    values = np.asarray(X, dtype=np.float64)
    if values.ndim != 2 or values.shape[1] != forest.num_features:
        raise ValueError(
            f"Expected rows of {forest.num_features} features, got shape {values.shape}."
        )
    return values


def contributions(forest: Forest, X: npt.ArrayLike) -> tuple[FloatArray, FloatArray]:
    """Exact per-feature contributions to every class probability.

    Returns (bias, contrib): bias (k,) is the mean root distribution and contrib (n, f, k) holds,
    for row i and feature j, the mean over trees of the distribution changes at the splits on j
    along the row's path. bias + contrib.sum(axis=1) is the forest's probability (to rounding)."""
    values = _rows(forest, X)
    rows, features = values.shape
    contrib = np.zeros((rows, features, forest.num_classes))
    bias = np.zeros(forest.num_classes)
    everyone = np.arange(rows)
    for tree in forest.trees:
        bias += tree.distribution[0]
        # All rows descend together, one level per pass; rows that reached a leaf drop out.
        active = everyone
        node = np.zeros(rows, dtype=np.int64)
        while active.size:
            feature = tree.feature[node]
            internal = feature >= 0
            active, node, feature = active[internal], node[internal], feature[internal]
            if not active.size:
                break
            left = tree.go_left(node, values[active, feature])
            child = np.where(left, tree.left[node], tree.right[node])
            # A row meets each level once, so (active, feature) pairs are distinct and a plain
            # fancy-indexed += is safe (no np.add.at needed).
            contrib[active, feature] += tree.distribution[child] - tree.distribution[node]
            node = child
    count = len(forest.trees)
    return bias / count, contrib / count


def probabilities(forest: Forest, X: npt.ArrayLike) -> FloatArray:
    """The forest's class probabilities (n, k), as Spark's `probability` column: the mean of the
    leaf distributions, renormalised to sum 1 as Spark does."""
    values = _rows(forest, X)
    votes = np.zeros((values.shape[0], forest.num_classes))
    everyone = np.arange(values.shape[0])
    for tree in forest.trees:
        node = np.zeros(values.shape[0], dtype=np.int64)
        active = everyone
        while active.size:
            at = node[active]
            internal = tree.feature[at] >= 0
            active, at = active[internal], at[internal]
            if not active.size:
                break
            left = tree.go_left(at, values[active, tree.feature[at]])
            node[active] = np.where(left, tree.left[at], tree.right[at])
        votes += tree.distribution[node]
    totals = votes.sum(axis=1, keepdims=True)
    return np.divide(votes, totals, out=np.zeros_like(votes), where=totals != 0)


def top_reasons(
    contribution: npt.ArrayLike,
    values: npt.ArrayLike,
    names: list[str] | tuple[str, ...],
    typical: npt.ArrayLike,
    k: int = 3,
) -> list[Reason]:
    """The (at most) k features that pushed one row's probability of one class up the most,
    largest first: `contribution` is contrib[row, :, class]. Features that lowered it or did not
    move it are never reasons, so fewer than k come back when fewer are positive."""
    pushes = np.asarray(contribution, dtype=np.float64)
    row = np.asarray(values, dtype=np.float64)
    usual = np.asarray(typical, dtype=np.float64)
    if not (pushes.shape == row.shape == usual.shape == (len(names),)):
        raise ValueError("contribution, values, typical and names must have one entry a feature.")
    # A stable sort on the negated contribution: ties keep the feature order, so the reasons are
    # reproducible.
    order = np.argsort(-pushes, kind="stable")
    return [
        Reason(
            feature=names[j],
            value=float(row[j]),
            typical=float(usual[j]),
            contribution=float(pushes[j]),
        )
        for j in order[: max(k, 0)]
        if pushes[j] > 0
    ]
