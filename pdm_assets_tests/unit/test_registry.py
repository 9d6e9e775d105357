"""Which registered version scores a month, on a registry of hand-tagged versions."""

from __future__ import annotations

from datetime import date
from pathlib import Path

from mlflow.tracking import MlflowClient

from pdm_assets.adapters.mlflow_registry import CUTOFF_TAG, GATE_TAG, ModelRegistry, cutoff_of


def test_a_month_without_a_passing_model_is_scored_by_the_last_good_one_before_it(
    tmp_path: Path,
) -> None:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    client.create_registered_model("pumps")
    registry = ModelRegistry(tracking_uri=uri, model_name="pumps")
    for cutoff, gate in (
        ("2015-02-01", "passed"),  # v1
        ("2015-03-01", "passed"),  # v2
        ("2015-03-01", "passed"),  # v3: retrained, newer
        ("2015-04-01", "failed"),  # v4
        ("2015-06-01", "passed"),  # v5
    ):
        version = client.create_model_version("pumps", source=str(tmp_path), run_id=None)
        client.set_model_version_tag("pumps", version.version, CUTOFF_TAG, cutoff)
        client.set_model_version_tag("pumps", version.version, GATE_TAG, gate)

    def chosen(month: date) -> str | None:
        version = registry.version_for_month(month)
        return None if version is None else str(version.version)

    assert chosen(date(2015, 1, 1)) is None  # nothing trained before it
    assert chosen(date(2015, 2, 1)) == "1"
    assert chosen(date(2015, 3, 1)) == "3"  # its own, the newest of the month
    assert chosen(date(2015, 4, 1)) == "3"  # its own failed the gate
    assert chosen(date(2015, 5, 1)) == "3"  # never trained
    assert chosen(date(2015, 6, 1)) == "5"
    month_model = registry.version_for_month(date(2015, 5, 1))
    assert month_model is not None and cutoff_of(month_model) == date(2015, 3, 1)
    # The month's own model, as the gate and the champion comparison ask for it.
    assert registry.version_for_cutoff(date(2015, 4, 1)) is None
