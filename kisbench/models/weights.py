"""Where a model's weights come from, and what exactly was loaded (for provenance)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kisbench.models.base import ModelError

LOCAL_DIR = "local-dir:"


@dataclass(frozen=True)
class Weights:
    source: str  # "local-dir", "hf-hub" or "open_clip-tag"
    name: str
    revision: str | None = None
    files: dict[str, str] = field(default_factory=dict)  # file name -> sha256
    load_kwargs: dict[str, Any] = field(default_factory=dict)


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def ensure_available(key: str, name: str, pretrained: str | None, revision: str | None) -> Weights:
    """Check that the weights can be had, before any library starts a slow download."""
    if name.startswith(LOCAL_DIR):
        folder = Path(name.removeprefix(LOCAL_DIR))
        if not (folder / "open_clip_config.json").is_file():
            raise ModelError(
                f"model {key!r}: local model folder {folder} is missing or has no "
                "open_clip_config.json; for the tiny test models run "
                "`python -m stages.tiny_models` (or `make smoke`)"
            )
        files = {p.name: sha256(p) for p in sorted(folder.iterdir()) if p.is_file()}
        return Weights(source="local-dir", name=str(folder), files=files)
    source = "hf-hub" if name.startswith("hf-hub:") else "open_clip-tag"
    return Weights(
        source=source, name=f"{name}/{pretrained}" if pretrained else name, revision=revision
    )


def describe_weights(weights: Weights) -> dict[str, Any]:
    return {
        "source": weights.source,
        "name": weights.name,
        "revision": weights.revision,
        "files": weights.files,
    }
