# Two commands: `make run` and `make test`. Both build .venv from the pinned requirements.
# `make test` also installs the official Socket.IO JS client (tests/js, pinned) when Node is present;
# `make run` never needs Node.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python

.PHONY: run test bench venv dev-venv js-deps clean

$(VENV)/.runtime: requirements.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	touch $@

$(VENV)/.dev: $(VENV)/.runtime requirements-dev.txt
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $@

$(VENV)/.bench: $(VENV)/.dev bench/requirements.txt
	$(PY) -m pip install --quiet -r bench/requirements.txt
	touch $@

venv: $(VENV)/.runtime
dev-venv: $(VENV)/.dev

## The official socket.io-client for the tests (tests/js/package-lock.json); skipped with a notice without Node
js-deps:
	@if command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1; then \
		if [ tests/js/node_modules/.package-lock.json -nt tests/js/package-lock.json ]; then :; else \
			npm ci --prefix tests/js --no-audit --no-fund --loglevel=error; fi; \
	else echo "js-deps: node/npm not found; the official socket.io-client tests will be skipped (failed in CI)"; fi

## Start the server on the embedded defaults: http://localhost:5000
run: venv
	$(PY) run.py

## Run the test suite (a throwaway redis-server is started when one is installed)
test: dev-venv js-deps
	$(PY) -m pytest $(PYTEST_ARGS)

## Benchmarks (figures as ratios measured in one run)
bench: $(VENV)/.bench
	$(PY) bench/run_all.py

clean:
	rm -rf $(VENV) .pytest_cache tests/js/node_modules
