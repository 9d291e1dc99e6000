# kisbench: `make setup`, then `make smoke` (offline check), `make repro` (the real run).
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
BIN := $(CURDIR)/$(VENV)/bin
# A PyTorch wheel index for another CUDA (e.g. https://download.pytorch.org/whl/cu126);
# empty: PyPI's build (CUDA 13, driver >= 580).
TORCH_INDEX ?=
# The DVC remote for push/pull/check-remote; empty: core.remote in .dvc/config.
REMOTE ?=
# Debian packages that the slow tests start (sshd) or drive (headless Chromium).
SYSTEM_PACKAGES := openssh-server chromium

export PATH := $(BIN):$(PATH)
export DVC_NO_ANALYTICS := 1
export DVC_SITE_CACHE_DIR := $(CURDIR)/.dvc/tmp/site_cache
export HF_HUB_DISABLE_TELEMETRY := 1

.PHONY: setup repro smoke test test-fast lint help check-remote push pull plots vendor-vega \
	system-deps

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/'

setup: $(VENV)/.installed  ## create .venv with the pinned requirements

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

test-fast: setup  ## the tests without the slow (pipeline, server) ones
	HF_HUB_OFFLINE=1 python -m pytest -m "not slow"

lint: setup  ## ruff
	ruff check .

check-remote: setup  ## is the DVC remote reachable, credentials accepted, bucket there?
	python -m kisbench.remote check $(if $(REMOTE),--remote $(REMOTE))

push: setup  ## check the DVC remote, then dvc push (embeddings, ranks)
	python -m kisbench.remote push $(if $(REMOTE),--remote $(REMOTE))

pull: setup  ## check the DVC remote, then dvc pull
	python -m kisbench.remote pull $(if $(REMOTE),--remote $(REMOTE))

plots: setup  ## dvc plots show -> dvc_plots/index.html, which works offline
	dvc plots show

vendor-vega: setup  ## re-make vendor/vega/ (offline plot page) from the pinned npm packages
	python -m kisbench.plot_template

# CI runs this before `make setup`. As root with apt-get it installs what is missing;
# otherwise it only says what to install (the tests that need it then skip, with a reason).
system-deps:  ## Debian packages for the slow tests: openssh-server, chromium
	@missing=""; command -v sshd >/dev/null || [ -x /usr/sbin/sshd ] || missing="openssh-server"; \
	command -v chromium >/dev/null || missing="$$missing chromium"; \
	if [ -z "$$missing" ]; then echo "system packages present: $(SYSTEM_PACKAGES)"; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
	    apt-get install -y -qq --no-install-recommends $$missing; \
	else echo "missing:$$missing; install them as root: apt-get install$$missing"; fi
