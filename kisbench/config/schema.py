"""The machinery of the params schema: how a section declares its keys, and how a mapping
read from YAML is checked against it.

A section is a frozen dataclass whose every field is declared with :func:`opt`: its type, its
default (:data:`NO_DEFAULT`: the key is required), its allowed values (``choices``, a
``minimum``), and whether it can change a stage's output (``cache_key``: DVC must re-run the
stage when it changes) or only its speed, memory or logging, with the reason (``why``).

:func:`check_section` converts one mapping into such a dataclass and appends every problem
(an unknown or misspelt key, with the closest valid one; a value of the wrong type, outside
its choices or below its minimum) to a list, so that a whole file's problems are reported at
once. Nothing here names a section: it changes only when the rules change, and it sits in
every stage's import closure.
"""

from __future__ import annotations

import difflib
import types
from collections.abc import Hashable, Mapping
from dataclasses import MISSING, FrozenInstanceError, field, fields
from functools import cache
from typing import Any, Union, get_args, get_origin, get_type_hints

import yaml

NO_DEFAULT: Any = object()


def opt(
    default: Any,
    *,
    cache_key: bool,
    why: str,
    choices: tuple[str, ...] = (),
    minimum: float | None = None,
) -> Any:
    """A params key: ``choices`` and ``minimum`` apply to the value (to each item of a list)."""
    meta = {"cache_key": cache_key, "why": why, "choices": choices, "minimum": minimum}
    if default is NO_DEFAULT:
        return field(metadata=meta)
    if isinstance(default, list):
        return field(default_factory=lambda: list(default), metadata=meta)
    return field(default=default, metadata=meta)


def cache_key_names(cls: type) -> list[str]:
    """The keys of a section dataclass that can change a stage's output."""
    return [f.name for f in fields(cls) if f.metadata["cache_key"]]


class Config:
    """A whole params file, checked: one attribute per section (``p.embed.batch_size``,
    ``p.run.models``; a section missing from the file holds its defaults). ``p.models`` maps
    model keys to their raw entries (family + arguments), ``p.collections`` collection names
    to their entries; ``p.source`` names the file in messages. Frozen, like its sections.

    The sections are whatever the section modules of :mod:`kisbench.config` declare, so this
    class names none of them."""

    def __init__(self, sections: Mapping[str, Any], source: str = "params.yaml") -> None:
        object.__setattr__(self, "_sections", dict(sections))
        object.__setattr__(self, "source", source)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") or name == "_sections":
            raise AttributeError(name)
        try:
            return self._sections[name]
        except KeyError:
            raise AttributeError(
                f"params have no section {name!r}; sections: {', '.join(self._sections)}"
            ) from None

    def __setattr__(self, name: str, value: Any) -> None:
        raise FrozenInstanceError(f"cannot assign to field {name!r}")

    def __delattr__(self, name: str) -> None:
        raise FrozenInstanceError(f"cannot delete field {name!r}")

    def __eq__(self, other: object) -> bool:  # the source is only for messages
        return isinstance(other, Config) and self._sections == other._sections

    __hash__ = None  # type: ignore[assignment]  # sections hold lists and dicts

    def __dir__(self) -> list[str]:
        return [*super().__dir__(), *self._sections]

    def __repr__(self) -> str:
        inner = ", ".join(f"{k}={v!r}" for k, v in self._sections.items())
        return f"Config({inner}, source={self.source!r})"


def problems_error(source: str, problems: list[str]) -> str:
    """The message of an InputError: one problem a line, each naming the file."""
    return "\n".join(f"{source}: {p}" for p in problems)


def check_section(cls: type, raw: Any, where: str, problems: list[str]) -> Any:
    """``cls`` from the mapping ``raw`` (None: every default); problems are appended, and
    then the result is None."""
    if raw is None:
        raw = {}
    if not isinstance(raw, Mapping):
        problems.append(f"{where}: expected a mapping of keys, got {show(raw)}")
        return None
    known = [f.name for f in fields(cls)]
    before = len(problems)
    for key in raw:
        if key not in known:
            problems.append(f"unknown key '{where}.{key}'{hint(key, known)}")
    values = {}
    hints = _hints(cls)
    for f in fields(cls):
        dotted = f"{where}.{f.name}"
        if f.name not in raw:
            if f.default is MISSING and f.default_factory is MISSING:
                problems.append(f"missing key {dotted!r}")
            continue
        value, problem = _value(raw[f.name], hints[f.name], f.metadata)
        if problem:
            problems.append(f"{dotted}: {problem}")
        else:
            values[f.name] = value
    return cls(**values) if len(problems) == before else None


_BAD: Any = object()


@cache
def _hints(cls: type) -> dict[str, Any]:
    return get_type_hints(cls)


def _value(value: Any, tp: Any, meta: Mapping[str, Any]) -> tuple[Any, str | None]:
    """The value converted to ``tp`` (an int where a float is expected), or a problem."""
    converted = _convert(value, tp)
    if converted is _BAD:
        return None, f"expected {_type_name(tp)}, got {show(value)}"
    choices, minimum = meta["choices"], meta["minimum"]
    for item in converted if isinstance(converted, list) else [converted]:
        if item is None:
            continue
        if choices and item not in choices:
            close = _close(item, choices)
            extra = f" (did you mean {close!r}?)" if close else ""
            return None, f"expected one of {', '.join(choices)}, got {item!r}{extra}"
        if minimum is not None and item < minimum:
            return None, f"expected at least {minimum:g}, got {show(item)}"
    return converted, None


def _convert(value: Any, tp: Any) -> Any:
    origin, args = get_origin(tp), get_args(tp)
    if origin in (Union, types.UnionType):
        if value is None:
            return None if type(None) in args else _BAD
        (inner,) = [a for a in args if a is not type(None)]
        return _convert(value, inner)
    if value is None:
        return _BAD
    if origin is list:
        if not isinstance(value, list):
            return _BAD
        items = [_convert(v, args[0]) for v in value]
        return _BAD if any(i is _BAD for i in items) else items
    if tp is bool:
        return value if isinstance(value, bool) else _BAD
    if isinstance(value, bool):  # YAML's true/false is never a number
        return _BAD
    if tp is int:
        return value if isinstance(value, int) else _BAD
    if tp is float:
        return float(value) if isinstance(value, int | float) else _BAD
    if tp is str:
        return value if isinstance(value, str) else _BAD
    raise TypeError(f"kisbench.config: no check for field type {tp!r}")


_KINDS = {bool: "true or false", int: "an integer", float: "a number", str: "a string"}
_PLURAL = {bool: "booleans", int: "integers", float: "numbers", str: "strings"}


def _type_name(tp: Any) -> str:
    origin, args = get_origin(tp), get_args(tp)
    if origin in (Union, types.UnionType):
        (inner,) = [a for a in args if a is not type(None)]
        return f"{_type_name(inner)} or null"
    if origin is list:
        return f"a list of {_PLURAL[args[0]]}"
    return _KINDS[tp]


def show(value: Any) -> str:
    """A value as the user wrote it, and what YAML made of it."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"{str(value).lower()} (a boolean)"
    kind = {int: "an integer", float: "a number", str: "a string", list: "a list"}.get(
        type(value), "a mapping" if isinstance(value, Mapping) else type(value).__name__
    )
    text = repr(value)
    return f"{text if len(text) <= 60 else text[:57] + '...'} ({kind})"


def _close(key: Any, valid: Any) -> str | None:
    close = difflib.get_close_matches(str(key), list(valid), n=1, cutoff=0.6)
    return close[0] if close else None


def hint(key: Any, valid: Any) -> str:
    """`` (did you mean 'x'?)``, or the valid names when none is close."""
    close = _close(key, valid)
    return f" (did you mean {close!r}?)" if close else f" (valid: {', '.join(valid)})"


class UniqueKeyLoader(yaml.SafeLoader):
    """PyYAML keeps the last of two equal keys silently; a second ``embed:`` section would
    hide the first."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if not isinstance(key, Hashable):
                continue  # SafeLoader's own error follows
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r}", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)
