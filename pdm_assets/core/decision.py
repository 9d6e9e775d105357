"""The decision policy: which scored rows raise an alert, and for which component.

A policy is fitted on the validation window at training time, stored with the model version,
and applied by scoring. Three strategies:

* ``max_f1`` (default): per component, the probability threshold that maximises that
  component's F1 (one component against the rest) on validation;
* ``precision_target``: per component, the lowest threshold whose validation precision reaches
  the target (the most recall at that precision); a component that never reaches it never
  alerts;
* ``daily_top_k``: at most k machines alert per day: those with the highest failure
  probability relative to their component's max-F1 threshold.

A row alerts for the component whose probability stands highest over its threshold
(probability / threshold), among those at or above it; ties go to the lower component number.

A cut fitted on a handful of validation failures is noise: on ten real machines the max-F1 cuts
of four failures alerted on 28% of all rows. `apply_evidence_rules` therefore keeps a fitted cut
only for a component with at least `min_failures` distinct failures in the validation window,
and never lets it alert more validation rows than `max_alerts_per_failure` times that
component's failure rows. Every other component gets a budget cut: the cut that alerts
`budget_ratio` times the component's base rate (its share of labelled rows) of the shipped
model's scores of the recent rows no label covers yet, the rows most like those it will score.

Where neither is possible (no recent rows and no validation fit), ``max_f1`` and
``daily_top_k`` fall back to the break-even point of the shipped model on every labelled row:
the threshold that alerts as many rows as there are failure rows of that component.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, replace
from functools import reduce
from typing import Literal, get_args

import numpy as np
import numpy.typing as npt
from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

Strategy = Literal["max_f1", "precision_target", "daily_top_k"]
STRATEGIES: tuple[str, ...] = get_args(Strategy)
# A threshold above every probability: the component never alerts.
NEVER = 1.01
POLICY_FILE = "decision_policy.json"


@dataclass(frozen=True)
class ThresholdFit:
    """A component's threshold and what it achieved on the validation rows."""

    threshold: float
    precision: float
    recall: float
    f1: float
    alerts: int
    positives: int
    fitted_on: str = "validation"


@dataclass(frozen=True)
class Expectation:
    """What the policy is expected to do when it scores: alerts per day and their share of the
    rows, from the shipped model's scores of the recent rows (`alerts_basis`), and the pooled
    precision and recall of the validated fit under the final cuts on the validation rows, with
    the number of distinct failures behind them."""

    alerts_per_day: float
    alert_share: float
    alerts_basis: str
    precision: float
    recall: float
    validation_failures: int

    def text(self) -> str:
        return (
            f"expected {self.alerts_per_day:.1f} alerts per day ({self.alert_share:.1%} of "
            f"rows, {self.alerts_basis}) at a pooled precision of {self.precision:.2f} and "
            f"recall {self.recall:.2f} (validation, {self.validation_failures} failures)"
        )


@dataclass(frozen=True)
class DecisionPolicy:
    """Per-component probability thresholds and how they were chosen."""

    strategy: Strategy
    thresholds: dict[str, float]
    validation: dict[str, ThresholdFit] = field(default_factory=dict)
    precision_target: float | None = None
    daily_alert_budget: int | None = None
    expected: Expectation | None = None

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True)

    @staticmethod
    def from_json(text: str) -> DecisionPolicy:
        raw = json.loads(text)
        return DecisionPolicy(
            strategy=raw["strategy"],
            thresholds={name: float(value) for name, value in raw["thresholds"].items()},
            validation={
                name: ThresholdFit(**values) for name, values in raw.get("validation", {}).items()
            },
            precision_target=raw.get("precision_target"),
            daily_alert_budget=raw.get("daily_alert_budget"),
            expected=Expectation(**raw["expected"]) if raw.get("expected") else None,
        )

    def table(self) -> str:
        """Markdown: each component's threshold and its validation precision / recall / F1."""
        lines = [
            "| component | threshold | precision | recall | F1 | alerts | positives | fitted on |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for name, threshold in self.thresholds.items():
            fit = self.validation.get(name)
            shown = "never" if threshold >= NEVER else f"{threshold:.4f}"
            if fit is None:
                lines.append(f"| {name} | {shown} | | | | | | |")
                continue
            lines.append(
                f"| {name} | {shown} | {fit.precision:.3f} | {fit.recall:.3f} | {fit.f1:.3f} "
                f"| {fit.alerts} | {fit.positives} | {fit.fitted_on} |"
            )
        return "\n".join(lines)


FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]


def _curve(scores: FloatArray, positive: BoolArray) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Distinct positive thresholds (descending) with the true positives and alerts at or above
    each. A probability of 0 is no evidence: it is never a threshold."""
    order = np.argsort(-scores, kind="stable")
    ranked, hits = scores[order], positive[order].astype(np.float64)
    true_positives = np.cumsum(hits)
    alerts = np.arange(1, ranked.size + 1, dtype=np.float64)
    # Rows tied on a score alert together: keep the last index of each distinct score.
    last_of_tie = np.r_[ranked[1:] != ranked[:-1], True] & (ranked > 0)
    return ranked[last_of_tie], true_positives[last_of_tie], alerts[last_of_tie]


def _fit_at(
    threshold: float, scores: FloatArray, positive: BoolArray, fitted_on: str = "validation"
) -> ThresholdFit:
    alerted = scores >= threshold
    alerts, positives = int(alerted.sum()), int(positive.sum())
    hits = int((alerted & positive).sum())
    precision = hits / alerts if alerts else 0.0
    recall = hits / positives if positives else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return ThresholdFit(float(threshold), precision, recall, f1, alerts, positives, fitted_on)


def max_f1_threshold(scores: FloatArray, positive: BoolArray) -> ThresholdFit:
    """The threshold with the highest F1 (ties: the higher threshold, fewer alerts)."""
    thresholds, true_positives, alerts = _curve(scores, positive)
    if not positive.any() or thresholds.size == 0:
        return _fit_at(NEVER, scores, positive)
    precision = true_positives / alerts
    recall = true_positives / positive.sum()
    with np.errstate(invalid="ignore", divide="ignore"):
        f1 = np.where(precision + recall > 0, 2 * precision * recall / (precision + recall), 0.0)
    best = int(np.argmax(f1))  # the first maximum in descending thresholds: the highest
    return _fit_at(float(thresholds[best]), scores, positive)


def precision_target_threshold(
    scores: FloatArray, positive: BoolArray, target: float
) -> ThresholdFit:
    """The lowest threshold whose precision reaches `target`; NEVER if none does."""
    thresholds, true_positives, alerts = _curve(scores, positive)
    if not positive.any() or thresholds.size == 0:
        return _fit_at(NEVER, scores, positive)
    reaching = np.nonzero(true_positives / alerts >= target)[0]
    if reaching.size == 0:
        return _fit_at(NEVER, scores, positive)
    return _fit_at(float(thresholds[reaching[-1]]), scores, positive)


BREAK_EVEN = "labelled rows, break-even"


def break_even_threshold(scores: FloatArray, positive: BoolArray) -> ThresholdFit:
    """The highest threshold that alerts at least as many rows as there are positives
    (precision = recall there, up to ties); NEVER without positives or positive scores."""
    thresholds, _, alerts = _curve(scores, positive)
    count = int(positive.sum())
    if count == 0 or thresholds.size == 0:
        return _fit_at(NEVER, scores, positive, BREAK_EVEN)
    enough = np.nonzero(alerts >= count)[0]
    chosen = thresholds[enough[0]] if enough.size else thresholds[-1]
    return _fit_at(float(chosen), scores, positive, BREAK_EVEN)


def needs_fallback(policy: DecisionPolicy) -> list[str]:
    """Components the validation window left without a threshold, where the strategy allows a
    fallback (a precision target that nothing reaches means: do not alert)."""
    if policy.strategy == "precision_target":
        return []
    return [name for name, threshold in policy.thresholds.items() if threshold >= NEVER]


def with_fallback(
    policy: DecisionPolicy,
    labels: npt.NDArray[np.int64],
    probabilities: dict[str, FloatArray],
) -> DecisionPolicy:
    """Fill the components of `needs_fallback` with break-even thresholds on labelled rows
    (`labels` and `probabilities` as in `fit_policy`, scored by the model that ships)."""
    missing = needs_fallback(policy)
    if not missing:
        return policy
    fits = dict(policy.validation)
    for index, name in enumerate(probabilities, start=1):
        if name in missing:
            fits[name] = break_even_threshold(probabilities[name], labels == index)
    return replace(
        policy,
        thresholds={name: fits[name].threshold for name in policy.thresholds},
        validation=fits,
    )


def budget_threshold(reference: FloatArray, share: float) -> float:
    """The lowest cut that alerts at most `share` of the `reference` scores (NEVER when even the
    highest score, with its ties, would alert more; a share of 0 never alerts)."""
    allowed = int(np.floor(share * reference.size + 1e-9))
    thresholds, _, alerts = _curve(reference, np.zeros(reference.size, dtype=np.bool_))
    within = np.nonzero(alerts <= allowed)[0]
    return float(thresholds[within[-1]]) if allowed > 0 and within.size else NEVER


def capped_threshold(
    threshold: float, scores: FloatArray, positive: BoolArray, ratio: float
) -> float:
    """Raise `threshold` until it alerts at most `ratio` x the positive rows of `scores`."""
    allowed = ratio * int(positive.sum())
    if int((scores >= threshold).sum()) <= allowed:
        return threshold
    thresholds, _, alerts = _curve(scores, positive)
    within = np.nonzero(alerts <= allowed)[0]
    return float(thresholds[within[-1]]) if within.size else NEVER


@dataclass(frozen=True)
class Evidence:
    """What the evidence rules of `apply_evidence_rules` read, per component (by name).

    `failures`: distinct failures in the validation window; `base_rates`: share of all labelled
    rows; `reference`: the shipped model's probabilities of the recent rows no label covers yet
    (cutoff - H, cutoff), spread over `reference_days` days.
    """

    failures: dict[str, int]
    base_rates: dict[str, float]
    reference: dict[str, FloatArray]
    reference_days: int
    reference_basis: str
    validation_days: int


def apply_evidence_rules(
    policy: DecisionPolicy,
    labels: npt.NDArray[np.int64],
    probabilities: dict[str, FloatArray],
    evidence: Evidence,
    min_failures: int,
    budget_ratio: float,
    max_alerts_per_failure: float,
) -> DecisionPolicy:
    """Keep a validated cut only where the validation window has `min_failures` distinct
    failures of its component, capped at `max_alerts_per_failure` alerts per failure row there;
    give every other component the budget cut (see the module docstring). `labels` and
    `probabilities` are the validation rows' (as in `fit_policy`); the figures of each fit are
    those of the validation rows at the final cut. A precision target is left as it is: it
    already says when not to alert.
    """
    if policy.strategy == "precision_target":
        return policy
    fits: dict[str, ThresholdFit] = {}
    for index, (name, scores) in enumerate(probabilities.items(), start=1):
        positive = labels == index
        failures = evidence.failures.get(name, 0)
        fitted = policy.thresholds[name]
        reference = evidence.reference.get(name, np.zeros(0))
        if failures >= min_failures and fitted < NEVER:
            cut = capped_threshold(fitted, scores, positive, max_alerts_per_failure)
            how = (
                "validation"
                if cut == fitted
                else (f"validation, raised to {max_alerts_per_failure:g} alert per failure row")
            )
            fits[name] = _fit_at(cut, scores, positive, how)
        elif reference.size:
            base = evidence.base_rates.get(name, 0.0)
            cut = budget_threshold(reference, budget_ratio * base)
            fits[name] = _fit_at(
                cut,
                scores,
                positive,
                f"budget: {budget_ratio:g} x base rate {base:.4f} of {evidence.reference_basis} "
                f"({failures} validation failures < {min_failures})",
            )
        else:
            fits[name] = policy.validation.get(name, _fit_at(fitted, scores, positive))
    return replace(
        policy,
        thresholds={name: fits[name].threshold for name in policy.thresholds},
        validation=fits,
    )


def alert_components(
    probabilities: dict[str, FloatArray], thresholds: dict[str, float]
) -> npt.NDArray[np.int64]:
    """The component each row alerts for (0: none) under the threshold rule of `alerts`, in
    numpy: the component furthest over its cut, ties to the lower number."""
    names = list(thresholds)
    if not names:
        return np.zeros(0, dtype=np.int64)
    ratios = np.stack(
        [
            probabilities[name] / thresholds[name]
            if thresholds[name] > 0
            else np.zeros_like(probabilities[name])
            for name in names
        ],
        axis=1,
    )
    best = np.argmax(ratios, axis=1)  # the first maximum: the lower component
    over = ratios[np.arange(ratios.shape[0]), best] >= 1.0
    return np.where(over, best + 1, 0).astype(np.int64)


def expectation(
    policy: DecisionPolicy,
    labels: npt.NDArray[np.int64],
    probabilities: dict[str, FloatArray],
    evidence: Evidence,
    validation_failures: int,
) -> Expectation:
    """Expected alerts per day on the recent rows and pooled precision / recall on validation
    (an alert is right when it names the first component to fail)."""
    alerted = alert_components(probabilities, policy.thresholds)
    reference = next(iter(evidence.reference.values()), np.zeros(0))
    if evidence.reference_days and reference.size:
        recent = alert_components(evidence.reference, policy.thresholds)
        days, basis = evidence.reference_days, evidence.reference_basis
    else:
        recent, days, basis = alerted, evidence.validation_days, "validation rows"
    share = float((recent > 0).mean()) if recent.size else 0.0
    per_day = float((recent > 0).sum()) / days if days else 0.0
    hits = int(((alerted > 0) & (alerted == labels)).sum())
    alerts, positives = int((alerted > 0).sum()), int((labels > 0).sum())
    return Expectation(
        alerts_per_day=per_day,
        alert_share=share,
        alerts_basis=basis,
        precision=hits / alerts if alerts else 0.0,
        recall=hits / positives if positives else 0.0,
        validation_failures=validation_failures,
    )


def fit_policy(
    labels: npt.NDArray[np.int64],
    probabilities: dict[str, FloatArray],
    strategy: Strategy,
    precision_target: float,
    daily_alert_budget: int,
) -> DecisionPolicy:
    """Fit per-component thresholds on validation rows.

    `labels` holds each row's class (0 = none, c = component c first to fail within the
    horizon); `probabilities` maps "comp1".."compN" to the model's probability of each row.
    `daily_top_k` keeps the max-F1 thresholds to rank machines by and adds the budget.
    """
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown decision strategy {strategy!r}; choose one of {STRATEGIES}")
    fits: dict[str, ThresholdFit] = {}
    for index, (name, scores) in enumerate(probabilities.items(), start=1):
        positive = labels == index
        if strategy == "precision_target":
            fits[name] = precision_target_threshold(scores, positive, precision_target)
        else:
            fits[name] = max_f1_threshold(scores, positive)
    return DecisionPolicy(
        strategy=strategy,
        thresholds={name: fit.threshold for name, fit in fits.items()},
        validation=fits,
        precision_target=precision_target if strategy == "precision_target" else None,
        daily_alert_budget=daily_alert_budget if strategy == "daily_top_k" else None,
    )


def _ratio(probability: str, threshold: float) -> Column:
    # Fitted thresholds are positive (see _curve); a hand-written 0 means "never".
    return F.col(probability) / F.lit(threshold) if threshold > 0 else F.lit(0.0)


def alerts(scores: DataFrame, policy: DecisionPolicy, probability_columns: list[str]) -> DataFrame:
    """Add `alert` (bool) and `alert_component` (0 = no alert) to scored rows.

    `probability_columns` are the per-component probability columns, in the order of the
    policy's thresholds (comp1 first).
    """
    thresholds = list(policy.thresholds.values())
    if len(thresholds) != len(probability_columns):
        raise ValueError(
            f"the policy has {len(thresholds)} thresholds for "
            f"{len(probability_columns)} probability columns"
        )
    pairs = zip(probability_columns, thresholds, strict=True)
    ratios = [_ratio(column, threshold) for column, threshold in pairs]
    best_ratio = F.greatest(*ratios) if len(ratios) > 1 else ratios[0]
    # The first component whose ratio equals the best: ties go to the lower number. A binary
    # model (one component) has nothing to choose between.
    best_component = (
        reduce(
            lambda chosen, item: chosen.when(item[1] == best_ratio, F.lit(item[0])),
            list(enumerate(ratios, start=1))[1:],
            F.when(ratios[0] == best_ratio, F.lit(1)),
        )
        if len(ratios) > 1
        else F.lit(1)
    )
    ranked = scores.withColumn("_best_ratio", best_ratio).withColumn(
        "_best_component", best_component
    )
    if policy.strategy == "daily_top_k":
        budget = policy.daily_alert_budget or 0
        # Scored rows carry their partition's `date`; validation rows do not, and there the
        # session time zone, UTC (spark.py), makes to_date the UTC day.
        day = F.col("date") if "date" in scores.columns else F.to_date("datetime")
        ranked = ranked.withColumn("_day", day)
        day_score = F.max("_best_ratio").over(Window.partitionBy("_day", "machine_id"))
        ranked = ranked.withColumn("_day_score", day_score)
        machine_rank = F.dense_rank().over(
            Window.partitionBy("_day").orderBy(F.col("_day_score").desc(), F.col("machine_id"))
        )
        alert = (machine_rank <= F.lit(budget)) & (F.col("_day_score") > 0)
        ranked = ranked.withColumn("alert", alert).drop("_day_score", "_day")
    else:
        ranked = ranked.withColumn("alert", F.col("_best_ratio") >= F.lit(1.0))
    return ranked.withColumn(
        "alert_component",
        F.when(F.col("alert"), F.col("_best_component")).otherwise(F.lit(0)).cast("int"),
    ).drop("_best_ratio", "_best_component")
