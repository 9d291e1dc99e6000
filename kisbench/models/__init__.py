"""The model registry: a params.yaml entry names a family; the family's loader builds it.

Families are imported lazily, after a quick check of the weights (`weights.check`), so
that a missing download fails in seconds and a family whose libraries live in another
virtualenv (LAVIS) never breaks the others. This module imports no torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from kisbench.models.spec import ModelError, ModelSpec

if TYPE_CHECKING:
    from kisbench.models.base import EmbeddingModel

# family name -> "module:function"; each function is load(spec, device, precision) -> model
FAMILIES: dict[str, str] = {
    "open_clip": "kisbench.models.openclip:load",
    "align": "kisbench.models.align:load",
    "blip2_hf": "kisbench.models.blip2_hf:load",
    "blip2_lavis": "kisbench.models.blip2_lavis:load",
}


def check_model(key: str, entry: dict[str, Any]) -> ModelSpec:
    """The model's spec, once its family is known and its weights can be had (seconds, no
    torch): a stage calls this before its heavy imports, so a missing download fails fast."""
    spec = ModelSpec.from_params(key, entry)
    if spec.family not in FAMILIES:
        raise ModelError(
            f"model {key!r}: unknown family {spec.family!r}; known: {', '.join(sorted(FAMILIES))}"
        )
    from kisbench.models import hub, weights

    if weights.check(spec):
        hub.go_offline()
    return spec


def load_model(
    key: str, entry: dict[str, Any], *, device: str = "auto", precision: str = "auto"
) -> EmbeddingModel:
    spec = check_model(key, entry)
    module, func = FAMILIES[spec.family].split(":")
    loader = getattr(importlib.import_module(module), func)
    return loader(spec, device=device, precision=precision)


def model_entry(params: dict[str, Any], key: str) -> dict[str, Any]:
    """The params.yaml entry of model ``key``, or an error listing the known keys."""
    models = params.get("models", {})
    if key not in models:
        raise ModelError(f"unknown model key {key!r}; params.yaml defines: {', '.join(models)}")
    return models[key]


__all__ = ["FAMILIES", "ModelError", "ModelSpec", "check_model", "load_model", "model_entry"]
