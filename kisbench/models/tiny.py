"""Tiny random-weight stand-ins for the real models, for tests and `make smoke`.

They are built from small configs with a fixed seed and saved to a local folder, then
loaded through exactly the code path of the real weights (open_clip's ``local-dir:``).
Their retrieval results are chance level: they check the pipeline, not the models.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import open_clip
import torch
from safetensors.torch import save_file

# A CLIP-style tower pair: built-in SimpleTokenizer (vocab 49408, BPE ships in the wheel).
TINY_CLIP: dict[str, Any] = {
    "model_cfg": {
        "embed_dim": 32,
        "vision_cfg": {
            "image_size": 64,
            "layers": 2,
            "width": 64,
            "patch_size": 16,
            "head_width": 32,
        },
        "text_cfg": {
            "context_length": 77,
            "vocab_size": 49408,
            "width": 64,
            "heads": 2,
            "layers": 2,
        },
    },
    "preprocess_cfg": {
        "size": 64,
        "mean": [0.48145466, 0.4578275, 0.40821073],
        "std": [0.26862954, 0.26130258, 0.27577711],
        "interpolation": "bicubic",
        "resize_mode": "shortest",
    },
}

# tiny_clip_b: the same architecture, other random weights, so that the smoke run has a
# second model for the pair tests, pairwise grids and fusion.
TINY_MODELS: dict[str, dict[str, Any]] = {"tiny_clip": TINY_CLIP, "tiny_clip_b": TINY_CLIP}


def make_tiny_openclip(folder: Path, config: dict[str, Any], seed: int = 0) -> Path:
    """Build a random-weight open_clip model from ``config`` and save it as a local-dir model.

    The config is written first and the model is built from it by open_clip's own
    ``local-dir:`` path, so construction and loading share one code path.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("*.safetensors"):
        old.unlink()
    (folder / "open_clip_config.json").write_text(json.dumps(config, indent=2) + "\n")
    torch.manual_seed(seed)
    model = open_clip.create_model(f"local-dir:{folder}")
    # safetensors refuses tensors that share memory; clone makes each one its own.
    state = {k: v.detach().clone().contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(folder / "open_clip_model.safetensors"))
    return folder


def make_all(root: Path, seed: int = 0) -> list[Path]:
    """Create every tiny model under ``root``/<name>; the i-th model gets seed ``seed + i``:
    same seed, same weights."""
    return [
        make_tiny_openclip(Path(root) / name, cfg, seed + i)
        for i, (name, cfg) in enumerate(TINY_MODELS.items())
    ]
