# Two commands do everything: `make serve` runs the fake, `make test` runs the tests.
# Each creates the virtual environment and installs the project on first use.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: serve test lint clean

$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $(STAMP)

serve: $(STAMP)
	$(VENV)/bin/hiapi-mock serve $(ARGS)

test: $(STAMP)
	$(PY) -m pytest $(ARGS)
	$(VENV)/bin/hiapi-contract check --report .contract-report
	$(VENV)/bin/mypy
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/openapi-spec-validator openapi.yaml

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
