# billswitch: the two commands are `make run` and `make test`.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install run test lint bench clean

install: $(STAMP)

# constraints.txt: the exact versions tested, so a fresh machine (and CI) gets them.
$(STAMP): setup.cfg pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c constraints.txt -e '.[test]'
	touch $(STAMP)

run: install
	$(BIN)/billswitch run --demo

lint: install
	$(BIN)/ruff check .

test: install lint
	$(BIN)/pytest -q

# Load test against PostgreSQL (see docs/benchmarks.md); BENCH_ARGS overrides the workload.
BENCH_DB ?= postgresql+psycopg2://postgres@127.0.0.1:5432/test
BENCH_ARGS ?=
bench: install
	$(BIN)/python -m loadtest bench --db '$(BENCH_DB)' $(BENCH_ARGS)

clean:
	rm -rf $(VENV) var build *.egg-info
