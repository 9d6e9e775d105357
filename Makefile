# Two commands: `make demo` (install + run the whole graph) and `make test` (install + checks).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: install demo test lint typecheck pytest ui mlflow-ui clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

install: $(BIN)/.installed

demo: install
	$(BIN)/python -m pdm_assets.demo

test: install lint typecheck pytest

lint: install
	$(BIN)/ruff check pdm_assets pdm_assets_tests benchmarks
	$(BIN)/ruff format --check pdm_assets pdm_assets_tests benchmarks

typecheck: install
	$(BIN)/mypy

pytest: install
	$(BIN)/python -m pytest

ui: install
	DAGSTER_HOME=$${DAGSTER_HOME:-$$($(BIN)/python -c 'from pdm_assets.settings import load_settings; print(load_settings().dagster_home)')} \
		$(BIN)/dagster dev -w workspace.yaml

mlflow-ui: install
	$(BIN)/mlflow ui --backend-store-uri \
		$$($(BIN)/python -c 'from pdm_assets.settings import load_settings; print(load_settings().mlflow_tracking_uri)') \
		--host 127.0.0.1 --port 5000

clean:
	rm -rf .pdm_home
