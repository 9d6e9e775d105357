"""What asset pages show: column schemas (`dagster/column_schema`), metric tables, and pictures
rendered to PNG with matplotlib, shown inline as Markdown metadata."""

import base64
import io
from collections.abc import Mapping, Sequence

import dagster as dg
import matplotlib

matplotlib.use("Agg")  # no display on servers; must precede pyplot
import matplotlib.pyplot as plt
from matplotlib.figure import Figure


def column_schema(types: dict[str, str]) -> dg.TableSchema:
    """A column schema from column names and their Spark simpleString types."""
    return dg.TableSchema(columns=[dg.TableColumn(name, kind) for name, kind in types.items()])


def metrics_table(metrics: dict[str, dict[str, float]]) -> str:
    lines = [
        "| component | precision | recall | F1 | PR-AUC | base rate | support |",
        "|---|---|---|---|---|---|---|",
    ]
    for component, values in metrics.items():
        lines.append(
            f"| {component} | {values['precision']:.3f} | {values['recall']:.3f} | "
            f"{values['f1']:.3f} | {values['pr_auc']:.3f} | {values['base_rate']:.4f} "
            f"| {int(values['support'])} |"
        )
    return "\n".join(lines)


def to_png(figure: Figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=90, bbox_inches="tight")
    plt.close(figure)
    return buffer.getvalue()


def markdown_image(png: bytes, title: str) -> dg.MetadataValue:
    """Dagster renders Markdown metadata on the asset page, data: URLs included."""
    encoded = base64.b64encode(png).decode("ascii")
    return dg.MetadataValue.md(f"![{title}](data:image/png;base64,{encoded})")


def confusion_matrix(matrix: Sequence[Sequence[int]], labels: Sequence[str]) -> Figure:
    figure, axes = plt.subplots(figsize=(4.5, 4))
    axes.imshow(matrix, cmap="Blues")
    for row, values in enumerate(matrix):
        for column, value in enumerate(values):
            axes.text(column, row, str(value), ha="center", va="center", fontsize=8)
    axes.set_xticks(range(len(labels)), labels, rotation=45)
    axes.set_yticks(range(len(labels)), labels)
    axes.set_xlabel("predicted")
    axes.set_ylabel("actual")
    axes.set_title("validation confusion matrix")
    return figure


def feature_importances(importances: dict[str, float], top: int = 20) -> Figure:
    ranked = sorted(importances.items(), key=lambda item: item[1])[-top:]
    figure, axes = plt.subplots(figsize=(6, 0.25 * len(ranked) + 1))
    axes.barh([name for name, _ in ranked], [value for _, value in ranked])
    axes.set_title(f"top {len(ranked)} feature importances")
    axes.tick_params(axis="y", labelsize=7)
    return figure


def score_distribution(probabilities: Sequence[float]) -> Figure:
    figure, axes = plt.subplots(figsize=(5, 3))
    axes.hist(probabilities, bins=20, range=(0, 1))
    axes.set_xlabel("P(failure within horizon)")
    axes.set_ylabel("machine observations")
    axes.set_yscale("log")
    axes.set_title("score distribution")
    return figure


def trend(days: Sequence[str], series: Mapping[str, Sequence[float]], title: str) -> Figure:
    """Lines over days; a missing value is NaN, which matplotlib leaves as a gap."""
    figure, axes = plt.subplots(figsize=(6, 3))
    for name, values in series.items():
        axes.plot(days, values, marker=".", label=name)
    axes.set_ylim(0, 1.05)
    axes.set_title(title)
    axes.legend(fontsize=7)
    axes.tick_params(axis="x", labelrotation=45, labelsize=6)
    return figure
