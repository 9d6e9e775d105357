# Two commands: `make demo` (install + run the whole graph) and `make test` (install + checks).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: install demo test lint typecheck browser postgres pytest ui webserver daemon mlflow-ui benchmark clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

install: $(BIN)/.installed

demo: install
	$(BIN)/python -m pdm_assets.dev.demo

test: install lint typecheck browser postgres pytest

# The UI test drives Debian's headless Chromium; install it once if it is missing.
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
browser:
	@command -v chromium >/dev/null 2>&1 || $(SUDO) apt-get install -y --no-install-recommends chromium \
		|| { $(SUDO) apt-get update && $(SUDO) apt-get install -y --no-install-recommends chromium; }

# The Postgres test starts a server of its own from Debian's package; install it if missing.
postgres:
	@ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || $(SUDO) apt-get install -y --no-install-recommends postgresql \
		|| { $(SUDO) apt-get update && $(SUDO) apt-get install -y --no-install-recommends postgresql; }

# lint-imports holds the layers to pyproject.toml's [tool.importlinter] contracts (`dg check
# defs` runs as a test, beside the others: pdm_assets_tests/assets/test_definitions.py).
lint: install
	$(BIN)/ruff check pdm_assets pdm_assets_tests benchmarks
	$(BIN)/ruff format --check pdm_assets pdm_assets_tests benchmarks
	$(BIN)/lint-imports

typecheck: install
	$(BIN)/mypy

# Two workers, each taking whole test files (module fixtures stay in one process): the slow
# files spend much of their time waiting on servers, daemons and subprocesses. Three were no
# faster from a fresh clone (27 min 54 s of pytest against 28 min 02 s; every test slower).
# The time-window tests also run again under America/New_York, as one test of the suite
# (pdm_assets_tests/integration/test_other_time_zone.py).
pytest: install
	$(BIN)/python -m pytest -n 2 --dist loadfile --no-loadscope-reorder --durations=12

SETTING = $(BIN)/python -c 'from pdm_assets.settings import load_settings; print(load_settings().$(1))'

# Runs launched from the UI or by the sensor share one warm Spark (a local Spark Connect server
# started here and stopped on exit) instead of starting a JVM each. Only for the local
# environment with a folder warehouse; a PDM_SPARK_MASTER you set wins, PDM_WARM_SPARK=0 keeps a
# Spark per run, and a server that already runs for this home is reused and left running.
# dagster dev runs in the background and this shell waits for it; SIGTERM or SIGINT (a service
# manager, Ctrl-C) are passed on to it as SIGTERM, which it takes as Ctrl-C. A background job
# starts with SIGINT ignored, and dagster maps SIGTERM onto SIGINT's handler: default_signals
# resets both before it becomes dagster dev.
SPARK_SERVER = $(BIN)/python -m pdm_assets.adapters.spark_server
ui: install
	@home=$${DAGSTER_HOME:-$$($(call SETTING,dagster_home))}; \
		pdm_home=$$($(call SETTING,home)); \
		$(BIN)/python -m pdm_assets.defs.instance_config "$$home"; \
		master=$${PDM_SPARK_MASTER:-}; \
		if [ -z "$$master" ] && [ "$${PDM_WARM_SPARK:-1}" != 0 ] \
			&& [ "$${PDM_ENV:-local}" = local ] && [ -z "$${PDM_WAREHOUSE:-}" ]; then \
			if ! master=$$($(SPARK_SERVER) status --home "$$pdm_home" 2>/dev/null); then \
				trap '$(SPARK_SERVER) stop --home "'"$$pdm_home"'"' EXIT; \
				trap 'exit 130' INT TERM; \
				master=$$($(SPARK_SERVER) start --home "$$pdm_home") || exit 1; \
			fi; \
			token=$$($(SPARK_SERVER) token --home "$$pdm_home") || exit 1; \
			export SPARK_CONNECT_AUTHENTICATE_TOKEN="$$token"; \
		fi; \
		echo "Dagster UI on http://127.0.0.1:3000 (DAGSTER_HOME=$$home; runs use Spark $${master:-local[*]})"; \
		PDM_SPARK_MASTER="$$master" DAGSTER_HOME="$$home" $(BIN)/python -m pdm_assets.dev.default_signals \
			$(BIN)/dagster dev -w workspace.yaml -h 127.0.0.1 -p 3000 & dev=$$!; \
		trap 'kill -TERM $$dev 2>/dev/null; wait $$dev; exit 143' TERM; \
		trap 'kill -TERM $$dev 2>/dev/null; wait $$dev; exit 130' INT; \
		wait $$dev

# The production form (docs/deploy.md): the webserver and the daemon as two long-lived services
# over the instance in DAGSTER_HOME (Postgres with PDM_DAGSTER_POSTGRES_URL). Each replaces its
# shell (exec), so a service manager's SIGTERM reaches it and it stops cleanly.
HOST ?= 127.0.0.1
PORT ?= 3000
INSTANCE = home=$${DAGSTER_HOME:-$$($(call SETTING,dagster_home))}; \
	$(BIN)/python -m pdm_assets.defs.instance_config "$$home" || exit 1; export DAGSTER_HOME="$$home"
webserver: install
	@$(INSTANCE); exec $(BIN)/dagster-webserver -w workspace.yaml -h $(HOST) -p $(PORT)

daemon: install
	@$(INSTANCE); exec $(BIN)/dagster-daemon run -w workspace.yaml

mlflow-ui: install
	$(BIN)/mlflow ui --backend-store-uri "$$($(call SETTING,mlflow_tracking_uri))" \
		--host 127.0.0.1 --port 5000

# The graph's cost on a simulated fleet beside a Polars yardstick (benchmarks/graph_benchmark.py);
# e.g. make benchmark MACHINES=1000 DAYS=365. Results in benchmarks/results/.
MACHINES ?= 100
DAYS ?= 59
SEED ?= 1
benchmark: install
	$(BIN)/python benchmarks/graph_benchmark.py --machines $(MACHINES) --days $(DAYS) --seed $(SEED)

clean:
	rm -rf .pdm_home
