# The two commands a newcomer needs: `make serve` and `make test`. Both set up first.
VENV ?= .venv
DATA_DIR ?= ./data
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: setup serve test lint unit

setup:
	@VENV=$(VENV) scripts/setup

serve: setup
	$(VENV)/bin/docjobs serve --host $(HOST) --port $(PORT) --data-dir $(DATA_DIR)

lint: setup
	VENV=$(VENV) scripts/check

test: lint
	$(VENV)/bin/python -m pytest -q -p no:cacheprovider $(PYTEST_ARGS)

unit: setup
	$(VENV)/bin/python -m pytest -q tests/unit
