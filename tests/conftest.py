"""Shared fixtures. Every test runs offline: no hub call may even be attempted."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("DVC_NO_ANALYTICS", "1")

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Every tiny model, built once per test session under a temporary folder."""
    from kisbench.models.tiny import make_all

    root = tmp_path_factory.mktemp("tiny_models")
    make_all(root)
    return root
