PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
STAMP := $(VENV)/.installed

CORE_VENV := .venv-core
.PHONY: install demo test test-core bench sanity results docs clean

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	$(PIP) install --quiet -c constraints.txt -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/ccalens demo --out runs/demo

test: $(STAMP) test-core
	PYTHONFAULTHANDLER=1 $(PY) -m pytest -q

# the suite with the core dependencies only (numpy, scipy, threadpoolctl): everything that
# needs an extra must skip with its reason, nothing may fail to collect
test-core:
	$(PYTHON) -m venv $(CORE_VENV)
	$(CORE_VENV)/bin/python -m pip install --quiet -c constraints.txt -e . pytest pytest-timeout
	PYTHONFAULTHANDLER=1 $(CORE_VENV)/bin/python -m pytest -q -p no:cacheprovider

results: $(STAMP)  # every figure at --scale small (hours on 2 CPU cores; resumable)
	$(VENV)/bin/ccalens reproduce all --scale small --out runs --collect results/small

sanity: $(STAMP)  # every measure's specificity, sensitivity and invariances (about 20 minutes on 2 cores with all 17 measures)
	$(VENV)/bin/ccalens sanity --out runs/sanity

docs: $(STAMP)  # the documentation site, --strict (every warning an error), into site/
	NO_MKDOCS_2_WARNING=1 DISABLE_MKDOCS_2_WARNING=true $(VENV)/bin/mkdocs build --strict -d site

NETREP ?=
bench: $(STAMP)  # every benchmark (about 19 minutes on 2 cores); NETREP=/path/to/netrep adds netrep's pairwise
	$(PIP) install --quiet -c constraints.txt -e ".[bench]"  # pytorch-cka, which bench_compare_models measures against
	$(PY) benchmarks/bench_core.py --json benchmarks/results/bench_core.json
	$(PY) benchmarks/bench_busy.py
	$(PY) benchmarks/bench_pairwise.py
	$(PY) benchmarks/bench_stream.py
	$(PY) benchmarks/bench_compare_models.py
	$(PY) benchmarks/bench_wide_layers.py
	$(PY) benchmarks/bench_prepared.py
	$(if $(NETREP),$(PY) benchmarks/bench_pairwise_netrep.py --netrep $(NETREP),@echo "netrep is not on PyPI: make bench NETREP=/path/to/a/netrep/checkout adds pairwise against it")

clean:
	rm -rf $(VENV) $(CORE_VENV) runs .pytest_cache
