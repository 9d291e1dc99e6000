"""The model registry: a params.yaml entry names a family; the family's loader builds it.

Families are imported lazily, so that a family whose libraries live in another
virtualenv (LAVIS) never breaks the others.
"""

from __future__ import annotations

import importlib
from typing import Any

from kisbench.models.base import EmbeddingModel, ModelError, ModelSpec

# family name -> "module:function"; each function is load(spec, device, precision) -> model
FAMILIES: dict[str, str] = {
    "open_clip": "kisbench.models.openclip:load",
}


def load_model(
    key: str, entry: dict[str, Any], *, device: str = "auto", precision: str = "auto"
) -> EmbeddingModel:
    spec = ModelSpec.from_params(key, entry)
    if spec.family not in FAMILIES:
        raise ModelError(
            f"model {key!r}: unknown family {spec.family!r}; known: {', '.join(sorted(FAMILIES))}"
        )
    module, func = FAMILIES[spec.family].split(":")
    loader = getattr(importlib.import_module(module), func)
    return loader(spec, device=device, precision=precision)


def model_entry(params: dict[str, Any], key: str) -> dict[str, Any]:
    """The params.yaml entry of model ``key``, or an error listing the known keys."""
    models = params.get("models", {})
    if key not in models:
        raise ModelError(f"unknown model key {key!r}; params.yaml defines: {', '.join(models)}")
    return models[key]


__all__ = ["EmbeddingModel", "ModelError", "ModelSpec", "load_model", "model_entry"]
