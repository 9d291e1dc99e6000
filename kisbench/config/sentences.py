"""The ``sentences`` and ``temporal`` sections: queries of several sentences or sub-queries
(docs/evaluation.md, "Multi-sentence and temporal queries").

No embed stage of the images imports this module (`kisbench.config` loads it by name to
check a file), so a key added here re-runs only the sentence stages and what reads them.
"""

from __future__ import annotations

from dataclasses import dataclass

from kisbench.config.schema import opt

# kisbench.evaluation.sentences.STRATEGIES and AGGREGATIONS, which this layer cannot import
# (tests/test_sentences.py checks that the lists agree).
STRATEGIES = ("mean", "score_mean", "score_min", "score_product")
AGGREGATIONS = ("viret", "somhunter")


@dataclass(frozen=True)
class Sentences:
    """Multi-sentence strategies, each ranked like a model and compared with ``truncate``
    (the query embedded whole, cut at the model's context: the rank stage)."""

    strategies: list[str] = opt(
        list(STRATEGIES),
        cache_key=True,
        choices=STRATEGIES,
        why="the strategies ranked beside truncate (mean: the renormalised mean of the "
        "sentences' unit vectors; score_mean, score_min: the mean, min of the per-sentence "
        "cos; score_product: the product of their 1 + cos); [] turns them off",
    )


@dataclass(frozen=True)
class Temporal:
    """Temporal queries ("a >> b") on collections that give their frames' order."""

    aggregations: list[str] = opt(
        list(AGGREGATIONS),
        cache_key=True,
        choices=AGGREGATIONS,
        why="the published aggregations ranked (viret: ViretTool's context-aware segments; "
        "somhunter: somhunter-core's apply_temporals); [] turns them off",
    )
    window: int = opt(
        10,
        cache_key=True,
        minimum=1,
        why="viret: keyframes per segment (ViretTool's VideoSegmentLength, 10)",
    )
    lookahead: int = opt(
        4,
        cache_key=True,
        minimum=1,
        why="somhunter: frames of the same video after a frame searched for the next "
        "sub-query (KW_TEMPORAL_SPAN - 1 = 4)",
    )


SECTIONS: dict[str, type] = {"sentences": Sentences, "temporal": Temporal}
