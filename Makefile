# Set-up and the two everyday commands. `make demo` and `make test` create .venv when it is missing.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp

.PHONY: install demo test bench clean

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -e ".[dev]"
	@touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/singleshot detect demo

test: $(STAMP)
	$(PY) -m pytest -n 2 --durations=15 tests

bench: $(STAMP)
	$(PY) benchmarks/bench_ssd_inference.py
	$(PY) benchmarks/bench_multibox_loss.py
	$(PY) benchmarks/bench_data_loading.py

clean:
	rm -rf $(VENV) runs .pytest_cache
