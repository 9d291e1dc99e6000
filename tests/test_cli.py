"""The installed `kisbench` command: its tools, and --help on each."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from kisbench.models.testing.builders import TINY_MODELS

REPO = Path(__file__).resolve().parents[1]
TOOLS = [
    "check",
    "smoke",
    "tiny-models",
    "label",
    "remote",
    "attribution",
    "vendor-vega",
    "weights",
    "models",
    "sweep",
]


def kisbench(*args: str) -> subprocess.CompletedProcess[str]:
    exe = shutil.which("kisbench", path=str(Path(sys.executable).parent))
    assert exe, "the kisbench command is not installed (make setup runs pip install -e .)"
    return subprocess.run([exe, *args], cwd=REPO, capture_output=True, text=True, timeout=120)


def test_kisbench_lists_its_tools():
    proc = kisbench("--help")
    assert proc.returncode == 0, proc.stderr
    listed = {line.split()[0] for line in proc.stdout.split("Commands:")[1].splitlines() if line}
    assert listed == set(TOOLS)


@pytest.mark.parametrize(
    "args",
    [[t] for t in TOOLS]
    + [["label", "serve"], ["label", "report"], ["remote", "check"], ["weights", "update"]]
    + [["models", "list"], ["models", "add"]],
)
def test_every_tool_has_help(args):
    proc = kisbench(*args, "--help")
    assert proc.returncode == 0, proc.stderr
    assert "Usage: kisbench " + " ".join(args) in proc.stdout


def test_tiny_models_help_names_every_builder():
    text = " ".join(kisbench("tiny-models", "--help").stdout.split())
    for name in TINY_MODELS:
        assert name in text
