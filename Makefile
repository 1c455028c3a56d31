# The two commands a newcomer needs: `make serve` and `make test`. Both set up first.
VENV ?= .venv
DATA_DIR ?= ./data
HOST ?= 127.0.0.1
PORT ?= 8000
# Extras besides the runtime: `make serve` installs none (no PyTorch); `make setup
# EXTRAS=doctr` adds advanced OCR; the tests and linters install everything.
EXTRAS ?=

.PHONY: setup serve test lint unit rig verapdf

setup:
	@VENV=$(VENV) EXTRAS=$(EXTRAS) scripts/setup

lint test unit verapdf: EXTRAS = dev,doctr

serve: setup
	$(VENV)/bin/docjobs serve --host $(HOST) --port $(PORT) --data-dir $(DATA_DIR)

lint: setup
	VENV=$(VENV) scripts/check

# The rig's binaries (control plane, MinIO, helm), built before pytest starts: a cold build
# takes longer than any test may. Progress goes to the terminal; a warm cache returns at once.
rig:
	@if command -v go >/dev/null; then tests/rig/build.sh >/dev/null; \
	else echo "no Go toolchain: the rig cannot be built, its tests will be skipped"; fi

# veraPDF, which the tests run on PDF/A and PDF/UA conversions: a jar from Maven Central,
# fetched before pytest starts (a first fetch brings Maven's plugins too).
verapdf: setup
	@scripts/verapdf --install >/dev/null

# The fault suite runs beside the rest, on a rig of its own (scripts/test says why).
test: lint rig verapdf
	VENV=$(VENV) scripts/test $(PYTEST_ARGS)

unit: setup
	$(VENV)/bin/python -m pytest -q tests/unit
