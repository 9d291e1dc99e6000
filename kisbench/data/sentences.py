"""A label's parts: its sentences, or the sub-queries of a temporal query.

Sentence rule (docs/evaluation.md, "Multi-sentence and temporal queries"). A sentence ends
at a run of ``.``, ``!``, ``?`` or ``…`` (so ``...`` is one end), optionally followed by
closing quotes or brackets, when whitespace follows and the next word starts with an
upper-case letter or a digit (after any opening quotes or brackets). A single ``.`` does not
end a sentence after

- a word with a dot inside it (``U.S.``, ``e.g.``, ``i.e.``, ``a.m.``): such abbreviations
  are kept whole, even at the true end of a sentence ("made in the U.S. The ..." stays one
  sentence), which costs one merged pair rather than a cut name;
- a single letter (an initial: ``J. Smith``);
- a title or short form that is followed by a name or number: ``ABBREVIATIONS``.

A decimal (``3.5 m``) or a dot inside a word never has whitespace after it, so it never
ends a sentence; an ellipsis followed by a lower-case word ("then... a turtle") does not
either. The rule is pure Python and knows no language model: it is meant for the short,
descriptive labels of known-item search, not for arbitrary prose.

Temporal queries write their sub-queries in time order, separated by ``>>`` (with or
without spaces): ``a diver above coral >> a turtle swims away``. Each sub-query describes
one moment; the label's target is the frame of the first one (docs/collections.md).
"""

from __future__ import annotations

import re

from kisbench.errors import InputError

TEMPORAL_SEPARATOR = ">>"

# Lower-case, without the dot. Words that are (almost) always followed by a name, a number
# or a noun phrase, so a capital after them does not start a sentence.
ABBREVIATIONS = frozenset(
    {
        "dr", "mr", "mrs", "ms", "prof", "st", "mt", "jr", "sr", "vs", "no", "nr", "fig",
        "approx", "ca", "cf", "co", "inc", "ltd", "gen", "col", "lt", "sgt", "capt", "rev",
    }
)  # fmt: skip

_END = re.compile(r"([.!?\u2026]+)([\"'\u201d\u2019\u00bb)\]]*)(\s+)")
_OPENING = "\"'\u201c\u2018\u00ab([\u201e"


def split_sentences(text: str) -> list[str]:
    """The sentences of ``text`` by the module's rule, stripped; one element when it has
    one sentence (or none: an empty or blank text gives ``[]``)."""
    out: list[str] = []
    start = 0
    for m in _END.finditer(text):
        rest = text[m.end() :].lstrip(_OPENING)
        if not rest or not (rest[0].isupper() or rest[0].isdigit()):
            continue
        if m.group(1) == "." and _abbreviation(text[start : m.start()]):
            continue
        out.append(text[start : m.end()].strip())
        start = m.end()
    tail = text[start:].strip()
    if tail:
        out.append(tail)
    return out


def _abbreviation(before: str) -> bool:
    """Whether the word right before a single dot is an abbreviation by the rule."""
    words = before.split()
    if not words:
        return False
    word = words[-1].lstrip(_OPENING)
    return "." in word or (len(word) == 1 and word.isalpha()) or word.lower() in ABBREVIATIONS


def is_temporal(label: str) -> bool:
    return TEMPORAL_SEPARATOR in label


def split_temporal(label: str, where: str = "label") -> list[str]:
    """The sub-queries of a temporal label, in time order; each must hold text and there
    must be at least two (``where`` names the label in the error)."""
    parts = [p.strip() for p in label.split(TEMPORAL_SEPARATOR)]
    if len(parts) < 2 or not all(parts):
        raise InputError(
            f"{where}: a temporal query is two or more non-empty sub-queries separated by "
            f"'{TEMPORAL_SEPARATOR}' (e.g. 'a diver above coral >> a turtle swims away'), "
            f"got {label!r}"
        )
    return parts


def query_parts(label: str, where: str = "label") -> tuple[bool, list[str]]:
    """``(temporal, parts)``: a temporal label's sub-queries, or another label's sentences
    (the whole label when it has one sentence)."""
    if is_temporal(label):
        return True, split_temporal(label, where)
    return False, split_sentences(label) or [label]
