"""The model families: for each, its adapter, the files its weights need, the arguments its
params entries take, and what else its code runs.

Adding a family is one adapter module (a ``load(spec, device, precision)`` function that
returns an :class:`~kisbench.models.base.EmbeddingModel`), one record here and its params
entries (docs/architecture.md). Adapters are imported by name, only when a model of theirs
is loaded: their libraries may live in another virtualenv (LAVIS), and their code is part
of the cache key of their own models only (`kisbench.models.codekey`).
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from dataclasses import dataclass

from kisbench.errors import ModelError
from kisbench.models import hub, weights
from kisbench.models.spec import ModelSpec


@dataclass(frozen=True)
class Family:
    name: str
    adapter: str  # module with ``load(spec, device=..., precision=...)``
    needs: Callable[[ModelSpec], list[hub.Needed]]  # weight files, checked before the import
    args: frozenset[str]  # keys a params entry may have besides ``family``
    runs: tuple[str, ...] = ()  # modules the adapter runs in another process (not imported)


FAMILIES: dict[str, Family] = {
    f.name: f
    for f in (
        Family(
            "open_clip",
            "kisbench.models.openclip",
            weights.open_clip_needs,
            frozenset({"model", "pretrained", "revision"}),
        ),
        Family(
            "align",
            "kisbench.models.align",
            weights.transformers_needs,
            frozenset({"source", "revision", "context_length"}),
        ),
        Family(
            "blip2_hf",
            "kisbench.models.blip2_hf",
            weights.transformers_needs,
            frozenset({"source", "revision", "context_length"}),
        ),
        Family(
            "blip2_lavis",
            "kisbench.models.blip2_lavis",
            weights.lavis_needs,
            frozenset({"model_type", "mode", "local_dir"}),
            runs=("kisbench.models.lavis_worker",),
        ),
    )
}


def family_of(spec: ModelSpec) -> Family:
    """The spec's family, after checking that its entry has only that family's arguments;
    a misspelt family or argument is an error naming the closest valid one."""
    family = FAMILIES.get(spec.family)
    if family is None:
        raise ModelError(
            f"model {spec.key!r}: unknown family {spec.family!r}{_hint(spec.family, FAMILIES)}; "
            f"known: {', '.join(sorted(FAMILIES))}"
        )
    unknown = sorted(set(spec.args) - family.args)
    if unknown:
        bad = unknown[0]
        raise ModelError(
            f"model {spec.key!r}: {spec.family} entries take no {bad!r}"
            f"{_hint(bad, family.args)}; they take: family, {', '.join(sorted(family.args))}"
        )
    return family


def _hint(name: str, valid: object) -> str:
    close = difflib.get_close_matches(name, sorted(valid), n=1)  # type: ignore[arg-type]
    return f" (did you mean {close[0]!r}?)" if close else ""
