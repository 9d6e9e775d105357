"""The planner's feedback: what was done about an alert, read back into the work list and the
outcomes.

A feedback row says that on `recorded_at` (UTC) the planner `inspected` a machine's component,
`replaced` it, or found the alert a `false_alarm`. The source gives the rows as text (a CSV
under `<landing>/feedback/`, `PdM_feedback.csv` in a CSV folder, or the tables source's
`feedback` entry); `validate` types them and sets aside, with a reason, every row it cannot
read, so a typo never acknowledges the wrong alert nor disappears unseen.
"""

from __future__ import annotations

from dataclasses import dataclass

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from pdm_assets.core.fleet import DEFAULT_FLEET, Fleet
from pdm_assets.core.validation import parse_datetime

COLUMNS = ("machine_id", "component", "recorded_at", "action")
ACTIONS = ("inspected", "replaced", "false_alarm")
# What a feedback row carries once typed.
SCHEMA = "machine_id int, component string, recorded_at timestamp, action string"
TYPED_COLUMNS = [field.split()[0] for field in SCHEMA.split(", ")]


@dataclass(frozen=True)
class Feedback:
    """Typed feedback rows, and the rows set aside with their `reason`."""

    valid: DataFrame
    rejected: DataFrame


def validate(raw: DataFrame, fleet: Fleet = DEFAULT_FLEET) -> Feedback:
    """Type the text rows of the feedback table: a machine id, a component of the fleet
    description (by name, case ignored), a UTC time and one of ACTIONS; a row that fails any of
    these is rejected with the first reason, never guessed."""
    machine = F.expr("try_cast(trim(machine_id) AS INT)")
    names = {name.lower(): name for name in fleet.component_names}
    component_key = F.lower(F.trim(F.col("component")))
    component = F.element_at(
        F.create_map(*[item for pair in names.items() for item in map(F.lit, pair)]),
        component_key,
    )
    recorded = parse_datetime(F.col("recorded_at"))
    action = F.lower(F.trim(F.col("action")))
    reason: Column = (
        F.when(machine.isNull(), F.lit("machine_id is not an integer"))
        .when(component.isNull(), F.lit(f"component is not one of {', '.join(names.values())}"))
        .when(recorded.isNull(), F.lit("recorded_at is not 'YYYY-MM-DD HH:MM:SS' (UTC)"))
        .when(~action.isin(*ACTIONS), F.lit(f"action is not one of {', '.join(ACTIONS)}"))
    )
    typed = raw.select(
        machine.alias("machine_id"),
        component.alias("component"),
        recorded.alias("recorded_at"),
        action.alias("action"),
        reason.alias("reason"),
        *[F.col(name).alias(f"raw_{name}") for name in COLUMNS],
        *[name for name in ("source_file", "line") if name in raw.columns],
    )
    valid = typed.where(F.col("reason").isNull()).select(*TYPED_COLUMNS)
    rejected = typed.where(F.col("reason").isNotNull()).select(
        *[F.col(f"raw_{name}").alias(name) for name in COLUMNS],
        *[name for name in ("source_file", "line") if name in raw.columns],
        "reason",
    )
    return Feedback(valid, rejected)


def empty(spark: SparkSession) -> DataFrame:
    """No feedback yet: an empty frame of the typed schema."""
    return spark.createDataFrame([], SCHEMA)
