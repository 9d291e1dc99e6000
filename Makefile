# kisbench: `make setup`, then `make smoke` (offline check), `make repro` (the real run).
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
BIN := $(CURDIR)/$(VENV)/bin
# BLIP-2 as the thesis ran it (LAVIS) needs transformers 4.26 / timm 0.4: its own venv.
LAVIS_VENV := .venv-lavis
LAVIS_BIN := $(CURDIR)/$(LAVIS_VENV)/bin
# A PyTorch wheel index for another CUDA (e.g. https://download.pytorch.org/whl/cu126);
# empty: PyPI's build (CUDA 13, driver >= 580).
TORCH_INDEX ?=

export PATH := $(BIN):$(PATH)
export DVC_NO_ANALYTICS := 1
export DVC_SITE_CACHE_DIR := $(CURDIR)/.dvc/tmp/site_cache
export HF_HUB_DISABLE_TELEMETRY := 1

.PHONY: setup repro smoke test test-fast lint help

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/'

setup: $(VENV)/.installed $(LAVIS_VENV)/.installed  ## create .venv and .venv-lavis (pinned)

$(VENV)/.installed: requirements.txt
	@command -v $(PYTHON) >/dev/null || { echo "error: $(PYTHON) not found (set PYTHON=...)"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	@if [ -n "$(TORCH_INDEX)" ]; then \
	  $(BIN)/pip install torch==2.14.1 torchvision==0.29.1 --index-url "$(TORCH_INDEX)"; fi
	$(BIN)/pip install -r requirements.txt
	touch $@

# PIP_CONSTRAINT replaces any machine-wide pip constraint for this install.
$(LAVIS_VENV)/.installed: requirements-lavis.txt constraints-lavis.txt
	@command -v $(PYTHON) >/dev/null || { echo "error: $(PYTHON) not found (set PYTHON=...)"; exit 1; }
	$(PYTHON) -m venv $(LAVIS_VENV)
	$(LAVIS_BIN)/python -m pip install -q --upgrade pip
	@if [ -n "$(TORCH_INDEX)" ]; then \
	  PIP_CONSTRAINT=$(CURDIR)/constraints-lavis.txt $(LAVIS_BIN)/pip install \
	    torch==2.14.1 torchvision==0.29.1 --index-url "$(TORCH_INDEX)"; fi
	PIP_CONSTRAINT=$(CURDIR)/constraints-lavis.txt $(LAVIS_BIN)/pip install -r requirements-lavis.txt
	touch $@

repro: setup  ## dvc repro of the experiment in params.yaml (GPU recommended)
	dvc repro

smoke: setup  ## the whole pipeline offline with tiny models, in .smoke/
	HF_HUB_OFFLINE=1 python -m kisbench.smoke

test: setup  ## the test suite (what CI runs)
	HF_HUB_OFFLINE=1 python -m pytest

test-fast: setup  ## the tests without the slow (pipeline, server) ones
	HF_HUB_OFFLINE=1 python -m pytest -m "not slow"

lint: setup  ## ruff
	ruff check .
