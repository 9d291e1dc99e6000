"""A model's cache key: what, besides its params entry, decides what its embeddings are.

The registry imports each family's adapter by name, so the adapter is in no embed stage's
static import closure (`kisbench.imports`): that is what keeps an edit of one family from
invalidating every model's embeddings. Instead the `code-keys` stage writes, per model,
``data/code/<model>.json``: its family, the sha256 of every project file that its adapter
imports (and runs in another process), and the commit its weights are locked to; each
embed stage of the model depends on that file. The stage is cheap (no model library is
imported), and its outputs only change when something that model computes with changed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from kisbench import files, imports
from kisbench.models.registry import FAMILIES, Family, family_of
from kisbench.models.spec import ModelSpec


def family_files(family: Family, root: Path = Path(".")) -> list[Path]:
    """The project files a family's models compute with: its adapter's import closure and
    the modules it runs in a worker process."""
    return sorted(imports.closure([family.adapter, *family.runs], root))


def model_key(
    key: str, entry: dict[str, Any], revision: str | None, root: Path = Path(".")
) -> dict[str, Any]:
    """The content of ``data/code/<key>.json``."""
    family = family_of(ModelSpec.from_params(key, entry))
    return {
        "model": key,
        "family": family.name,
        "weights_revision": revision,
        "code": {str(p): files.sha256(Path(root) / p) for p in family_files(family, root)},
    }


__all__ = ["FAMILIES", "family_files", "model_key"]
