"""The fleet description: validated on load with errors naming the key, and the names and
day counts every layer reads from it."""

from __future__ import annotations

import pytest

from pdm_assets.core.fleet import (
    DEFAULT_FLEET,
    DEFAULT_FLEET_FILE,
    FLEETS_DIR,
    FleetDescriptionError,
    load_fleet,
    names_text,
    parse_fleet,
)

MINIMAL = """
[telemetry]
sensors = [{ name = "flow" }]
[components]
names = ["seal"]
"""


def _with(extra: str, base: str = MINIMAL) -> str:
    return base + "\n" + extra


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (_with("colour = 'red'"), "colour: unknown key"),
        (_with("[errors]\nwindow = 24"), "errors.window: unknown key"),
        ("[telemetry]\nsensors = []\n[components]\nnames = ['seal']", "telemetry.sensors:"),
        ("[components]\nnames = ['seal']", "telemetry: required key is missing"),
        (
            MINIMAL.replace(
                'sensors = [{ name = "flow" }]',
                'cadence_minutes = 120\nwindows_hours = [1, 4]\nsensors = [{ name = "flow" }]',
            ),
            "telemetry: windows_hours [1] shorter than the telemetry cadence (120 minutes)",
        ),
        (
            MINIMAL.replace('{ name = "flow" }', '{ name = "flow", min = 5, max = 1 }'),
            "telemetry.sensors.0: flow: min 5 is greater than max 1",
        ),
        (
            MINIMAL.replace('{ name = "flow" }', '{ name = "flow" }, { name = "FLOW" }'),
            "duplicate sensor 'FLOW'",
        ),
        (MINIMAL.replace('["seal"]', '["seal", "seal"]'), "components.names: duplicate component"),
        (MINIMAL.replace('["seal"]', '["none"]'), "components.names: 'none' is reserved"),
        (MINIMAL.replace('["seal"]', '["seal ring"]'), "'seal ring' is not a usable name"),
        (_with("[errors]\ncodes = ['e1', 'e1']"), "errors.codes: duplicate error code"),
        ("observation_hours = 5\n" + MINIMAL, "observation_hours: observation_hours 5 must divide"),
        (_with("[columns]\ntimezone = 'Mars/Olympus'"), "columns.timezone: unknown time zone"),
        ("horizon_hours = 0\n" + MINIMAL, "horizon_hours: Input should be greater than 0"),
        (
            _with("[machines]\ncategorical = ['flow']"),
            "(top level): duplicate name among sensors and machine attributes 'flow'",
        ),
        ("[telemetry", "not TOML"),
    ],
)
def test_a_bad_description_is_refused_naming_the_key(text: str, message: str) -> None:
    with pytest.raises(FleetDescriptionError) as error:
        parse_fleet(text, "pumps.toml")
    assert str(error.value).startswith("fleet description pumps.toml: ")
    assert message in str(error.value)


def test_a_minimal_description_has_no_error_log_no_maintenance_log_and_no_attributes() -> None:
    fleet = parse_fleet(MINIMAL)
    assert fleet.event_tables == ("telemetry", "failures")
    assert fleet.source_columns("machines") == ("machineID",)
    assert fleet.numeric_features == [
        "flow_mean_12h",
        "flow_sd_12h",
        "flow_mean_24h",
        "flow_sd_24h",
        "flow_mean_36h",
        "flow_sd_36h",
        "seal_days_since_replacement",
    ]
    assert fleet.categorical_features == []
    assert (fleet.classes, fleet.class_names) == (2, ["none", "seal"])
    assert fleet.probability_columns == ["prob_none", "prob_seal"]
    # Without a maintenance log, days since replacement stay null until a first failure.
    assert fleet.max_null_rate("seal_days_since_replacement") == 1.0
    assert fleet.max_null_rate("flow_mean_12h") == 0.0


def test_day_counts_are_the_hours_rounded_up_to_whole_days() -> None:
    fleet = parse_fleet(
        "horizon_hours = 170\n"
        + MINIMAL.replace(
            'sensors = [{ name = "flow" }]',
            "windows_hours = [6, 49]\nsensors = [{ name = 'flow' }]",
        )
        + "\n[errors]\nwindow_hours = 25\ncodes = ['e1']"
    )
    assert (fleet.horizon_days, fleet.telemetry_lookback_days, fleet.errors_lookback_days) == (
        8,
        3,
        2,
    )
    assert (DEFAULT_FLEET.horizon_days, DEFAULT_FLEET.telemetry_lookback_days) == (7, 2)
    assert DEFAULT_FLEET.errors_lookback_days == 1


def test_a_window_that_holds_one_reading_has_a_mean_and_no_deviation() -> None:
    fleet = parse_fleet(
        MINIMAL.replace(
            'sensors = [{ name = "flow" }]',
            'cadence_minutes = 360\nwindows_hours = [6, 12]\nsensors = [{ name = "flow" }]',
        )
    )
    assert fleet.telemetry_features == ["flow_mean_6h", "flow_mean_12h", "flow_sd_12h"]


def test_the_default_is_the_azure_shape_and_its_fingerprint_follows_the_shape_only() -> None:
    assert load_fleet(DEFAULT_FLEET_FILE) == DEFAULT_FLEET
    assert DEFAULT_FLEET.sensors == ["volt", "rotate", "pressure", "vibration"]
    assert DEFAULT_FLEET.error_features == [f"error{n}_count_24h" for n in range(1, 6)]
    assert DEFAULT_FLEET.fails_columns == [f"fails_comp{n}" for n in range(1, 5)]
    assert DEFAULT_FLEET.numeric_features[-1] == "age"
    # Pinned: models registered before the extra feature families (off here) keep matching.
    assert DEFAULT_FLEET.fingerprint == "f93f0ab43f5a9a5e"
    renamed = parse_fleet(DEFAULT_FLEET_FILE.read_text().replace('"azure_pdm"', '"mine"'))
    assert renamed.fingerprint == DEFAULT_FLEET.fingerprint
    longer = parse_fleet(DEFAULT_FLEET_FILE.read_text().replace("= 168", "= 169"))
    assert longer.fingerprint != DEFAULT_FLEET.fingerprint


def test_every_shipped_description_loads() -> None:
    shipped = sorted(path.name for path in FLEETS_DIR.glob("*.toml"))
    assert shipped == ["azure_pdm.toml", "engines.toml"]
    engines = load_fleet(FLEETS_DIR / "engines.toml")
    assert (engines.classes, engines.has_errors, engines.has_maintenance) == (2, False, False)
    assert len(engines.sensors) == 17


def test_names_text_shortens_a_numbered_run_only() -> None:
    assert names_text(["comp1", "comp2", "comp3", "comp4"]) == "comp1..comp4"
    assert names_text(["seal", "bearing"]) == "seal, bearing"
    assert names_text(["e1", "e3", "e4"]) == "e1, e3, e4"


def test_scoring_refuses_a_version_trained_on_another_description(tmp_path) -> None:
    from mlflow.tracking import MlflowClient

    from pdm_assets.adapters.mlflow_registry import FLEET_TAG, FleetMismatchError, ModelRegistry

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    registry = ModelRegistry(tracking_uri=uri, model_name="pumps")
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    client.create_registered_model("pumps")
    before = client.create_model_version("pumps", source=str(tmp_path), run_id=None)
    tagged = client.create_model_version("pumps", source=str(tmp_path), run_id=None)
    pumps = parse_fleet(MINIMAL)
    client.set_model_version_tag("pumps", tagged.version, FLEET_TAG, pumps.fingerprint)
    registry.require_fleet(tagged, pumps)
    # A version from before fleet descriptions was trained on the default.
    registry.require_fleet(before, DEFAULT_FLEET)
    with pytest.raises(FleetMismatchError, match=r"pumps v1 was trained on another fleet"):
        registry.require_fleet(before, pumps)
    with pytest.raises(FleetMismatchError, match=rf"\(fingerprint {pumps.fingerprint}\)"):
        registry.require_fleet(tagged, DEFAULT_FLEET)
