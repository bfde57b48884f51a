# Every target creates .venv on first use, so on a fresh machine `make run` and `make test` are
# the whole set-up.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run demo test lint bench clean

$(STAMP): pyproject.toml
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/addicted-jobs run $(if $(CONFIG),--config $(CONFIG))

demo: $(STAMP)
	$(BIN)/addicted-jobs demo

test: $(STAMP)
	$(BIN)/pytest -q

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy daemon
	$(BIN)/lint-imports
	$(BIN)/python .ci/check_import_cycles.py

bench: $(STAMP)
	$(BIN)/python bench/engine.py

clean:
	rm -rf $(VENV) .state .pytest_cache .mypy_cache .ruff_cache
