"""The Dagster wiring: assets (a folder per asset group), checks, jobs, automation, resources and
the IO manager. `pdm_assets.definitions.build_definitions(settings)` puts them together."""

# The adapters set the filters for Dagster's beta and supersession warnings; the wiring's decorators
# raise them at import, so the adapters load first.
import pdm_assets.adapters  # noqa: F401
