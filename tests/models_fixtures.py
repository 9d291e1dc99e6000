"""Fixtures of the tests/test_models_*.py files (loaded with ``pytest_plugins``)."""

from __future__ import annotations

from pathlib import Path

import pytest

from kisbench.models.testing.builders import TINY_MODELS, make_all

MAIN_ENV_TINY = [name for name in TINY_MODELS if name != "tiny_blip2"]


@pytest.fixture(scope="session")
def tiny_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny models of the main environment (LAVIS' is built by its own test module)."""
    root = tmp_path_factory.mktemp("tiny")
    make_all(root, seed=0, names=MAIN_ENV_TINY)
    return root
