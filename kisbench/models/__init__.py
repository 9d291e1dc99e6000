"""The model registry's front: a params.yaml entry names a family (`registry.FAMILIES`);
the family's adapter builds the model.

Adapters are imported by name, after a quick check of the weights (`hub.require`), so that
a missing download fails in seconds and a family whose libraries live in another
virtualenv (LAVIS) never breaks the others. This module imports no torch.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kisbench.errors import ModelError
from kisbench.models.spec import ModelSpec

if TYPE_CHECKING:
    from kisbench.config import Config
    from kisbench.models.base import EmbeddingModel


def check_model(key: str, entry: dict[str, Any]) -> ModelSpec:
    """The model's spec, once its family and arguments are valid and its weights can be had
    (seconds, no torch): a stage calls this before its heavy imports, so a missing download
    fails fast."""
    from kisbench.models import hub, registry

    spec = ModelSpec.from_params(key, entry)
    family = registry.family_of(spec)
    if hub.require(spec.key, family.needs(spec)):
        hub.go_offline()
    return spec


def load_model(
    key: str, entry: dict[str, Any], *, device: str = "auto", precision: str = "auto"
) -> EmbeddingModel:
    from kisbench.models.registry import FAMILIES

    spec = check_model(key, entry)
    adapter = importlib.import_module(FAMILIES[spec.family].adapter)
    return adapter.load(spec, device=device, precision=precision)


def model_entry(
    params: Config | dict[str, Any], key: str, lock: Path | None = None
) -> dict[str, Any]:
    """The params.yaml entry of model ``key``, or an error listing the known keys; a hub
    model's entry gets the ``revision`` that ``lock`` (default: weights.lock.yaml) holds for it
    (`kisbench.models.lock`), so every stage loads the locked commit. A missing lock file
    locks nothing.

    ``params`` is a loaded file or, as YAML reads one, a mapping; this layer does not import
    the config package, which would put it in every family's code key."""
    from kisbench.models import lock as weights_lock

    models = params.get("models", {}) if isinstance(params, Mapping) else params.models
    if key not in models:
        raise ModelError(f"unknown model key {key!r}; params.yaml defines: {', '.join(models)}")
    return weights_lock.pinned_entry(key, models[key], lock or weights_lock.DEFAULT)


__all__ = ["ModelError", "ModelSpec", "check_model", "load_model", "model_entry"]
