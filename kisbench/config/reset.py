"""The ``reset`` section: the RESET experiment (docs/reset.md), its files and its scoring.

No embed stage imports this module (`kisbench.config` loads it by name to check a file);
``run.reset``, which turns the RESET stages on, is in `kisbench.config.core`.
"""

from __future__ import annotations

from dataclasses import dataclass

from kisbench.config.schema import opt

TIE_POLICIES = ("left", "exclude", "half")


@dataclass(frozen=True)
class Reset:
    """The RESET experiment (docs/reset.md): its files and how it is scored."""

    participants: str = opt(
        "data/reset/participants.csv", cache_key=True, why="RESET's participants file"
    )
    judgements: str = opt(
        "data/reset/triplet_judgements.csv", cache_key=True, why="RESET's judgements file"
    )
    triplets: str = opt("data/reset/triplets.csv", cache_key=True, why="RESET's triplets file")
    models: list[str] = opt(
        [], cache_key=True, why="the models scored next to RESET's extractors (empty: none run)"
    )
    ties: str = opt(
        "left",
        cache_key=True,
        choices=TIE_POLICIES,
        why="a distance tie: left (the thesis), exclude, or half (half agreement)",
    )
    min_judgements: int = opt(
        2,
        cache_key=True,
        minimum=1,
        why="variant 2 scores triplets with at least this many judgements",
    )
    bootstrap: int = opt(
        1000,
        cache_key=True,
        minimum=1,
        why="resamples for the 95% confidence intervals (over judgements/triplets)",
    )
    seed: int = opt(0, cache_key=True, minimum=0, why="the bootstrap's random seed")


SECTIONS: dict[str, type] = {"reset": Reset}
