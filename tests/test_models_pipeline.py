"""`make smoke`'s command runs a tiny stand-in of every model family through the whole DVC
pipeline (with tests/every_family.yaml; `make smoke` itself leaves the LAVIS one out)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from kisbench.models.registry import FAMILIES

PARAMS = yaml.safe_load(Path("params.yaml").read_text())
SMOKE = yaml.safe_load(Path("params.smoke.yaml").read_text())
EVERY_FAMILY = yaml.safe_load(Path("tests/every_family.yaml").read_text())


def test_smoke_runs_only_tiny_models() -> None:
    assert len(SMOKE["run"]["models"]) >= 2, "pairs and fusion need two models"
    assert all(key.startswith("tiny_") for key in SMOKE["run"]["models"])


def test_the_tests_run_one_tiny_model_of_every_family() -> None:
    families = [PARAMS["models"][key]["family"] for key in EVERY_FAMILY["run"]["models"]]
    assert sorted(families) == sorted(FAMILIES)
    assert all(key.startswith("tiny_") for key in EVERY_FAMILY["run"]["models"])


def test_default_experiment_lists_the_ten_models() -> None:
    assert PARAMS["run"]["models"] == [
        "clip_b32", "blip2_vitl", "align", "siglip_so400m", "siglip_l16", "siglip_b16",
        "dfn5b_h14", "laion_g14", "laion_h14", "blip2_itm_g",
    ]  # fmt: skip
    assert {PARAMS["models"][k]["family"] for k in PARAMS["run"]["models"]} == set(FAMILIES)


@pytest.mark.slow
def test_smoke_pipeline_every_family(smoke_run: Path) -> None:
    out = smoke_run
    headline = json.loads((out / "metrics" / "kis.json").read_text())
    details = json.loads((out / "metrics" / "kis_details.json").read_text())
    labels = (out / "labels" / "demo.csv").read_text().splitlines()
    for key in EVERY_FAMILY["run"]["models"]:
        family = PARAMS["models"][key]["family"]
        feats = out / "data" / "features" / key / "demo"
        meta = json.loads((feats / "meta.json").read_text())
        assert meta["family"] == family and meta["count"] == 252
        vectors = np.load(feats / "embeddings.npy", mmap_mode="r")
        assert vectors.ndim == (3 if key == "tiny_blip2_hf" else 2), key
        info = json.loads((out / "data" / "ranks" / key / "demo" / "info.json").read_text())
        for labelset in ("short", "long"):
            qmeta = json.loads(
                (out / "data" / "queries" / key / "demo" / labelset / "meta.json").read_text()
            )
            assert qmeta["count"] == len(labels) - 1
            assert qmeta["truncated"] == len(qmeta["truncated_ids"]) == info["truncated"][labelset]
            assert details["demo"][labelset][key]["truncated_queries"] == qmeta["truncated"]
            assert key in headline["mrr"]["demo"][labelset]
