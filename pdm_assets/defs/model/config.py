"""The failure model's settings: every default of the classifier, the decision policy and the
quality gate lives here, and shows in the launchpad under the asset's config."""

from dataclasses import fields

import dagster as dg
from pydantic import Field

from pdm_assets.core import decision, training


class ModelConfig(dg.Config):
    """Hyperparameters, validation, decision policy and quality gate of the failure model.

    The defaults were chosen on validation over simulated fleets (benchmarks/model_quality.py,
    benchmarks/model_selection.py); the README's "Model and gate" section has the figures.
    """

    classifier: training.Classifier = Field(
        default="random_forest",
        description="Spark ML learner: random_forest, gbt_one_vs_rest (one boosted binary "
        "model per class) or decision_tree.",
    )
    num_trees: int = Field(default=40, description="Trees in the forest.")
    max_depth: int = Field(default=15, description="Maximum depth of each tree of the forest.")
    feature_subset_strategy: str = Field(
        default="sqrt", description="Features considered per split (Spark's featureSubsetStrategy)."
    )
    subsampling_rate: float = Field(default=0.632, description="Share of rows sampled per tree.")
    min_instances_per_node: int = Field(
        default=20,
        description="Minimum rows per leaf: leaves of a few rows give probabilities of 0 or 1, "
        "which no threshold can rank.",
    )
    class_weighting: training.ClassWeighting = Field(
        default="sqrt_balanced",
        description="Row weights per class: none, sqrt_balanced (the square root of balanced) or "
        "balanced (n / (k n_c)). The decision policy's thresholds, not the weights, set how "
        "often it alerts.",
    )
    gbt_iterations: int = Field(default=30, description="gbt_one_vs_rest: boosting rounds.")
    gbt_max_depth: int = Field(default=5, description="gbt_one_vs_rest: depth of each tree.")
    gbt_step_size: float = Field(default=0.2, description="gbt_one_vs_rest: learning rate.")
    validation_days: int = Field(
        default=21,
        description="Days of observations before cutoff - horizon held out for validation.",
    )
    refit_on_all: bool = Field(
        default=True,
        description="After validating, refit on every labelled row before the cutoff.",
    )
    max_bins: int = Field(
        default=32, description="Bins per continuous feature when the trees look for splits."
    )
    seed: int = Field(default=42, description="Random seed of the classifier.")
    decision_strategy: decision.Strategy = Field(
        default="max_f1",
        description="How the alert thresholds are fitted on validation: max_f1 (each "
        "component's F1), precision_target, or daily_top_k (an alert budget per day).",
    )
    precision_target: float = Field(
        default=0.5, description="precision_target: the validation precision each threshold needs."
    )
    daily_alert_budget: int = Field(
        default=10, description="daily_top_k: machines that may alert per day."
    )
    min_validation_failures: int = Field(
        default=10,
        description="A component's cut is fitted on validation only with this many distinct "
        "failures of it there (else it gets the budget cut); the quality gate judges a "
        "component only with this many in the validated fit's training rows and in validation.",
    )
    alert_budget_ratio: float = Field(
        default=0.5,
        description="The budget cut alerts this multiple of a component's base rate (its share "
        "of labelled rows) of the shipped model's scores of the recent, not yet labelled rows.",
    )
    cross_fit_folds: int = Field(
        default=5,
        description="Where the validation window holds fewer than min_validation_failures "
        "failures per component on average (a small fleet), the cuts are fitted and the gate "
        "judges on every labelled row scored by this many fits that never saw its machine; 1 "
        "turns it off.",
    )
    max_alerts_per_failure: float = Field(
        default=1.0,
        description="A validated cut alerts at most this many validation rows per failure row "
        "of its component (it is raised until it does).",
    )
    min_pr_auc_lift: float = Field(
        default=2.0,
        description="Quality gate: macro PR-AUC (over components with validation failures) must "
        "reach this multiple of their mean base rate, the PR-AUC of a ranking by chance.",
    )
    champion_tolerance: float = Field(
        default=0.02,
        description="Quality gate: how much lower than the champion's macro PR-AUC, on "
        "validation rows neither model trained on, the new version may score.",
    )

    def params(self) -> training.ClassifierParams:
        """The classifier's hyperparameters: every ClassifierParams field this config sets."""
        names = {field.name for field in fields(training.ClassifierParams)}
        return training.ClassifierParams(**self.model_dump(include=names))

    def decision_params(self) -> training.DecisionParams:
        return training.DecisionParams(
            strategy=self.decision_strategy,
            precision_target=self.precision_target,
            daily_alert_budget=self.daily_alert_budget,
            min_validation_failures=self.min_validation_failures,
            budget_ratio=self.alert_budget_ratio,
            max_alerts_per_failure=self.max_alerts_per_failure,
            cross_fit_folds=self.cross_fit_folds,
        )
