# Set-up and the two everyday commands. `make demo` and `make test` create .venv when it is missing.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp

.PHONY: install demo test lint bench clean

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -e ".[dev]"
	@touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/singleshot detect demo

test: $(STAMP) lint
	$(PY) -m pytest -n 2 --durations=15 tests

# Layering (import-linter contracts in pyproject.toml), lint rules and formatting.
lint: $(STAMP)
	$(VENV)/bin/lint-imports
	$(VENV)/bin/ruff check singleshot tests benchmarks
	$(VENV)/bin/ruff format --check singleshot tests benchmarks

bench: $(STAMP)
	$(PY) benchmarks/bench_ssd_inference.py
	$(PY) benchmarks/bench_multibox_loss.py
	$(PY) benchmarks/bench_data_loading.py

clean:
	rm -rf $(VENV) runs .pytest_cache
