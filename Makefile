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
# The DVC remote for push/pull/check-remote; empty: core.remote in .dvc/config.
REMOTE ?=

export PATH := $(BIN):$(PATH)
export DVC_NO_ANALYTICS := 1
export DVC_SITE_CACHE_DIR := $(CURDIR)/.dvc/tmp/site_cache
export HF_HUB_DISABLE_TELEMETRY := 1

.PHONY: setup browser sshd check repro smoke test test-fast lint help check-remote push pull plots \
	vendor-vega

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/'

setup: $(VENV)/.installed $(LAVIS_VENV)/.installed browser sshd  ## .venv and .venv-lavis (pinned), chromium and sshd for tests

# Debian's chromium, for the labelling tool's browser test (tests/test_labeltool_browser.py):
# installed with apt-get when missing and we are root; otherwise that test fails and says so.
browser:  ## install Debian's chromium for the browser test, if missing (needs root)
	@if command -v chromium >/dev/null; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  echo "installing Debian's chromium (apt-get)"; \
	  apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium; \
	else echo "warning: no chromium and not root: the browser test will fail;" \
	  "run 'sudo apt-get install chromium' (or set KISBENCH_CHROMIUM=/path/to/chromium)"; fi

# Debian's OpenSSH server, for the SSH round trip in tests/test_remote.py (the test starts its
# own sshd on 127.0.0.1, nothing is enabled system-wide); installed like chromium above.
sshd:  ## install Debian's openssh-server for the remote test, if missing (needs root)
	@if [ -x /usr/sbin/sshd ] || command -v sshd >/dev/null; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  echo "installing Debian's openssh-server (apt-get)"; \
	  apt-get update -q && DEBIAN_FRONTEND=noninteractive \
	    apt-get install -y -q --no-install-recommends openssh-server; \
	else echo "warning: no sshd and not root: the SSH remote test will fail;" \
	  "run 'sudo apt-get install openssh-server'"; fi

$(VENV)/.installed: requirements.txt pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "error: $(PYTHON) not found (set PYTHON=...)"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	@if [ -n "$(TORCH_INDEX)" ]; then \
	  $(BIN)/pip install torch==2.14.1 torchvision==0.29.1 --index-url "$(TORCH_INDEX)"; fi
	$(BIN)/pip install -r requirements.txt
	$(BIN)/pip install -q --no-deps -e .   # the project itself: `kisbench`, importable anywhere
	touch $@

# PIP_CONSTRAINT replaces any machine-wide pip constraint for this install. torch and its CUDA
# wheels are hard-linked from .venv first (kisbench/tools/share_packages.py): 5.3 GB less disk.
$(LAVIS_VENV)/.installed: requirements-lavis.txt constraints-lavis.txt | $(VENV)/.installed
	@command -v $(PYTHON) >/dev/null || { echo "error: $(PYTHON) not found (set PYTHON=...)"; exit 1; }
	$(PYTHON) -m venv $(LAVIS_VENV)
	$(LAVIS_BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m kisbench.tools.share_packages $(VENV) $(LAVIS_VENV)
	@if [ -n "$(TORCH_INDEX)" ]; then \
	  PIP_CONSTRAINT=$(CURDIR)/constraints-lavis.txt $(LAVIS_BIN)/pip install \
	    torch==2.14.1 torchvision==0.29.1 --index-url "$(TORCH_INDEX)"; fi
	PIP_CONSTRAINT=$(CURDIR)/constraints-lavis.txt $(LAVIS_BIN)/pip install -r requirements-lavis.txt
	touch $@

# The check stage in the DAG looks for near duplicates; this first pass skips them (seconds
# for 10,000 images) so that a mistake stops `make repro` before DVC starts.
repro: setup  ## kisbench check, then dvc repro of the experiment in params.yaml (GPU recommended)
	kisbench check --no-near
	dvc repro

check: setup  ## params.yaml, collections, images and labels checked; no model (seconds)
	kisbench check

smoke: setup  ## the whole pipeline offline with tiny models, in .smoke/
	HF_HUB_OFFLINE=1 kisbench smoke

test: setup  ## the test suite (what CI runs)
	HF_HUB_OFFLINE=1 python -m pytest

test-fast: setup  ## the tests without the slow (pipeline, server, browser) ones
	HF_HUB_OFFLINE=1 python -m pytest -m "not slow"

lint: setup  ## ruff (lint and format check)
	ruff check .
	ruff format --check .

check-remote: setup  ## is the DVC remote reachable, credentials accepted, bucket there?
	kisbench remote check $(if $(REMOTE),--remote $(REMOTE))

push: setup  ## check the DVC remote, then dvc push (embeddings, ranks)
	kisbench remote push $(if $(REMOTE),--remote $(REMOTE))

pull: setup  ## check the DVC remote, then dvc pull
	kisbench remote pull $(if $(REMOTE),--remote $(REMOTE))

plots: setup  ## dvc plots show -> dvc_plots/index.html, which works offline
	dvc plots show

vendor-vega: setup  ## re-make vendor/vega/ (offline plot page) from the pinned npm packages
	kisbench vendor-vega
