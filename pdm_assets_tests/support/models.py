"""The model config of the test graphs: small and quick, through the same paths as the default.

Two folds where validation is thin (a small fleet): the cross-fitted path, at a test's cost. No
PR-AUC floor: a few simulated machines cannot be judged on it.
"""

SMALL_MODEL = {
    "num_trees": 5,
    "max_depth": 6,
    "validation_days": 7,
    "min_pr_auc_lift": 0.0,
    "cross_fit_folds": 2,
}


def model_run_config(**overrides: object) -> dict[str, object]:
    """Run config that trains failure_model with SMALL_MODEL and `overrides`."""
    return {"ops": {"failure_model": {"config": {**SMALL_MODEL, **overrides}}}}
