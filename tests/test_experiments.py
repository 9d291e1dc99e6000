"""docs/evaluation.md "Comparing experiments": `dvc exp run --temp -S` and a queued run
(`--queue`, `dvc queue start`) leave params.yaml byte for byte as it was (comments, flow
lists), after a successful and after a failed experiment; a plain `dvc exp run -S` does
not (the reason the docs point to the other two). In a copy of the smoke run."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from kisbench.tools.smoke import dvc

pytestmark = pytest.mark.slow


def commented(ws: Path) -> bytes:
    """The copy's params.yaml (same values) written as the repository's is: a comment block,
    a flow list over two lines, inline comments."""
    params = yaml.safe_load((ws / "params.yaml").read_text(encoding="utf-8"))
    text = yaml.safe_dump(params, sort_keys=False)
    models = params["run"]["models"]
    block = "\n".join(f"  - {m}" for m in models) + "\n"
    assert block in text
    half = len(models) // 2
    flow = f"  models: [{', '.join(models[:half])},\n           {', '.join(models[half:])}]\n"
    text = text.replace("  models:\n" + block, "  # result: the models\n" + flow, 1)
    text = text.replace("  top_images: 5\n", "  top_images: 5   # result: best images shown\n")
    assert "# result: best images shown" in text
    out = "# kisbench parameters\n# (a comment block)\n\n" + text
    assert yaml.safe_load(out) == params  # the same values: nothing re-runs for the layout
    return out.encode()


def git(ws: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=ws, check=True, capture_output=True)


def test_params_stay_byte_identical(smoke_copy: Callable[[str], Path]) -> None:
    ws = smoke_copy("experiments")
    path = ws / "params.yaml"
    original = commented(ws)
    path.write_bytes(original)
    git(ws, "add", "-A")
    git(ws, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "commented params")

    ok = dvc(ws, "exp", "run", "--temp", "-S", "render.top_images=4", check=False)
    assert ok.returncode == 0, ok.stdout[-3000:] + ok.stderr[-3000:]
    assert path.read_bytes() == original
    bad = dvc(ws, "exp", "run", "--temp", "-S", "render.top_images=0", check=False)
    assert bad.returncode != 0
    assert "render.top_images: expected at least 1" in bad.stdout + bad.stderr
    assert path.read_bytes() == original

    for value in ("3", "0"):
        dvc(ws, "exp", "run", "--queue", "-S", f"render.top_images={value}")
    assert path.read_bytes() == original
    dvc(ws, "queue", "start")
    deadline = time.monotonic() + 600
    while True:
        status = dvc(ws, "queue", "status").stdout
        if not any(word in status for word in ("Queued", "Running")):
            break
        assert time.monotonic() < deadline, status
        time.sleep(3)
    assert status.count("Success") == 1 and status.count("Failed") == 1, status
    assert path.read_bytes() == original
    # what the docs warn of: in the workspace, a failed run leaves its override in the file
    dvc(ws, "exp", "run", "-S", "render.top_images=0", check=False)
    assert path.read_bytes() != original
    assert yaml.safe_load(path.read_text(encoding="utf-8"))["render"]["top_images"] == 0
