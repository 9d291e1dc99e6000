"""The ``length`` section: the query-length study (docs/evaluation.md#query-length).

The embed-budgets stage embeds every query cut to each token budget, the length stage ranks
them and splits the metrics into truncated and untruncated queries. No other stage imports
this module (`kisbench.config` loads it by name to check a file), so a key added here
re-runs only those two stages and what reads their outputs.
"""

from __future__ import annotations

from dataclasses import dataclass

from kisbench.config.schema import opt

DEFAULT_BUDGETS = [8, 16, 24, 32, 48, 64, 77]


@dataclass(frozen=True)
class Length:
    """The embed-budgets and length stages."""

    budgets: list[int] = opt(
        list(DEFAULT_BUDGETS),
        cache_key=True,
        minimum=2,
        why="token budgets (special tokens included) the queries are cut to, by each model's "
        "own tokenizer; a budget at or beyond a model's context is replaced by the context "
        "itself (the full-length queries), so no budget exceeds it; [] : only that one",
    )


SECTIONS: dict[str, type] = {"length": Length}


def model_budgets(budgets: list[int], context: int) -> list[int]:
    """A model's budgets, ascending: those below its context, then the context itself (the
    queries as the model sees them without a budget: the full-length reference). So no
    budget exceeds the context, and the last one ranks exactly as the plain queries do."""
    return sorted({int(b) for b in budgets if b < context} | {int(context)})
