# Localfeed: `make test` sets up .venv (if missing or out of date) and runs ruff, mypy and the test suite.
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: test test-faults test-ecosystem lint bench demo

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $@

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy schema federation publisher aggregator demo bench

# Two processes by default (the tests are mostly waiting on servers); PYTEST_ARGS overrides.
PYTEST_ARGS ?= -n 2

# The fault suite (tests/faults: real processes killed at random) takes minutes, so it has its own target.
test: lint
	$(PY) -m pytest -m "not faults and not ecosystem" $(PYTEST_ARGS)

# One test at a time: each runs a whole network of processes, and crashes must not compete for the cores.
FAULTS_PYTEST_ARGS ?= -n 0

test-faults: $(VENV)/.installed
	$(PY) -m pytest -m faults tests/faults $(FAULTS_PYTEST_ARGS)

# The OpenActive community's own validators (Node.js) over a running demo network: see docs/ecosystem.md.
test-ecosystem: $(VENV)/.installed
	cd tests/ecosystem && npm ci --no-audit --no-fund
	$(PY) -m pytest -m ecosystem tests/ecosystem -n 0 -s

# A whole network on this machine (see docs/deploying.md); Ctrl-C stops it.
demo: $(VENV)/.installed
	$(PY) -m demo $(DEMO_ARGS)

# The benchmarks (not part of `make test`): each prints its table and writes bench/results/<name>.json.
bench: $(VENV)/.installed
	$(PY) bench/run_all.py

# Steady operation: the demo network under a steady mixed load for SOAK_MINUTES, sampled every minute
# (memory, storage, latency, propagation); writes bench/results/soak.json. Not part of `make bench`.
SOAK_MINUTES ?= 30

soak: $(VENV)/.installed
	$(PY) bench/soak.py --minutes $(SOAK_MINUTES)
