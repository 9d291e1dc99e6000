"""The sections every stage reads: ``run`` (which models on which collections: the DVC stage
matrix), ``models`` and ``collections`` (named entries). The three are required.

Model entries are checked only as far as their ``family``; each family's own arguments are
checked by ``kisbench.models.registry.family_of``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from kisbench.config.schema import NO_DEFAULT, check_section, opt, show
from kisbench.errors import InputError

if TYPE_CHECKING:
    from kisbench.config.schema import Config

# DVC joins matrix values with '-' in stage names, so model and collection keys avoid it.
NAME = re.compile(r"[a-z0-9_]+")


@dataclass(frozen=True)
class Run:
    """Which models run on which collections: the DVC stage matrix."""

    models: list[str] = opt(
        NO_DEFAULT, cache_key=True, why="the models evaluated, fused and drawn together"
    )
    collections: list[str] = opt(
        NO_DEFAULT, cache_key=True, why="the collections evaluated, fused and drawn"
    )
    reset: list[str] = opt(
        [],
        cache_key=True,
        why="turns the RESET stages on (DVC gives them the collection) and with them the "
        "locking of reset.models' weights (code-keys)",
    )


@dataclass(frozen=True)
class Collection:
    """One collection's entry (it may be empty)."""

    xmax: int | None = opt(
        500,
        cache_key=True,
        minimum=1,
        why="where the cumulative graphs cut the x axis (null: no cut), drawn in the figures",
    )


def _models(raw: Any, problems: list[str]) -> dict[str, dict[str, Any]]:
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        problems.append(f"models: expected a mapping of model keys to entries, got {show(raw)}")
        return {}
    out = {}
    for key, entry in raw.items():
        where = f"models.{key}"
        _check_name(key, where, problems)
        if not isinstance(entry, Mapping):
            problems.append(f"{where}: expected a mapping with a 'family', got {show(entry)}")
        elif "family" not in entry:
            problems.append(f"missing key '{where}.family'")
        elif not isinstance(entry["family"], str):
            problems.append(f"{where}.family: expected a string, got {show(entry['family'])}")
        else:
            out[str(key)] = dict(entry)
    return out


def _collections(raw: Any, problems: list[str]) -> dict[str, Collection]:
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        problems.append(f"collections: expected a mapping of names to entries, got {show(raw)}")
        return {}
    out = {}
    for name, entry in raw.items():
        where = f"collections.{name}"
        _check_name(name, where, problems)
        out[str(name)] = check_section(Collection, entry, where, problems)
    return out


def _check_name(key: Any, where: str, problems: list[str]) -> None:
    if not isinstance(key, str) or not NAME.fullmatch(key):
        problems.append(f"{where}: a key uses only a-z, 0-9 and _ (DVC joins names with '-')")


def collection_entry(config: Config, name: str) -> Collection:
    """The entry of collection ``name``; a collection without one takes every key's default
    (xmax 500: the graphs show ranks up to 500, or the whole collection when it is smaller),
    so that a folder of images and a labels file are enough. A name that is neither an
    entry nor a folder is the images reader's error (and `kisbench check`'s)."""
    if not NAME.fullmatch(name):
        raise InputError(
            f"collection {name!r}: a name uses only a-z, 0-9 and _ (DVC joins names with '-'); "
            f"{config.source} defines: {', '.join(config.collections)}"
        )
    return config.collections.get(name) or Collection()


# The sections of this module (`kisbench.config` collects them): one dataclass each, and
# sections of named entries, checked by a function that appends its problems. Every key of
# a model or collection entry is a cache key.
SECTIONS: dict[str, type] = {"run": Run}
ENTRIES: dict[str, Callable[[Any, list[str]], dict[str, Any]]] = {
    "models": _models,
    "collections": _collections,
}
REQUIRED = ("run", "models", "collections")
