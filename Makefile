# taskloom developer tasks. `make help` lists them.
VENV   ?= .venv
PYTHON ?= python3
PY      = $(VENV)/bin/python
PIP     = $(PY) -m pip
PYTEST_ARGS ?=
DEMO_ARGS ?=
MONITOR_ARGS ?=

# torch==2.13.0 is installed before the project on purpose: it is the only spec that resolves
# to the local CPU build (2.13.0+cpu). Letting the resolver choose pulls several GB of CUDA
# packages.
TORCH_SPEC = torch==2.13.0

.DEFAULT_GOAL := help
.PHONY: help test demo monitor lint bench clean distclean

help: ## List the targets
	@grep -E '^[a-z]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-10s %s\n", $$1, $$2}'

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --upgrade pip

$(VENV)/.stamp-base: pyproject.toml | $(PY)
	$(PIP) install $(TORCH_SPEC)
	$(PIP) install -e .
	touch $@

$(VENV)/.stamp-dev: pyproject.toml | $(PY)
	$(PIP) install $(TORCH_SPEC)
	$(PIP) install -e ".[dev,postgres,ray]"
	touch $@

$(VENV)/.stamp-bench: pyproject.toml | $(PY)
	$(PIP) install $(TORCH_SPEC)
	$(PIP) install -e ".[dev,postgres,ray,bench]"
	touch $@

test: $(VENV)/.stamp-dev ## Run the test suite (PYTEST_ARGS="-m 'not slow'" to filter)
	HF_HUB_OFFLINE=1 $(PY) -m pytest $(PYTEST_ARGS)

demo: $(VENV)/.stamp-base ## Run the support-triage demo (DEMO_ARGS="--quick" for a short run)
	HF_HUB_OFFLINE=1 $(PY) examples/run_demo.py $(DEMO_ARGS)

monitor: $(VENV)/.stamp-base ## Run the market-sentiment monitor (MONITOR_ARGS="--quick" for a short run)
	HF_HUB_OFFLINE=1 $(PY) examples/run_market_monitor.py $(MONITOR_ARGS)

lint: $(VENV)/.stamp-dev ## ruff check, ruff format --check, mypy
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

bench: $(VENV)/.stamp-bench ## Engine, durability, inference, fine-tuning, stream and service load benchmarks -> benchmarks/results/
	$(PY) -m benchmarks.engine_overhead --json benchmarks/results/engine_overhead.json
	$(PY) -m benchmarks.durability --json benchmarks/results/durability.json
	HF_HUB_OFFLINE=1 $(PY) -m benchmarks.inference --json benchmarks/results/inference.json
	HF_HUB_OFFLINE=1 $(PY) -m benchmarks.finetune --json benchmarks/results/finetune.json
	HF_HUB_OFFLINE=1 $(PY) -m benchmarks.stream --json benchmarks/results/stream.json
	$(PY) -m benchmarks.service_load --json benchmarks/results/service_load.json  # needs wrk

clean: ## Remove build artefacts and caches (keeps the venv)
	rm -rf build dist *.egg-info .mypy_cache .ruff_cache .pytest_cache .hypothesis .coverage \
		test-artifacts examples/plugin_agent/build demo-output monitor-output
	find . -path ./$(VENV) -prune -o -type d -name __pycache__ -exec rm -rf {} +
	find . -path ./$(VENV) -prune -o -type d -name '*.egg-info' -exec rm -rf {} +

distclean: clean ## clean, and remove the venv too
	rm -rf $(VENV)
