"""params.yaml, the one place an experiment is configured, read into typed, frozen sections.

Every key of every section is a field below: its type, its default (what a missing key or
section means; ``run``, ``models`` and ``collections`` are required), its allowed values, and
whether it can change a stage's output (metadata ``cache_key``: DVC must re-run the stage
when it changes) or only its speed, memory or logging, with the reason (``why``).

An unknown or misspelt key, a value of the wrong type, outside its choices or below its
minimum is an :class:`InputError` naming the file and the dotted key (with the closest valid
key or value); every problem of a file is reported at once, one per line.

This is the bottom layer: it imports nothing of kisbench but the errors. Model entries are
checked only as far as their ``family``; each family's own arguments are checked by
``kisbench.models.registry.family_of``.
"""

from __future__ import annotations

import difflib
import re
import types
from collections.abc import Hashable, Mapping
from dataclasses import MISSING, dataclass, field, fields
from functools import cache
from pathlib import Path
from typing import Any, Union, get_args, get_origin, get_type_hints

import yaml

from kisbench.errors import InputError

DEFAULT = Path("params.yaml")

PRECISIONS = ("auto", "fp32", "fp16", "bf16")
DECODERS = ("auto", "device", "pil")
ON_UNREADABLE = ("fail", "skip")
STORE_DTYPES = ("float32", "float16")
# kisbench.evaluation.metrics.metric_names(), which this layer cannot import (the tests check
# that the two agree).
METRICS = ("r@1", "r@5", "r@10", "r@50", "r@100", "mrr", "median_rank", "mean_rank")
FUSION_METHODS = ("rrf", "zscore", "minmax")
TIE_POLICIES = ("left", "exclude", "half")
# DVC joins matrix values with '-' in stage names, so model and collection keys avoid it.
NAME = re.compile(r"[a-z0-9_]+")

_REQUIRED: Any = object()


def _opt(
    default: Any,
    *,
    cache_key: bool,
    why: str,
    choices: tuple[str, ...] = (),
    minimum: float | None = None,
) -> Any:
    """A params key: ``choices`` and ``minimum`` apply to the value (to each item of a list)."""
    meta = {"cache_key": cache_key, "why": why, "choices": choices, "minimum": minimum}
    if default is _REQUIRED:
        return field(metadata=meta)
    if isinstance(default, list):
        return field(default_factory=lambda: list(default), metadata=meta)
    return field(default=default, metadata=meta)


@dataclass(frozen=True)
class Run:
    """Which models run on which collections: the DVC stage matrix."""

    models: list[str] = _opt(
        _REQUIRED, cache_key=True, why="the models evaluated, fused and drawn together"
    )
    collections: list[str] = _opt(
        _REQUIRED, cache_key=True, why="the collections evaluated, fused and drawn"
    )
    reset: list[str] = _opt(
        [],
        cache_key=True,
        why="turns the RESET stages on (DVC gives them the collection) and with them the "
        "locking of reset.models' weights (code-keys)",
    )


@dataclass(frozen=True)
class Collection:
    """One collection's entry (it may be empty)."""

    xmax: int | None = _opt(
        500,
        cache_key=True,
        minimum=1,
        why="where the cumulative graphs cut the x axis (null: no cut), drawn in the figures",
    )


@dataclass(frozen=True)
class Embed:
    """How the embed-images and embed-queries stages run the models."""

    device: str = _opt(
        "auto", cache_key=True, why="CPU and GPU kernels round differently (auto: cuda if any)"
    )
    precision: str = _opt(
        "auto",
        cache_key=True,
        choices=PRECISIONS,
        why="the dtype the model computes in (auto: bf16 on a GPU, fp32 on a CPU)",
    )
    batch_size: int = _opt(
        64,
        cache_key=True,
        minimum=1,
        why="images or texts per forward pass: the batch's make-up can change float round-off",
    )
    chunk_size: int = _opt(
        4096,
        cache_key=False,
        minimum=1,
        why="images per resumable chunk, rounded up to whole batches: the batches, hence the "
        "numbers, are the same for any chunk size; a killed run loses at most one chunk",
    )
    workers: int | None = _opt(
        None,
        cache_key=False,
        minimum=0,
        why="decoding processes (pil) or file-reading threads (device), null: CPU count (per "
        "process under torchrun) - 1, at most 16; each image decodes alike, batches keep order",
    )
    decode: str = _opt(
        "auto",
        cache_key=True,
        choices=DECODERS,
        why="the decoder and resizer (device: nvJPEG + GPU resize; pil) give different pixels",
    )
    draft: bool = _opt(
        True,
        cache_key=True,
        why="pil: JPEGs far larger than the model input decoded at reduced size (other pixels)",
    )
    on_unreadable: str = _opt(
        "fail",
        cache_key=True,
        choices=ON_UNREADABLE,
        why="with unreadable images, skip writes embeddings without them and fail writes none "
        "(finished chunks are kept either way: switching recomputes nothing)",
    )
    max_pixels: int = _opt(
        178_956_970,  # 2 * PIL.Image.MAX_IMAGE_PIXELS, where Pillow itself refuses an image
        cache_key=True,
        minimum=1,
        why="larger images are refused (decompression bombs): which images are embedded",
    )
    store_dtype: str = _opt(
        "float32",
        cache_key=True,
        choices=STORE_DTYPES,
        why="the dtype the embeddings are stored in",
    )


@dataclass(frozen=True)
class Rank:
    """The rank stage."""

    device: str = _opt(
        "auto", cache_key=True, why="scoring device: CPU and GPU matrix products round differently"
    )
    top_k: int = _opt(
        10, cache_key=True, minimum=0, why="best image ids kept per query (the top_ids column)"
    )


@dataclass(frozen=True)
class Evaluate:
    """The evaluate stage; fusion and render take the headline and the bootstrap from here."""

    headline: str = _opt(
        "mrr",
        cache_key=True,
        choices=METRICS,
        why="the one metric per model/collection/labelset in metrics/kis.json",
    )
    bootstrap: int = _opt(
        1000,
        cache_key=True,
        minimum=1,
        why="resamples for the 95% confidence intervals and paired tests",
    )
    seed: int = _opt(0, cache_key=True, minimum=0, why="the bootstrap's random seed")
    top_models: int = _opt(
        5,
        cache_key=True,
        minimum=1,
        why="N: the best N models of each graph enter the pair tests and grids",
    )


@dataclass(frozen=True)
class Fusion:
    """The fusion stage."""

    methods: list[str] = _opt(
        list(FUSION_METHODS),
        cache_key=True,
        choices=FUSION_METHODS,
        why="reciprocal rank fusion; per-query z-score / min-max sums: the retrievers built",
    )
    rrf_k: float = _opt(
        60.0, cache_key=True, minimum=0, why="RRF constant: sum over models of 1 / (rrf_k + rank)"
    )
    device: str = _opt(
        "auto", cache_key=True, why="scoring device: CPU and GPU matrix products round differently"
    )
    memory_mb: int = _opt(
        512,
        cache_key=False,
        minimum=1,
        why="score memory: beyond it scores spill to a temporary memory map and queries are "
        "fused in blocks; each query is fused on its own, so the numbers are the same",
    )


@dataclass(frozen=True)
class Render:
    """The render stage (figures and report)."""

    examples: int = _opt(
        3,
        cache_key=True,
        minimum=0,
        why="queries in the qualitative figures (where two models disagree most)",
    )
    example_ids: list[str] = _opt(
        [], cache_key=True, why="or show these query ids (the labels' ID column, quoted)"
    )
    top_images: int = _opt(5, cache_key=True, minimum=1, why="best images shown per model")
    workers: int | None = _opt(
        None,
        cache_key=False,
        minimum=1,
        why="processes drawing figures, null: the usable CPU cores; each figure is drawn alike",
    )


@dataclass(frozen=True)
class Reset:
    """The RESET experiment (README "RESET"): its files and how it is scored."""

    participants: str = _opt(
        "data/reset/participants.csv", cache_key=True, why="RESET's participants file"
    )
    judgements: str = _opt(
        "data/reset/triplet_judgements.csv", cache_key=True, why="RESET's judgements file"
    )
    triplets: str = _opt("data/reset/triplets.csv", cache_key=True, why="RESET's triplets file")
    models: list[str] = _opt(
        [], cache_key=True, why="the models scored next to RESET's extractors (empty: none run)"
    )
    ties: str = _opt(
        "left",
        cache_key=True,
        choices=TIE_POLICIES,
        why="a distance tie: left (the thesis), exclude, or half (half agreement)",
    )
    min_judgements: int = _opt(
        2,
        cache_key=True,
        minimum=1,
        why="variant 2 scores triplets with at least this many judgements",
    )
    bootstrap: int = _opt(
        1000,
        cache_key=True,
        minimum=1,
        why="resamples for the 95% confidence intervals (over judgements/triplets)",
    )
    seed: int = _opt(0, cache_key=True, minimum=0, why="the bootstrap's random seed")


# The sections that are one dataclass each; models and collections hold named entries.
SECTIONS: dict[str, type] = {
    "run": Run,
    "embed": Embed,
    "rank": Rank,
    "evaluate": Evaluate,
    "fusion": Fusion,
    "render": Render,
    "reset": Reset,
}
REQUIRED = ("run", "models", "collections")
ALL_SECTIONS = (*REQUIRED, *(name for name in SECTIONS if name not in REQUIRED))


@dataclass(frozen=True)
class Config:
    """A whole params file. ``models`` entries are the raw mappings (family + arguments)."""

    run: Run
    models: dict[str, dict[str, Any]]
    collections: dict[str, Collection]
    embed: Embed = field(default_factory=Embed)
    rank: Rank = field(default_factory=Rank)
    evaluate: Evaluate = field(default_factory=Evaluate)
    fusion: Fusion = field(default_factory=Fusion)
    render: Render = field(default_factory=Render)
    reset: Reset = field(default_factory=Reset)
    source: str = field(default="params.yaml", compare=False)  # for messages


def load_params(path: Path = DEFAULT) -> Config:
    """The params file at ``path``, checked; an InputError lists every problem in it."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path} not found: run stages from the repository root")
    try:
        raw = yaml.load(path.read_text(encoding="utf-8"), Loader=_UniqueKeyLoader)
    except yaml.YAMLError as err:
        raise InputError(f"{path} is not valid YAML: {err}") from None
    return parse(raw, source=str(path))


def parse(raw: Any, source: str = "params.yaml") -> Config:
    """A params mapping (as YAML reads it) checked into a Config; ``source`` names it in
    messages."""
    if raw is None:
        raw = {}
    if not isinstance(raw, Mapping):
        raise InputError(f"{source}: expected a mapping of sections, got {_show(raw)}")
    problems: list[str] = []
    for key in raw:
        if key not in ALL_SECTIONS:
            problems.append(f"unknown section {str(key)!r}{_hint(key, ALL_SECTIONS)}")
    problems += [f"missing section {name!r}" for name in REQUIRED if name not in raw]
    sections = {
        name: _section(cls, raw.get(name), name, problems)
        for name, cls in SECTIONS.items()
        if name in raw or name not in REQUIRED
    }
    models = _models(raw.get("models"), problems)
    collections = _collections(raw.get("collections"), problems)
    if problems:
        raise InputError("\n".join(f"{source}: {p}" for p in problems))
    return Config(models=models, collections=collections, source=source, **sections)


def parse_section(name: str, raw: Any, source: str = "params.yaml") -> Any:
    """One dataclass section (``embed``, ``reset``, ...) from its mapping, checked."""
    if name not in SECTIONS:
        raise ValueError(f"{name!r} is not one of {', '.join(SECTIONS)}")
    problems: list[str] = []
    section = _section(SECTIONS[name], raw, name, problems)
    if problems:
        raise InputError("\n".join(f"{source}: {p}" for p in problems))
    return section


def collection_entry(config: Config, name: str) -> Collection:
    """The entry of collection ``name``, or an error listing the collections defined."""
    if name not in config.collections:
        raise InputError(
            f"unknown collection {name!r}; {config.source} defines: {', '.join(config.collections)}"
        )
    return config.collections[name]


def cache_keys(section: str) -> list[str]:
    """The dotted names of the keys of ``section`` that can change a stage's output, which
    the stage's ``params`` in dvc.yaml must list. Every argument of a model entry and every
    key of a collection entry is such a key: for ``models`` and ``collections`` the answer is
    the section itself."""
    if section in ("models", "collections"):
        return [section]
    if section not in SECTIONS:
        raise ValueError(f"{section!r} is not one of {', '.join(ALL_SECTIONS)}")
    return [f"{section}.{f.name}" for f in fields(SECTIONS[section]) if f.metadata["cache_key"]]


def _section(cls: type, raw: Any, where: str, problems: list[str]) -> Any:
    """``cls`` from the mapping ``raw`` (None: every default); problems are appended, and
    then the result is None."""
    if raw is None:
        raw = {}
    if not isinstance(raw, Mapping):
        problems.append(f"{where}: expected a mapping of keys, got {_show(raw)}")
        return None
    known = [f.name for f in fields(cls)]
    before = len(problems)
    for key in raw:
        if key not in known:
            problems.append(f"unknown key '{where}.{key}'{_hint(key, known)}")
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


def _models(raw: Any, problems: list[str]) -> dict[str, dict[str, Any]]:
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        problems.append(f"models: expected a mapping of model keys to entries, got {_show(raw)}")
        return {}
    out = {}
    for key, entry in raw.items():
        where = f"models.{key}"
        _check_name(key, where, problems)
        if not isinstance(entry, Mapping):
            problems.append(f"{where}: expected a mapping with a 'family', got {_show(entry)}")
        elif "family" not in entry:
            problems.append(f"missing key '{where}.family'")
        elif not isinstance(entry["family"], str):
            problems.append(f"{where}.family: expected a string, got {_show(entry['family'])}")
        else:
            out[str(key)] = dict(entry)
    return out


def _collections(raw: Any, problems: list[str]) -> dict[str, Collection]:
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        problems.append(f"collections: expected a mapping of names to entries, got {_show(raw)}")
        return {}
    out = {}
    for name, entry in raw.items():
        where = f"collections.{name}"
        _check_name(name, where, problems)
        out[str(name)] = _section(Collection, entry, where, problems)
    return out


def _check_name(key: Any, where: str, problems: list[str]) -> None:
    if not isinstance(key, str) or not NAME.fullmatch(key):
        problems.append(f"{where}: a key uses only a-z, 0-9 and _ (DVC joins names with '-')")


_BAD: Any = object()


@cache
def _hints(cls: type) -> dict[str, Any]:
    return get_type_hints(cls)


def _value(value: Any, tp: Any, meta: Mapping[str, Any]) -> tuple[Any, str | None]:
    """The value converted to ``tp`` (an int where a float is expected), or a problem."""
    converted = _convert(value, tp)
    if converted is _BAD:
        return None, f"expected {_type_name(tp)}, got {_show(value)}"
    choices, minimum = meta["choices"], meta["minimum"]
    for item in converted if isinstance(converted, list) else [converted]:
        if item is None:
            continue
        if choices and item not in choices:
            close = _close(item, choices)
            hint = f" (did you mean {close!r}?)" if close else ""
            return None, f"expected one of {', '.join(choices)}, got {item!r}{hint}"
        if minimum is not None and item < minimum:
            return None, f"expected at least {minimum:g}, got {_show(item)}"
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


def _show(value: Any) -> str:
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


def _hint(key: Any, valid: Any) -> str:
    close = _close(key, valid)
    return f" (did you mean {close!r}?)" if close else f" (valid: {', '.join(valid)})"


class _UniqueKeyLoader(yaml.SafeLoader):
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
