"""The ``cards`` section: what each model's card says about it, for the report.

``cards`` maps a model key (a key of ``models``) to a :class:`Card`: its licence as the
model card states it, the card's URL, the competition systems that load it (``used_by``),
whether the licence was checked against the card itself (``licence_status``: ``card``) or
copied from open_clip's pretrained table or from memory (``unverified``), and a free
``note``. Read it as ``load_params(path).cards`` (model key -> Card; a model without an
entry, or a file without the section, has none: show "unknown"), or with
``card_of(config, key)``, which returns None for a model without a card. Nothing of a card
builds a model, so it lives outside the ``models`` entries (every key of which is an embed
stage's cache key): editing a licence re-embeds nothing. Only the report side reads it, so
only a stage that draws a card (render) may list ``cards`` in its dvc.yaml ``params``.

This module is loaded by name (`kisbench.config` collects it), like every section module
but ``core``; code that reads cards imports it (``from kisbench.config.cards import Card``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from kisbench.config.core import NAME
from kisbench.config.schema import NO_DEFAULT, check_section, hint, opt, show

if TYPE_CHECKING:
    from kisbench.config.schema import Config

LICENCE_STATUSES = ("card", "unverified")
_RENDER = "shown in the report's model table (render only: no model is built from it)"


@dataclass(frozen=True)
class Card:
    """One model's card: licence, where the card is, who loads the model."""

    licence: str = opt(
        NO_DEFAULT, cache_key=True, why=f"the licence as the card states it, {_RENDER}"
    )
    url: str = opt(NO_DEFAULT, cache_key=True, why=f"the model card's address, {_RENDER}")
    used_by: list[str] = opt(
        [], cache_key=True, why=f"the retrieval systems that load this model, {_RENDER}"
    )
    licence_status: str = opt(
        "unverified",
        cache_key=True,
        choices=LICENCE_STATUSES,
        why="card: the licence was read on the card at url; unverified: copied from "
        f"open_clip's table or from memory, not checked against the card; {_RENDER}",
    )
    note: str = opt("", cache_key=True, why=f"anything else the reader should know, {_RENDER}")


def _cards(raw: Any, problems: list[str]) -> dict[str, Card]:
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        problems.append(f"cards: expected a mapping of model keys to cards, got {show(raw)}")
        return {}
    out = {}
    for key, entry in raw.items():
        where = f"cards.{key}"
        if not isinstance(key, str) or not NAME.fullmatch(key):
            problems.append(f"{where}: a key is a model key (only a-z, 0-9 and _)")
        card = check_section(Card, entry, where, problems)
        if card is not None:
            if not card.url.startswith(("https://", "http://")):
                problems.append(f"{where}.url: expected a web address, got {show(card.url)}")
            out[str(key)] = card
    return out


def check(values: Mapping[str, Any], problems: list[str]) -> None:
    """Across sections: a card belongs to a model of ``models`` (a misspelt key would leave
    the model cardless and the card unused)."""
    models: Mapping[str, Any] = values.get("models", {})
    for key in values.get("cards", {}):
        if key not in models:
            problems.append(f"cards.{key}: unknown model key {key!r}{hint(key, list(models))}")


def card_of(config: Config, key: str) -> Card | None:
    """The card of model ``key``, or None when params have none for it."""
    return config.cards.get(key)


# A section of named entries, like ``models``: each entry's every key is a cache key of the
# stages that list ``cards`` (render only); and the check across sections.
ENTRIES: dict[str, Callable[[Any, list[str]], dict[str, Any]]] = {"cards": _cards}
CHECKS: tuple[Callable[[Mapping[str, Any], list[str]], None], ...] = (check,)
