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
# Everything else `make setup` installs, exact and hash-checked (`make lock` writes it); `LOCK=` = the ranges.
LOCK ?= requirements/dev.lock
PIP_SPEC ?= pip==26.3
LATEST_VENV ?= .venv-latest
# `make test` spreads the tests over every core (pytest-xdist) and names the ten slowest (keep the suite
# under 7 minutes on 2 cores); PYTEST_WORKERS=0 runs them in one process.
PYTEST_WORKERS ?= auto

.PHONY: setup lock browser demo test test-fast test-latest test-min-versions lint notebook-params kaggle-bundle clean-demo help

help:
	@echo "make setup   create $(VENV) and install segkit with notebooks, tests and CLI"
	@echo "make demo    synthetic data -> notebooks 01..05 headless -> $(DEMO_DIR)"
	@echo "make test    unit tests + notebooks under nbval (CPU, no network)"
	@echo "make lock    regenerate requirements/dev.lock (UPGRADE=1: move every pin to the newest release)"
	@echo "make test-latest  the suite in a fresh venv of the newest releases pyproject admits (no lock)"
	@echo "make test-min-versions  segkit at the lowest versions pyproject admits (downloads every runtime dependency but torch)"
	@echo "make browser install Chromium + chromedriver with apt-get if missing (the dashboard's browser test; make test runs it)"
	@echo "make notebook-params  regenerate the notebooks' parameters cells after editing segkit/config.py"

setup: $(VENV)/.installed

# Exact versions and hashes of everything but torch (requirements/dev.lock, written by `make lock`),
# so that `make test` passes on any day, not only on the day the registry had the releases it was
# tested with. The lock is made for one Python (its `# lock-python:` line); under another one, or
# with `make setup LOCK=`, segkit is installed from pyproject's ranges instead (what `pip install
# segkit` gets; `make test-latest` tests exactly that).
# If the interpreter that builds the venv already imports torch (a CUDA machine, a conda env),
# the venv sees it through --system-site-packages and pip keeps it; otherwise the pinned wheel.
$(VENV)/.installed: pyproject.toml $(LOCK)
	@if $(PYTHON) -c "import torch" 2>/dev/null; then \
	  echo "setup: keeping the torch already installed for $(PYTHON)"; \
	  $(PYTHON) -m venv --system-site-packages $(VENV); \
	  $(BIN)/python -m pip install -q $(PIP_SPEC); \
	else \
	  $(PYTHON) -m venv $(VENV); \
	  $(BIN)/python -m pip install -q $(PIP_SPEC); \
	  $(BIN)/python -m pip install -q $(TORCH_SPEC) $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX)); \
	fi
	@python=$$($(BIN)/python -c 'import sys; print("%d.%d" % sys.version_info[:2])'); \
	locked=$$(sed -n 's/^# lock-python: //p' $(LOCK) 2>/dev/null); \
	if [ -n "$(LOCK)" ] && [ "$$python" = "$$locked" ]; then \
	  echo "setup: installing $(LOCK) (exact versions, hashes checked)"; \
	  $(BIN)/python -m pip install -q --require-hashes -r $(LOCK) && \
	  $(BIN)/python -m pip install -q --no-deps --no-build-isolation -e . ; \
	else \
	  echo "setup: $(if $(LOCK),$(LOCK) is for Python $$locked and this is $$python,no lock asked for):" \
	       "installing from pyproject.toml's ranges (the newest releases they admit)"; \
	  $(BIN)/python -m pip install -q -e ".[dev]"; \
	fi
	$(BIN)/python -m pip check
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
	$(BIN)/python -m pytest -q -n $(PYTEST_WORKERS) --dist loadscope --durations=10 tests

# requirements/dev.lock from pyproject.toml (pip-tools' pip-compile, run by pip's resolver so that
# it sees the torch builds pip installs); UPGRADE=1 moves every pin to the newest admitted release.
lock: setup
	$(BIN)/python requirements/lock.py --torch-spec "$(TORCH_SPEC)" $(if $(UPGRADE),--upgrade)

# Tomorrow's releases today: a fresh venv from pyproject's ranges alone (no lock), then the whole
# suite. Opt-in (downloads the newest release of every dependency). Green: `make lock UPGRADE=1`
# moves the lock forward; red: what broke is what a fresh `pip install segkit` would hit.
test-latest:
	rm -rf $(LATEST_VENV)
	$(MAKE) --no-print-directory setup VENV=$(LATEST_VENV) LOCK=
	$(LATEST_VENV)/bin/python -m pip freeze --exclude-editable > $(LATEST_VENV)/freeze.txt
	$(LATEST_VENV)/bin/python requirements/lock.py --compare $(LATEST_VENV)/freeze.txt
	$(LATEST_VENV)/bin/python -m pytest -q -n $(PYTEST_WORKERS) --dist loadscope tests

# segkit at the lowest versions pyproject admits (tests/test_min_versions.py): downloads every runtime dependency but torch.
test-min-versions: setup
	SEGKIT_MIN_VERSIONS=1 $(BIN)/python -m pytest -q -s tests/test_min_versions.py

test-fast: setup
	$(BIN)/python -m pytest -q -n $(PYTEST_WORKERS) --dist loadscope -m "not slow" tests

lint: setup
	$(BIN)/ruff check segkit tests benchmarks
	$(BIN)/ruff format --check segkit tests benchmarks

notebook-params: setup
	$(BIN)/python -c "from segkit.notebook import sync_parameter_cells as s; print('\n'.join(s()) or 'parameters cells up to date')"

kaggle-bundle: setup
	$(BIN)/python -m segkit kaggle bundle --out runs/kaggle-bundle

clean-demo:
	rm -rf $(DEMO_DIR) data/synthetic
