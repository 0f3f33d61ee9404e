# Two commands: `make run` and `make test`. Both build .venv from the pinned requirements.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python

.PHONY: run test bench venv dev-venv clean

$(VENV)/.runtime: requirements.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	touch $@

$(VENV)/.dev: $(VENV)/.runtime requirements-dev.txt
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $@

venv: $(VENV)/.runtime
dev-venv: $(VENV)/.dev

## Start the server on the embedded defaults: http://localhost:5000
run: venv
	$(PY) run.py

## Run the test suite (a throwaway redis-server is started when one is installed)
test: dev-venv
	$(PY) -m pytest $(PYTEST_ARGS)

## Benchmarks (figures as ratios measured in one run)
bench: dev-venv
	$(PY) bench/run_all.py

clean:
	rm -rf $(VENV) .pytest_cache
