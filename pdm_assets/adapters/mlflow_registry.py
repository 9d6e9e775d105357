"""MLflow: the tracking resource, and the model registry (log, register, alias, find, load)."""

import json
import logging
import os
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date
from typing import Any

import dagster as dg
import mlflow
import mlflow.spark
import pyspark
from dagster_mlflow.resources import CONFIG_SCHEMA, MlFlow
from mlflow.entities.model_registry import ModelVersion
from mlflow.models import infer_signature
from mlflow.tracking import MlflowClient
from pydantic import Field
from pyspark.ml import PipelineModel
from pyspark.sql import DataFrame
from pyspark.sql.utils import is_remote

from pdm_assets.core import reasons
from pdm_assets.core.decision import POLICY_FILE, DecisionPolicy
from pdm_assets.core.explain import TYPICAL_FILE, Explainer
from pdm_assets.core.fleet import DEFAULT_FLEET, Fleet
from pdm_assets.core.training import GateResult, TrainingOutcome, macro

logger = logging.getLogger(__name__)
CHAMPION_ALIAS = "champion"
CUTOFF_TAG = "cutoff"
DAGSTER_RUN_TAG = "dagster_run_id"
PARTITION_TAG = "dagster_partition"
GATE_TAG = "quality_gate"
STRATEGY_TAG = "decision_strategy"
ASSET_TAG = "dagster_asset"
FLEET_TAG = "fleet_fingerprint"
FLEET_NAME_TAG = "fleet"
MACRO_PR_AUC_METRIC = "macro_pr_auc"


def cutoff_of(version: ModelVersion) -> date:
    """The training cutoff a version is tagged with."""
    return date.fromisoformat(version.tags[CUTOFF_TAG])


class FleetMismatchError(RuntimeError):
    """A model version trained on another fleet description than the one scoring with it."""


class MissingPolicyError(RuntimeError):
    """A model version was registered without a decision policy."""


@dataclass(frozen=True)
class RecordedValidation:
    """What a version's training run recorded about its validation."""

    cutoff: date
    validation_days: int | None
    macro_pr_auc: float | None


def training_metrics(outcome: TrainingOutcome, gate: GateResult) -> dict[str, float]:
    """The numbers a training run logs: per-component validation metrics, thresholds, gate."""
    metrics = {
        f"{component}_{name}": value
        for component, values in outcome.metrics.items()
        for name, value in values.items()
    }
    metrics |= {
        f"{component}_threshold": threshold
        for component, threshold in outcome.policy.thresholds.items()
    }
    return metrics | {
        MACRO_PR_AUC_METRIC: gate.macro_pr_auc,
        "macro_f1": macro(outcome.metrics, "f1"),
        "gate_floor": gate.floor,
        "train_rows": outcome.train_rows,
        "validation_rows": outcome.validation_rows,
        "refit_rows": outcome.refit_rows,
    }


def ensure_experiment(tracking_uri: str, name: str, artifact_location: str | None) -> str:
    """Create the experiment with an explicit artifact location if it does not exist yet."""
    client = MlflowClient(tracking_uri=tracking_uri)
    existing = client.get_experiment_by_name(name)
    if existing is not None:
        return str(existing.experiment_id)
    return str(client.create_experiment(name, artifact_location=artifact_location))


@dg.resource(
    config_schema={
        **CONFIG_SCHEMA,
        "artifact_location": dg.Field(
            str, is_required=False, description="Where the experiment stores its artefacts."
        ),
    },
    description="dagster-mlflow's tracking resource, with the experiment's artefacts pinned.",
)
def mlflow_tracking_resource(context: dg.InitResourceContext) -> Iterator[MlFlow]:
    # dagster-mlflow creates a missing experiment through mlflow.set_experiment, which puts
    # artefacts of a sqlite-tracked experiment into ./mlruns of whatever directory the run
    # happens to start in. Creating the experiment first keeps them under the project home.
    config = context.resource_config
    ensure_experiment(
        config["mlflow_tracking_uri"], config["experiment_name"], config.get("artifact_location")
    )
    tracking = MlFlow(context)
    yield tracking
    tracking.cleanup_on_error()


class ModelRegistry(dg.ConfigurableResource):
    """The MLflow model registry holding the pipeline models, one version per training cutoff."""

    tracking_uri: str = Field(description="MLflow tracking URI.")
    registry_uri: str | None = Field(
        default=None, description="MLflow registry URI (databricks-uc, ...); default: tracking."
    )
    model_name: str = Field(default="pdm_component_failure", description="Registered model name.")
    ui_url: str = Field(
        default="http://127.0.0.1:5000", description="Base URL of the MLflow UI, for links."
    )
    ready_timeout_seconds: float = Field(
        default=300.0, description="How long to wait for a new version to become READY."
    )

    def client(self) -> MlflowClient:
        registry_uri = self.registry_uri or self.tracking_uri
        mlflow.set_tracking_uri(self.tracking_uri)
        mlflow.set_registry_uri(registry_uri)
        return MlflowClient(tracking_uri=self.tracking_uri, registry_uri=registry_uri)

    def record_training(
        self,
        outcome: TrainingOutcome,
        gate: GateResult,
        cutoff: date,
        dagster_run_id: str,
        partition: str,
        asset: str,
        params: dict[str, Any],
        fleet: Fleet = DEFAULT_FLEET,
        typical: dict[str, str] | None = None,
    ) -> ModelVersion:
        """Log a training step in the active MLflow run and register what it shipped.

        In order: the run's tags, parameters and metrics; the decision policy as the run's
        `decision_policy.json` and the training rows' typical feature values (what the reasons
        of an alert compare with) as `typical_values.json`; the model, registered as a new
        version tagged with its cutoff, strategy and thresholds; then the gate's verdict, and
        last the champion alias (see `publish`).
        """
        mlflow.set_tags(
            {CUTOFF_TAG: cutoff.isoformat(), PARTITION_TAG: partition, ASSET_TAG: asset}
        )
        mlflow.log_params(params)
        mlflow.log_metrics(training_metrics(outcome, gate))
        mlflow.log_text(outcome.policy.to_json(), POLICY_FILE)
        mlflow.log_text(json.dumps(typical or {}, indent=2, sort_keys=True), TYPICAL_FILE)
        version = self.log_and_register(
            outcome.model,
            cutoff,
            dagster_run_id,
            partition,
            example_rows=outcome.validation,
            fleet=fleet,
        )
        client = self.client()
        policy_tags = {STRATEGY_TAG: outcome.policy.strategy} | {
            f"threshold_{component}": f"{threshold:.6g}"
            for component, threshold in outcome.policy.thresholds.items()
        }
        for key, value in policy_tags.items():
            client.set_model_version_tag(self.model_name, version.version, key, value)
        self.publish(version.version, gate.passed, cutoff)
        return version

    def log_and_register(
        self,
        model: PipelineModel,
        cutoff: date,
        dagster_run_id: str,
        partition: str,
        example_rows: DataFrame,
        fleet: Fleet = DEFAULT_FLEET,
    ) -> ModelVersion:
        """Log the fitted pipeline in the active MLflow run and register it as a new version,
        tagged with its cutoff and the fingerprint of the fleet description it was trained on.

        The signature (feature columns in, prediction out) is inferred from a few of
        `example_rows`: the Unity Catalog registry refuses models without one.
        """
        client = self.client()
        inputs = example_rows.select(*fleet.feature_columns).limit(5)
        signature = infer_signature(
            inputs.toPandas(), model.transform(inputs).select("prediction").toPandas()
        )
        info = mlflow.spark.log_model(
            model,
            artifact_path="model",
            signature=signature,
            registered_model_name=self.model_name,
            # Without explicit requirements MLflow spends ~20 s inferring them.
            pip_requirements=[f"pyspark=={pyspark.__version__}"],
        )
        # The version log_model registered (searching by name and run would need two filter
        # conditions, which the Unity Catalog registry refuses).
        if info.registered_model_version is None:
            raise RuntimeError(f"MLflow registered no version of {self.model_name}")
        version = client.get_model_version(self.model_name, str(info.registered_model_version))
        tags = {
            CUTOFF_TAG: cutoff.isoformat(),
            DAGSTER_RUN_TAG: dagster_run_id,
            PARTITION_TAG: partition,
            FLEET_TAG: fleet.fingerprint,
            FLEET_NAME_TAG: fleet.name,
        }
        for key, value in tags.items():
            client.set_model_version_tag(self.model_name, version.version, key, value)
        return self.wait_until_ready(version.version)

    def wait_until_ready(self, version: str) -> ModelVersion:
        client = self.client()
        deadline = time.monotonic() + self.ready_timeout_seconds
        while True:
            current = client.get_model_version(self.model_name, version)
            if current.status == "READY":
                return current
            if current.status == "FAILED_REGISTRATION":
                raise RuntimeError(
                    f"{self.model_name} v{version} failed registration: {current.status_message}"
                )
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.model_name} v{version} not READY after timeout")
            time.sleep(1.0)

    def publish(self, version: str, passed: bool, cutoff: date) -> None:
        """Record the gate's verdict on `version`, then, if it passed, make it the champion,
        unless the champion was trained at a later cutoff (a backfilled older month is its
        month's model, not the newest).

        The tag goes first and the alias last: a run killed in between leaves a version tagged
        as passed (scoring may use it) and the previous champion, never a champion whose tag
        says nothing.
        """
        self.tag_gate(version, passed)
        champion = self.champion()
        newer_champion = (
            champion is not None
            and champion.version != version
            and champion.tags.get(CUTOFF_TAG, "") > cutoff.isoformat()
        )
        if passed and not newer_champion:
            self.promote(version)

    def end_abandoned_runs(
        self, experiment_id: str, current_run_id: str, is_finished: Callable[[str], bool]
    ) -> list[str]:
        """Mark KILLED the MLflow runs still RUNNING whose Dagster run has ended.

        A step that fails ends its MLflow run (dagster-mlflow's hook), but a run worker killed
        with -9 cannot; the next training run cleans up after it. `is_finished(dagster_run_id)`
        says whether that Dagster run is over (or unknown to the instance).
        """
        client = self.client()
        running = client.search_runs(
            [experiment_id], filter_string="attributes.status = 'RUNNING'", max_results=200
        )
        ended = []
        for run in running:
            dagster_run = run.data.tags.get(DAGSTER_RUN_TAG)
            if run.info.run_id == current_run_id or dagster_run is None:
                continue
            if is_finished(dagster_run):
                client.set_terminated(run.info.run_id, status="KILLED")
                ended.append(run.info.run_id)
        return ended

    def promote(self, version: str) -> None:
        """Point the champion alias at `version`; only READY versions can be promoted."""
        client = self.client()
        if client.get_model_version(self.model_name, version).status != "READY":
            raise RuntimeError(f"{self.model_name} v{version} is not READY; not promoting it")
        client.set_registered_model_alias(self.model_name, CHAMPION_ALIAS, version)

    def champion(self) -> ModelVersion | None:
        client = self.client()
        try:
            return client.get_model_version_by_alias(self.model_name, CHAMPION_ALIAS)
        except mlflow.exceptions.MlflowException:
            return None

    def tag_gate(self, version: str, passed: bool) -> None:
        self.client().set_model_version_tag(
            self.model_name, version, GATE_TAG, "passed" if passed else "failed"
        )

    def _passed_versions(self) -> list[ModelVersion]:
        """Every READY version that passed its quality gate, with its tags.

        Search results of the Unity Catalog registry carry no tags (reading them raises), so
        each READY version is read again with get_model_version, on either registry: one call
        per version, a dozen a year for a monthly model.
        """
        client = self.client()
        try:
            found = client.search_model_versions(f"name='{self.model_name}'")
        except mlflow.exceptions.MlflowException:
            return []
        versions = [
            client.get_model_version(self.model_name, str(version.version))
            for version in found
            if version.status == "READY"
        ]
        return [
            version
            for version in versions
            if version.tags.get(GATE_TAG) == "passed" and version.tags.get(CUTOFF_TAG)
        ]

    def version_for_cutoff(self, cutoff: date) -> ModelVersion | None:
        """The newest READY version trained for `cutoff` that passed its quality gate, or None."""
        matching = [
            version
            for version in self._passed_versions()
            if version.tags.get(CUTOFF_TAG) == cutoff.isoformat()
        ]
        return max(matching, key=lambda v: int(v.version)) if matching else None

    def version_for_month(self, month: date) -> ModelVersion | None:
        """The model that scores `month`: its own (the newest that passed its gate for that
        cutoff), else the passing version of the latest earlier cutoff, as an operator keeps
        the last good model when a month's training fails its gate. A model never scores days
        before its cutoff, so no score sees a label its model trained on. None without any."""
        return self.versions_for_months([month])[month]

    def versions_for_months(self, months: list[date]) -> dict[date, ModelVersion | None]:
        """`version_for_month` of each month, from one read of the registry."""
        passed = sorted(self._passed_versions(), key=lambda v: (v.tags[CUTOFF_TAG], int(v.version)))
        chosen: dict[date, ModelVersion | None] = {}
        for month in months:
            candidates = [v for v in passed if v.tags[CUTOFF_TAG] <= month.isoformat()]
            chosen[month] = candidates[-1] if candidates else None
        return chosen

    def fleet_fingerprint(self, version: ModelVersion) -> str:
        """The fingerprint of the fleet description `version` was trained on; a version from
        before fleet descriptions was trained on the default (the Azure data set's shape)."""
        tags = self.client().get_model_version(self.model_name, version.version).tags
        return tags.get(FLEET_TAG, DEFAULT_FLEET.fingerprint)

    def require_fleet(self, version: ModelVersion, fleet: Fleet) -> None:
        """Refuse to score with a version trained on another fleet description."""
        trained_on = self.fleet_fingerprint(version)
        if trained_on != fleet.fingerprint:
            raise FleetMismatchError(
                f"{self.model_name} v{version.version} was trained on another fleet description "
                f"(fingerprint {trained_on}) than the one in use ({fleet.name}, "
                f"{fleet.fingerprint}): its inputs and classes differ. Train failure_model for "
                f"its month again with this description (or set PDM_FLEET back)"
            )

    def recorded_validation(self, version: ModelVersion) -> RecordedValidation:
        """The cutoff, validation days and validation macro PR-AUC the version's run logged."""
        run = self.client().get_run(version.run_id or "")
        days = run.data.params.get("validation_days")
        return RecordedValidation(
            cutoff=date.fromisoformat(version.tags[CUTOFF_TAG]),
            validation_days=int(days) if days is not None else None,
            macro_pr_auc=run.data.metrics.get(MACRO_PR_AUC_METRIC),
        )

    def load_policy(self, version: ModelVersion) -> DecisionPolicy:
        """The decision policy stored in the run that trained `version`."""
        self.client()
        try:
            text = mlflow.artifacts.load_text(f"runs:/{version.run_id}/{POLICY_FILE}")
        except (mlflow.exceptions.MlflowException, OSError) as error:
            raise MissingPolicyError(
                f"{self.model_name} v{version.version} has no {POLICY_FILE} in MLflow run "
                f"{version.run_id}: it was trained before decision policies; materialise its "
                "failure_model partition again"
            ) from error
        return DecisionPolicy.from_json(text)

    def policy_of(self, version: int) -> DecisionPolicy:
        """The decision policy of version number `version` (as machine_scores records it)."""
        return self.load_policy(self.client().get_model_version(self.model_name, str(version)))

    def load_explainer(self, version: ModelVersion) -> Explainer | None:
        """The exact reasons of `version`'s forest: its trees read from the registered model's
        files (no JVM needed) and the typical values stored in its run. None, with the reason
        logged, for a learner the reasons cannot decompose (the boosted one-vs-rest option)."""
        self.client()
        uri = f"models:/{self.model_name}/{version.version}"
        try:
            typical = json.loads(
                mlflow.artifacts.load_text(f"runs:/{version.run_id}/{TYPICAL_FILE}")
            )
        except (mlflow.exceptions.MlflowException, OSError):
            typical = {}  # trained before typical values were stored: reasons without them
        with tempfile.TemporaryDirectory(prefix="pdm-forest-") as folder:
            local = mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=folder)
            try:
                forest = reasons.read_forest(
                    reasons.find_forest_stage(os.path.join(local, "sparkml"))
                )
            except reasons.UnsupportedModelError as error:
                logger.warning(f"{self.model_name} v{version.version}: {error}")
                return None
        return Explainer(forest, typical)

    def load(self, version: str) -> PipelineModel:
        self.client()
        uri = f"models:/{self.model_name}/{version}"
        if is_remote():
            # mlflow.spark.load_model goes through the JVM gateway, which a Spark Connect client
            # does not have. The pipeline is read from a local copy of the model's files, so the
            # Connect server must see this machine's temp folder (it runs here, or shares it).
            with tempfile.TemporaryDirectory(prefix="pdm-model-") as folder:
                local = mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=folder)
                return PipelineModel.load(os.path.join(local, "sparkml"))
        model = mlflow.spark.load_model(uri)
        assert isinstance(model, PipelineModel)
        return model

    def run_url(self, experiment_id: str, run_id: str) -> str:
        return f"{self.ui_url}/#/experiments/{experiment_id}/runs/{run_id}"

    def version_url(self, version: str) -> str:
        return f"{self.ui_url}/#/models/{self.model_name}/versions/{version}"
