"""params.yaml, the one place an experiment is configured, read into typed, frozen sections.

Every key of every section is a field of a section dataclass: its type, its default (what a
missing key or section means; ``run``, ``models`` and ``collections`` are required), its
allowed values, and whether it can change a stage's output (``cache_key``) or only its
speed, memory or logging, with the reason (``why``); `kisbench.config.schema` has the rules.
An unknown or misspelt section or key, a value of the wrong type, outside its choices or
below its minimum is an :class:`InputError` naming the file and the dotted key (with the
closest valid key or value); every problem of a file is reported at once, one per line.

The sections live in one module per group of stages that read them: `core` (run, models,
collections: every stage), `embed` (the embed stages), `evaluation` (rank, evaluate, fusion,
render), `simulation` (simulate), `reset`. Each declares its sections in ``SECTIONS``
(name -> dataclass; `core` also ``ENTRIES`` and ``REQUIRED``).

Why they are found by name. Every stage imports this package, so it is in every stage's
static import closure (`kisbench.imports`), and so is all that it imports: if it imported
every section module, a key added to ``render`` would change a file the embed stages depend
on and re-embed every model on the GPU. So this module imports only the schema machinery
and `core`, and loads the other section modules by name (``pkgutil`` over the package's
folder, ``importlib.import_module``: the by-name loading that the model registry uses for the
family adapters, which the closure does not follow by design). A whole file is still checked
(an unknown section or key anywhere is an error), but checking cannot change an output.
What does change one is a section's defaults: so code that reads a section imports that
section's module itself (``from kisbench.config.embed import Embed``), which puts its schema
in that code's closure; the section classes are deliberately not re-exported from here. A
new section module is picked up without an edit here.

This is the bottom layer: it imports nothing of kisbench but the errors.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Mapping
from pathlib import Path
from types import ModuleType
from typing import Any

import yaml

from kisbench.config import core
from kisbench.config.core import Collection, Run, collection_entry
from kisbench.config.schema import (
    Config,
    UniqueKeyLoader,
    cache_key_names,
    check_section,
    hint,
    problems_error,
    show,
)
from kisbench.errors import InputError

DEFAULT = Path("params.yaml")


def _section_modules() -> list[ModuleType]:
    """`core` first, then every other module of this package that declares sections, in
    the order of their names."""
    found = sorted(
        info.name
        for info in pkgutil.iter_modules(__path__)
        if not info.name.startswith("_") and info.name not in ("core", "schema")
    )
    modules = [importlib.import_module(f"{__name__}.{name}") for name in found]
    return [core, *(m for m in modules if hasattr(m, "SECTIONS") or hasattr(m, "ENTRIES"))]


def _collect() -> tuple[dict[str, type], dict[str, Any], dict[str, str]]:
    sections: dict[str, type] = {}
    entries: dict[str, Any] = {}
    owner: dict[str, str] = {}
    for module in _section_modules():
        declared = {**getattr(module, "SECTIONS", {}), **getattr(module, "ENTRIES", {})}
        for name in declared:
            if name in owner:
                raise TypeError(
                    f"params section {name!r} is declared twice: {owner[name]}, {module.__name__}"
                )
            owner[name] = module.__name__
        sections |= getattr(module, "SECTIONS", {})
        entries |= getattr(module, "ENTRIES", {})
    return sections, entries, owner


# The sections that are one dataclass each (name -> dataclass); models and collections hold
# named entries (name -> the function that checks them).
SECTIONS, ENTRIES, _OWNER = _collect()
REQUIRED = core.REQUIRED
ALL_SECTIONS = (*REQUIRED, *(name for name in _OWNER if name not in REQUIRED))
# Checks across sections (a module's ``CHECKS``: functions of the parsed sections that append
# problems, e.g. a group in run.models), run once every section is read; found by name too.
_CHECKS = [check for module in _section_modules() for check in getattr(module, "CHECKS", ())]


def load_params(path: Path = DEFAULT) -> Config:
    """The params file at ``path``, checked; an InputError lists every problem in it."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path} not found: run stages from the repository root")
    try:
        raw = yaml.load(path.read_text(encoding="utf-8"), Loader=UniqueKeyLoader)
    except yaml.YAMLError as err:
        raise InputError(f"{path} is not valid YAML: {err}") from None
    return parse(raw, source=str(path))


def parse(raw: Any, source: str = "params.yaml") -> Config:
    """A params mapping (as YAML reads it) checked into a Config; ``source`` names it in
    messages."""
    if raw is None:
        raw = {}
    if not isinstance(raw, Mapping):
        raise InputError(f"{source}: expected a mapping of sections, got {show(raw)}")
    problems: list[str] = []
    for key in raw:
        if key not in ALL_SECTIONS:
            problems.append(f"unknown section {str(key)!r}{hint(key, ALL_SECTIONS)}")
    problems += [f"missing section {name!r}" for name in REQUIRED if name not in raw]
    values: dict[str, Any] = {}
    for name in ALL_SECTIONS:
        if name in ENTRIES:
            values[name] = ENTRIES[name](raw.get(name), problems)
        elif name in raw or name not in REQUIRED:
            values[name] = check_section(SECTIONS[name], raw.get(name), name, problems)
    for cross in _CHECKS:
        cross(values, problems)
    if problems:
        raise InputError(problems_error(source, problems))
    return Config(values, source=source)


def parse_section(name: str, raw: Any, source: str = "params.yaml") -> Any:
    """One dataclass section (``embed``, ``reset``, ...) from its mapping, checked."""
    if name not in SECTIONS:
        raise ValueError(f"{name!r} is not one of {', '.join(SECTIONS)}")
    problems: list[str] = []
    section = check_section(SECTIONS[name], raw, name, problems)
    if problems:
        raise InputError(problems_error(source, problems))
    return section


def cache_keys(section: str) -> list[str]:
    """The dotted names of the keys of ``section`` that can change a stage's output, which
    the stage's ``params`` in dvc.yaml must list. Every argument of a model entry and every
    key of a collection entry is such a key: for ``models`` and ``collections`` the answer is
    the section itself."""
    if section in ENTRIES:
        return [section]
    if section not in SECTIONS:
        raise ValueError(f"{section!r} is not one of {', '.join(ALL_SECTIONS)}")
    return [f"{section}.{name}" for name in cache_key_names(SECTIONS[section])]


def schema_module(section: str) -> str:
    """The module that declares ``section`` (``kisbench.config.embed`` for ``embed``)."""
    if section not in _OWNER:
        raise ValueError(f"{section!r} is not one of {', '.join(ALL_SECTIONS)}")
    return _OWNER[section]


__all__ = [
    "ALL_SECTIONS",
    "DEFAULT",
    "ENTRIES",
    "REQUIRED",
    "SECTIONS",
    "Collection",
    "Config",
    "InputError",
    "Run",
    "cache_keys",
    "collection_entry",
    "load_params",
    "parse",
    "parse_section",
    "schema_module",
]
