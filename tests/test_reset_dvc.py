"""The RESET stages in the real DVC pipeline: absent by default (a fresh clone has no RESET
data), and run by `dvc repro` once params.yaml names the keyframe collection, here with a
generated RESET-format data set, generated keyframe images and the tiny CLIP model."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from kisbench.tools.smoke import dvc, make_workspace
from tests.reset_fixture import PAPER, make_reset

REPO = Path(__file__).resolve().parents[1]
COLLECTION = "reset_fixture"


@pytest.mark.slow
def test_reset_stages_in_dvc(tmp_path: Path) -> None:
    overrides = yaml.safe_load((REPO / "params.smoke.yaml").read_text(encoding="utf-8"))
    ws = make_workspace(REPO, tmp_path / "ws", overrides)
    listed = dvc(ws, "stage", "list").stdout
    assert "reset" not in listed and "embed-images@" in listed

    fx = make_reset(ws / "data" / "reset", seed=2, models={})
    rng = np.random.default_rng(0)
    for path in fx.keyframes:
        if path in fx.missing:
            continue
        target = ws / "data" / "collections" / COLLECTION / "images" / path
        target.parent.mkdir(parents=True, exist_ok=True)
        pixels = rng.integers(0, 256, size=(24, 32, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(target)
    params = yaml.safe_load((ws / "params.yaml").read_text(encoding="utf-8"))
    params["run"]["reset"] = [COLLECTION]
    params["collections"][COLLECTION] = None
    params["reset"] |= {"models": ["tiny_clip"], "bootstrap": 50}
    (ws / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False), encoding="utf-8")

    listed = dvc(ws, "stage", "list").stdout
    for stage in ("embed-reset@tiny_clip-", "reset-distances@tiny_clip-", "reset@"):
        assert stage + COLLECTION in listed
    proc = dvc(ws, "repro", f"reset@{COLLECTION}", check=False)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]

    head = json.loads((ws / "metrics" / "reset.json").read_text())
    assert set(head["consistency_v1"]) == {*PAPER, "tiny_clip"}
    details = json.loads((ws / "metrics" / "reset_details.json").read_text())
    assert details["missing_keyframes"]["names"] == fx.missing
    assert (ws / "plots" / "figures" / "reset_consistency.png").is_file()
    assert (ws / "data" / "reset_results" / "triplets_extended.csv").is_file()
    status = dvc(ws, "status", f"reset@{COLLECTION}").stdout
    assert "up to date" in status, status


@pytest.mark.slow
def test_reset_from_its_files_alone_in_dvc(tmp_path: Path) -> None:
    """reset.models: []: no embed-reset or reset-distances stage, no keyframe, no model;
    `dvc repro reset@<collection>` scores RESET's own extractors from triplets.csv alone and
    runs nothing of the KIS pipeline."""
    overrides = yaml.safe_load((REPO / "params.smoke.yaml").read_text(encoding="utf-8"))
    ws = make_workspace(REPO, tmp_path / "ws", overrides)
    make_reset(ws / "data" / "reset", seed=2, models={})
    params = yaml.safe_load((ws / "params.yaml").read_text(encoding="utf-8"))
    params["run"]["reset"] = [COLLECTION]
    params["reset"] |= {"models": [], "bootstrap": 50}
    (ws / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False), encoding="utf-8")

    listed = dvc(ws, "stage", "list").stdout
    assert f"reset@{COLLECTION}" in listed
    assert "embed-reset@" not in listed and "reset-distances@" not in listed
    proc = dvc(ws, "repro", f"reset@{COLLECTION}", check=False)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "Running stage 'embed" not in proc.stdout and "code-keys" not in proc.stdout
    head = json.loads((ws / "metrics" / "reset.json").read_text())
    assert set(head["consistency_v1"]) == set(PAPER)
    assert not (ws / "data" / "collections" / COLLECTION).exists()
    assert not (ws / "data" / "features").exists()
