"""The project's messages through DVC (docs/collections.md "Checking a collection"): for each
of a new user's first mistakes, both `dvc repro` and `make repro` show the project's own
message within 10 s, and no embed stage (no model) starts. In copies of the smoke run."""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from kisbench.tools.smoke import dvc_env

pytestmark = pytest.mark.slow


def edit_params(ws: Path, change: Callable[[dict], None]) -> None:
    path = ws / "params.yaml"
    params = yaml.safe_load(path.read_text(encoding="utf-8"))
    change(params)
    path.write_text(yaml.safe_dump(params, sort_keys=False), encoding="utf-8")


def add_collection(params: dict, name: str, entry: bool) -> None:
    params["run"]["collections"].append(name)
    if entry:
        params["collections"][name] = {"xmax": 50}


def misspell_batch_size(params: dict) -> None:
    params["embed"]["batchsize"] = params["embed"].pop("batch_size")


def remove_labels(ws: Path) -> None:
    (ws / "labels" / "demo.csv").unlink()


# case -> (the mistake, what `dvc repro` shows, what `make repro` (kisbench check) shows)
CASES = {
    "missing collection folder": (
        lambda ws: edit_params(ws, lambda p: add_collection(p, "tux", entry=True)),
        "collection folder data/collections/tux/images does not exist",
        "collection folder data/collections/tux/images does not exist",
    ),
    "missing labels file": (
        remove_labels,
        "labels file labels/demo.csv does not exist",
        "labels file labels/demo.csv does not exist",
    ),
    "unknown model key": (
        lambda ws: edit_params(ws, lambda p: p["run"]["models"].append("tiny_clipp")),
        # code-keys or check, whichever DVC runs first, says it
        "unknown model key 'tiny_clipp'",
        "run.models: unknown model key 'tiny_clipp' (did you mean 'tiny_clip'?)",
    ),
    "unknown collection key": (
        lambda ws: edit_params(ws, lambda p: add_collection(p, "demoo", entry=False)),
        "unknown collection 'demoo' (did you mean 'demo'?)",
        "unknown collection 'demoo' (did you mean 'demo'?)",
    ),
    "misspelt param key": (
        lambda ws: edit_params(ws, misspell_batch_size),
        "unknown key 'embed.batchsize' (did you mean 'batch_size'?)",
        "unknown key 'embed.batchsize' (did you mean 'batch_size'?)",
    ),
}


def timed_run(ws: Path, *command: str) -> tuple[subprocess.CompletedProcess[str], float]:
    start = time.perf_counter()
    proc = subprocess.run(
        list(command), cwd=ws, env=dvc_env(), text=True, capture_output=True, timeout=120
    )
    return proc, time.perf_counter() - start


@pytest.mark.parametrize("case", sorted(CASES))
def test_the_projects_message_through_dvc_and_make(
    case: str, smoke_copy: Callable[[str], Path]
) -> None:
    ws = smoke_copy("check_" + case.replace(" ", "_"))
    mistake, dvc_message, check_message = CASES[case]
    mistake(ws)

    proc, seconds = timed_run(ws, shutil.which("dvc", path=dvc_env()["PATH"]) or "dvc", "repro")
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0, out
    assert dvc_message in out, out[-3000:]
    assert "Running stage 'embed" not in out and "Errno 2" not in out, out[-3000:]
    assert seconds < 10, f"dvc repro took {seconds:.1f} s"

    # `make repro` without `make setup` (the copy has no .venv): kisbench check, then dvc
    proc, seconds = timed_run(ws, "make", "-o", "setup", "repro")
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0, out
    assert check_message in out, out[-3000:]
    assert "Running stage" not in out, out[-3000:]  # dvc repro never started
    assert seconds < 10, f"make repro took {seconds:.1f} s"
