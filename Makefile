# segkit — two commands do all set-up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# torch + torchvision (segmentation_models_pytorch needs both). These pins lie on the build
# machines' disk; from PyPI they are the CUDA build (~5.5 GB in the venv, runs on CPU too).
# A CPU-only laptop: `make setup TORCH_INDEX=https://download.pytorch.org/whl/cpu` (~1 GB).
# A machine whose python3 already has torch (Kaggle, a CUDA box, conda) keeps its own build.
TORCH_SPEC ?= torch==2.14.1 torchvision==0.29.1
TORCH_INDEX ?=
DEMO_DIR ?= runs/demo

.PHONY: setup browser demo test test-fast test-min-versions lint notebook-params kaggle-bundle clean-demo help

help:
	@echo "make setup   create $(VENV) and install segkit with notebooks, tests and CLI"
	@echo "make demo    synthetic data -> notebooks 01..05 headless -> $(DEMO_DIR)"
	@echo "make test    unit tests + notebooks under nbval (CPU, no network)"
	@echo "make test-min-versions  segkit at the lowest versions pyproject admits (downloads every runtime dependency but torch)"
	@echo "make browser install Chromium + chromedriver with apt-get if missing (the dashboard's browser test; make test runs it)"
	@echo "make notebook-params  regenerate the notebooks' parameters cells after editing segkit/config.py"

setup: $(VENV)/.installed

# If the interpreter that builds the venv already imports torch (a CUDA machine, a conda env),
# the venv sees it through --system-site-packages and pip keeps it; otherwise the pinned wheel.
$(VENV)/.installed: pyproject.toml
	@if $(PYTHON) -c "import torch" 2>/dev/null; then \
	  echo "setup: keeping the torch already installed for $(PYTHON)"; \
	  $(PYTHON) -m venv --system-site-packages $(VENV); \
	else \
	  $(PYTHON) -m venv $(VENV); \
	  $(BIN)/python -m pip install -q --upgrade pip; \
	  $(BIN)/python -m pip install -q $(TORCH_SPEC) $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX)); \
	fi
	$(BIN)/python -m pip install -q -e ".[dev]"
	$(BIN)/python -m ipykernel install --sys-prefix --name python3 >/dev/null
	@touch $@

# The dashboard's browser test (tests/test_dashboard.py) drives Debian's Chromium through its own
# chromedriver (one package version, so they always match). Installed only when missing; sudo
# only when not root; apt's output is shown only if it fails. Without Chromium's recommends (printer
# tools, udev, ...) but with a font, so the screenshots have text. SEGKIT_NO_BROWSER=1 opts out
# (the test is then skipped, saying so).
BROWSER_PACKAGES := chromium chromium-driver fonts-liberation
SUDO := $(if $(filter 0,$(shell id -u)),,sudo)

browser:
	@if [ -n "$$SEGKIT_NO_BROWSER" ]; then echo "browser: SEGKIT_NO_BROWSER is set, not installing Chromium"; \
	elif command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1; then :; \
	elif command -v apt-get >/dev/null 2>&1; then \
	  echo "browser: installing $(BROWSER_PACKAGES) with apt-get (for the dashboard's browser test)"; \
	  log=$$(mktemp); \
	  if ! { $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get -q update && \
	         $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get -q install -y --no-install-recommends $(BROWSER_PACKAGES); } >$$log 2>&1; then \
	    cat $$log >&2; rm -f $$log; echo "browser: apt-get failed (above); the browser test will fail (SEGKIT_NO_BROWSER=1 skips it)" >&2; \
	  fi; rm -f $$log; \
	else \
	  echo "browser: no apt-get here: install Chromium and its chromedriver (on PATH, or set SEGKIT_CHROMIUM" \
	       "and SEGKIT_CHROMEDRIVER), or set SEGKIT_NO_BROWSER=1 to skip the browser test" >&2; \
	fi

demo: setup
	$(BIN)/python -m segkit demo --out $(DEMO_DIR)

test: setup browser
	$(BIN)/python -m pytest -q tests

# segkit at the lowest versions pyproject admits (tests/test_min_versions.py): downloads every runtime dependency but torch.
test-min-versions: setup
	SEGKIT_MIN_VERSIONS=1 $(BIN)/python -m pytest -q -s tests/test_min_versions.py

test-fast: setup
	$(BIN)/python -m pytest -q -m "not slow" tests

lint: setup
	$(BIN)/ruff check segkit tests benchmarks
	$(BIN)/ruff format --check segkit tests benchmarks

notebook-params: setup
	$(BIN)/python -c "from segkit.notebook import sync_parameter_cells as s; print('\n'.join(s()) or 'parameters cells up to date')"

kaggle-bundle: setup
	$(BIN)/python -m segkit kaggle bundle --out runs/kaggle-bundle

clean-demo:
	rm -rf $(DEMO_DIR) data/synthetic
