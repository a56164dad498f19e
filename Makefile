# optisweep: `make run` and `make test` set themselves up on a fresh machine.
VENV   ?= .venv
PYTHON ?= python3
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
# torch first, pinned: pip then takes the CPU wheel on disk and the project's looser range is
# already satisfied, instead of downloading a multi-GB CUDA build.
TORCH  ?= torch==2.13.0
# The dashboard's front-end packages (ECharts, and ESLint for `make lint`), pinned by
# package-lock.json; npm writes this file into node_modules on every install, so it is the stamp.
# npm ci runs first: the install then copies ECharts from node_modules into the dashboard's
# vendor/ (setup.py) instead of fetching it from the npm registry.
DASHBOARD := service/dashboard
NODE_STAMP := $(DASHBOARD)/node_modules/.package-lock.json

.PHONY: install run test test-fast lint typecheck docs pytest bench clean chromium gpu-check chaos

$(STAMP): pyproject.toml setup.py $(NODE_STAMP)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet "$(TORCH)"
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

$(NODE_STAMP): $(DASHBOARD)/package-lock.json
	npm ci --prefix $(DASHBOARD) --no-audit --no-fund
	touch $(NODE_STAMP)

install: $(NODE_STAMP) $(STAMP)

run: install
	$(BIN)/optisweep serve

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	cd $(DASHBOARD) && npx --no-install eslint .

typecheck: install
	$(BIN)/mypy

# The browser tests drive Debian's Chromium (Playwright's own browser download does not work
# here); install it when it is missing.
chromium:
	@command -v chromium >/dev/null || { \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		$$SUDO apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends chromium; }

# The documentation site (MkDocs, Material theme) into build/site. Strict: a broken link or
# anchor, or a page missing from mkdocs.yml's nav, fails the build; docs/hooks/reference.py
# generates the spec and REST API reference pages from the code.
docs: install
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --site-dir build/site

pytest: install chromium
	$(BIN)/pytest

test: lint typecheck docs pytest

# For development: everything but the tests marked slow (the longest end-to-end and chaos
# runs). CI and `make test` run them all.
test-fast: install chromium lint typecheck
	$(BIN)/pytest -m "not slow"

bench: install
	$(BIN)/python -m pip install --quiet -e ".[dev,bench]"
	$(BIN)/python benchmarks/optimizer_step.py
	$(BIN)/python -m benchmarks.sweep_throughput

# Randomized faults (server and worker kills, dropped database connections, a frozen server, a
# poison sweep, an unwritable checkpoint folder) against real servers on SQLite and PostgreSQL;
# prints a table of epochs expected, found, lost and duplicated. `make test` runs each case once.
CHAOS_RUNS ?= 20
chaos: install
	$(BIN)/python -m tests.chaos --runs $(CHAOS_RUNS)

# On a machine lent with a GPU: the CUDA tests and the GPU benchmarks, tables written to
# GPU_CHECK_OUT. It uses that machine's own Python with torch and CUDA (GPU_PYTHON), not .venv:
# such machines have no package registry, so pydantic travels as wheels (benchmarks/README.md).
GPU_PYTHON    ?= python3
GPU_CHECK_OUT ?= test-artifacts/gpu-check.md
gpu-check:
	$(GPU_PYTHON) -m benchmarks.gpu_check --out $(GPU_CHECK_OUT)

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache $(DASHBOARD)/node_modules $(DASHBOARD)/vendor
