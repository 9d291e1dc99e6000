"""Seeded choice of which images get labels (the thesis' protocol).

The draw is a seeded permutation of the sorted image ids: the first ``n`` are the sample,
and an image replaced as unsearchable is replaced by the next id of the permutation. The
standard library's ``random.Random`` is used because its ``sample`` is stable across
Python versions for a given seed, so the same seed gives the same draw for everyone.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Sequence


def draw_order(ids: Sequence[str], seed: int) -> list[str]:
    """Every id, in the seeded order in which they are drawn."""
    ordered = sorted(ids)
    return random.Random(seed).sample(ordered, len(ordered))


def sample_ids(ids: Sequence[str], n: int, seed: int, replaced: Iterable[str] = ()) -> list[str]:
    """The first ``n`` drawn ids, skipping ``replaced`` ones (the next draws take their place)."""
    skip = set(replaced)
    order = [i for i in draw_order(ids, seed) if i not in skip]
    if n > len(order):
        raise ValueError(f"cannot sample {n} of {len(order)} ids")
    return order[:n]
