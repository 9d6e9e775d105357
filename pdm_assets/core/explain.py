"""Reasons for alerts: which features pushed the alerted component's probability up most.

The decomposition itself is `reasons` (exact path contributions of the forest's trees, read from
the saved model's files); this module feeds it the rows Spark scored: the assembled feature
vectors of the alerting rows, collected to the driver (a day's alerts are a few hundred rows),
and joins the top contributions back as `alert_reasons`, with each feature's value and its
typical value over the training rows (`typical_values`, stored with the model version).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from pyspark.ml import PipelineModel
from pyspark.ml.feature import VectorAssembler
from pyspark.ml.functions import vector_to_array
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from pdm_assets.core import reasons
from pdm_assets.core.fleet import DEFAULT_FLEET, Fleet

REASONS_TYPE = "array<struct<feature:string,value:string,typical:string,contribution:double>>"
TYPICAL_FILE = "typical_values.json"
REASON_COUNT = 3
# approxQuantile's relative error: a typical value to show, not to compute with.
MEDIAN_ERROR = 0.01


def value_text(value: Any) -> str:
    """A feature value as the work list shows it: 4 significant digits; none when missing (a
    component never replaced has no days since)."""
    if value is None:
        return "none"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def typical_values(rows: DataFrame, fleet: Fleet = DEFAULT_FLEET) -> dict[str, str]:
    """Each feature's typical value over `rows` (the training rows): the median of a numeric
    feature, the most frequent value of a categorical one; as text."""
    numeric = fleet.numeric_features
    medians = rows.approxQuantile(numeric, [0.5], MEDIAN_ERROR) if numeric else []
    typical = {
        name: value_text(float(values[0])) if values else "none"
        for name, values in zip(numeric, medians, strict=True)
    }
    for name in fleet.categorical_features:
        top = rows.groupBy(name).count().orderBy(F.col("count").desc(), F.col(name)).first()
        typical[name] = value_text(top[name]) if top is not None else "none"
    return typical


def assembled_names(model: PipelineModel) -> list[str]:
    """The feature each slot of the assembled vector came from (the pipeline's own order)."""
    assembler = next(stage for stage in model.stages if isinstance(stage, VectorAssembler))
    return [name.split("__")[0] for name in assembler.getInputCols()]


@dataclass(frozen=True)
class Explainer:
    """The forest of a model version and the typical feature values of its training rows."""

    forest: reasons.Forest
    typical: dict[str, str]
    count: int = REASON_COUNT

    def with_reasons(self, scored: DataFrame, model: PipelineModel, fleet: Fleet) -> DataFrame:
        """`scored` with `alert_reasons`: for each alerting row, the `count` features with the
        largest contribution to its alerted component's probability (null without an alert)."""
        names = assembled_names(model)
        prefix = PipelineModel(stages=model.stages[:-1])
        # Epoch seconds, not timestamps, go to the driver and back: a collected timestamp is
        # turned into the Python process's local time, which is ambiguous at a clock change.
        alerting = scored.where(F.col("alert")).select(
            "machine_id",
            F.unix_timestamp("datetime").alias("_at"),
            "alert_component",
            *fleet.feature_columns,
        )
        collected = (
            prefix.transform(alerting)
            .select(
                "machine_id",
                "_at",
                "alert_component",
                vector_to_array(F.col("features")).alias("_vector"),
                *names,
            )
            .collect()
        )
        records = []
        if collected:
            vectors = np.array([row["_vector"] for row in collected], dtype=np.float64)
            _, contributions = reasons.contributions(self.forest, vectors)
            for index, row in enumerate(collected):
                pushed = contributions[index, :, int(row["alert_component"])]
                # The largest contributions, which are positive whenever the probability stands
                # above the trees' root mean (it does for nearly every alert).
                top = np.argsort(-pushed, kind="stable")[: self.count]
                records.append(
                    (
                        int(row["machine_id"]),
                        int(row["_at"]),
                        [
                            (
                                names[j],
                                value_text(row[names[j]]),
                                self.typical.get(names[j], "none"),
                                float(pushed[j]),
                            )
                            for j in top
                        ],
                    )
                )
        explained = scored.sparkSession.createDataFrame(
            records, f"machine_id int, _at long, alert_reasons {REASONS_TYPE}"
        )
        return (
            scored.withColumn("_at", F.unix_timestamp("datetime"))
            .join(explained, ["machine_id", "_at"], "left")
            .drop("_at")
        )
