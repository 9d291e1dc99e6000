"""The sections of the stages after embedding: ``rank``, ``evaluate``, ``fusion``, ``render``.

No embed stage imports this module (`kisbench.config` loads it by name to check a file), so
a key added here re-runs only the stages that read these sections.
"""

from __future__ import annotations

from dataclasses import dataclass

from kisbench.config.schema import opt

# kisbench.evaluation.metrics.metric_names() and kisbench.evaluation.fusion.METHODS, which
# this layer cannot import (the tests check that the lists agree).
METRICS = ("r@1", "r@5", "r@10", "r@50", "r@100", "mrr", "median_rank", "mean_rank")
FUSION_METHODS = ("rrf", "zscore", "minmax")


@dataclass(frozen=True)
class Rank:
    """The rank stage."""

    device: str = opt(
        "auto", cache_key=True, why="scoring device: CPU and GPU matrix products round differently"
    )
    top_k: int = opt(
        10, cache_key=True, minimum=0, why="best image ids kept per query (the top_ids column)"
    )


@dataclass(frozen=True)
class Evaluate:
    """The evaluate stage; fusion and render take the headline and the bootstrap from here,
    simulate the bootstrap and the seed."""

    headline: str = opt(
        "mrr",
        cache_key=True,
        choices=METRICS,
        why="the one metric per model/collection/labelset in metrics/kis.json",
    )
    bootstrap: int = opt(
        10000,
        cache_key=True,
        minimum=1,
        why="resamples for the 95% confidence intervals, paired tests and leaderboards",
    )
    seed: int = opt(0, cache_key=True, minimum=0, why="the bootstrap's random seed")
    top_models: int = opt(
        5,
        cache_key=True,
        minimum=1,
        why="N: the best N models of each graph enter the pair tests and grids",
    )


@dataclass(frozen=True)
class Fusion:
    """The fusion stage."""

    methods: list[str] = opt(
        list(FUSION_METHODS),
        cache_key=True,
        choices=FUSION_METHODS,
        why="reciprocal rank fusion; per-query z-score / min-max sums: the retrievers built",
    )
    rrf_k: float = opt(
        60.0, cache_key=True, minimum=0, why="RRF constant: sum over models of 1 / (rrf_k + rank)"
    )
    device: str = opt(
        "auto", cache_key=True, why="scoring device: CPU and GPU matrix products round differently"
    )
    memory_mb: int = opt(
        512,
        cache_key=False,
        minimum=1,
        why="score memory: beyond it scores spill to a temporary memory map and queries are "
        "fused in blocks; each query is fused on its own, so the numbers are the same",
    )


@dataclass(frozen=True)
class Render:
    """The render stage (figures and report)."""

    examples: int = opt(
        3,
        cache_key=True,
        minimum=0,
        why="queries in the qualitative figures (where two models disagree most)",
    )
    example_ids: list[str] = opt(
        [], cache_key=True, why="or show these query ids (the labels' ID column, quoted)"
    )
    top_images: int = opt(5, cache_key=True, minimum=1, why="best images shown per model")
    workers: int | None = opt(
        None,
        cache_key=False,
        minimum=1,
        why="processes drawing figures, null: the usable CPU cores; each figure is drawn alike",
    )


SECTIONS: dict[str, type] = {
    "rank": Rank,
    "evaluate": Evaluate,
    "fusion": Fusion,
    "render": Render,
}
