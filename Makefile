# kisbench: `make setup`, then `make smoke` (offline check), `make repro` (the real run).
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
BIN := $(CURDIR)/$(VENV)/bin
# A PyTorch wheel index for another CUDA (e.g. https://download.pytorch.org/whl/cu126);
# empty: PyPI's build (CUDA 13, driver >= 580).
TORCH_INDEX ?=

export PATH := $(BIN):$(PATH)
export DVC_NO_ANALYTICS := 1
export DVC_SITE_CACHE_DIR := $(CURDIR)/.dvc/tmp/site_cache
export HF_HUB_DISABLE_TELEMETRY := 1

.PHONY: setup browser repro smoke test test-fast lint help

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/'

setup: $(VENV)/.installed browser  ## create .venv with the pinned requirements (+ chromium)

# Debian's chromium, for the labelling tool's browser test (tests/test_labeltool_browser.py):
# installed with apt-get when missing and we are root; otherwise that test fails and says so.
browser:  ## install Debian's chromium for the browser test, if missing (needs root)
	@if command -v chromium >/dev/null; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  echo "installing Debian's chromium (apt-get)"; \
	  apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium; \
	else echo "warning: no chromium and not root: the browser test will fail;" \
	  "run 'sudo apt-get install chromium' (or set KISBENCH_CHROMIUM=/path/to/chromium)"; fi

$(VENV)/.installed: requirements.txt
	@command -v $(PYTHON) >/dev/null || { echo "error: $(PYTHON) not found (set PYTHON=...)"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	@if [ -n "$(TORCH_INDEX)" ]; then \
	  $(BIN)/pip install torch==2.14.1 torchvision==0.29.1 --index-url "$(TORCH_INDEX)"; fi
	$(BIN)/pip install -r requirements.txt
	touch $@

repro: setup  ## dvc repro of the experiment in params.yaml (GPU recommended)
	dvc repro

smoke: setup  ## the whole pipeline offline with tiny models, in .smoke/
	HF_HUB_OFFLINE=1 python -m kisbench.smoke

test: setup  ## the test suite (what CI runs)
	HF_HUB_OFFLINE=1 python -m pytest

test-fast: setup  ## the tests without the slow (pipeline, server, browser) ones
	HF_HUB_OFFLINE=1 python -m pytest -m "not slow"

lint: setup  ## ruff
	ruff check .
