"""Shared fixtures. Every test runs offline: no hub call may even be attempted."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable
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
    from kisbench.models.testing.builders import make_all

    root = tmp_path_factory.mktemp("tiny_models")
    make_all(root)
    return root


@pytest.fixture(scope="session")
def smoke_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`make smoke`'s own command with a tiny model of every family (tests/every_family.yaml
    stacked on params.smoke.yaml), run once per session: the DVC pipeline tests share it,
    and those that change a workspace work on a copy (``smoke_copy``)."""
    out = tmp_path_factory.mktemp("smoke") / "ws"
    command = [sys.executable, "-m", "kisbench.tools.smoke", "--out", str(out)]
    command += ["--overrides", "params.smoke.yaml", "--overrides", "tests/every_family.yaml"]
    proc = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=1200)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return out


@pytest.fixture(scope="session")
def smoke_copy(smoke_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Path]:
    """Makes copies of the smoke run's workspace, git repository and DVC cache included
    (links kept as links, like the one to .venv-lavis)."""

    def copy(name: str) -> Path:
        return Path(shutil.copytree(smoke_run, tmp_path_factory.mktemp(name) / "ws", symlinks=True))

    return copy
