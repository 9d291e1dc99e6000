"""Reading params.yaml, the one place an experiment is configured."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from kisbench.errors import InputError

DEFAULT = Path("params.yaml")


def load_params(path: Path = DEFAULT) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path} not found: run stages from the repository root")
    with open(path, encoding="utf-8") as f:
        params = yaml.safe_load(f) or {}
    for section in ("run", "models", "collections"):
        if section not in params:
            raise InputError(f"{path}: missing section {section!r}")
    return params


def collection_entry(params: dict[str, Any], name: str) -> dict[str, Any]:
    collections = params["collections"]
    if name not in collections:
        raise InputError(
            f"unknown collection {name!r}; params.yaml defines: {', '.join(collections)}"
        )
    return collections[name] or {}


def section(params: dict[str, Any], name: str) -> dict[str, Any]:
    return params.get(name) or {}
