"""The tiny random-weight open_clip model, built once per test module into a temp folder."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from kisbench.data.images import load_rgb
from kisbench.data.store import EmbeddingSet
from kisbench.models import load_model
from kisbench.models.base import EmbeddingModel
from kisbench.models.testing.builders import make_tiny_clip

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def build(folder: Path) -> Path:
    return make_tiny_clip(folder / "tiny_clip", seed=0)


def load(folder: Path, device: str = "cpu", **kwargs: Any) -> EmbeddingModel:
    entry = {"family": "open_clip", "model": f"local-dir:{folder}"}
    return load_model("tiny_clip", entry, device=device, **kwargs)


def reference_embedding(model: EmbeddingModel, path: Path) -> np.ndarray:
    """The model's own preprocessing (its image_transform on the Pillow picture), one image
    at a time: what every faster path is compared with."""
    pixels = model.image_transform(load_rgb(path)).unsqueeze(0)
    with torch.inference_mode():
        return model.encode_images(pixels)[0]


def worst_agreement(
    model: EmbeddingModel, result: EmbeddingSet, ids: list[str], paths: list[Path]
) -> tuple[str, float]:
    """The image whose embedding in ``result`` agrees least (cosine) with
    :func:`reference_embedding` by ``model``, and that cosine."""
    by_id = dict(zip(ids, paths, strict=True))
    cosines = {
        i: float(v @ reference_embedding(model, by_id[i]))
        for i, v in zip(result.ids, result.vectors, strict=True)
    }
    worst = min(cosines, key=cosines.get)
    return worst, cosines[worst]
