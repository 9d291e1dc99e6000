"""Each multi-sentence strategy and temporal aggregation against ``truncate`` (the rank
stage's ranks of the same model), on the queries the strategy ranked.

The rank sets are the rank-sentences stage's (``kisbench.evaluation.sentences``), loaded by
``load_rank_sets`` like a model's; the comparisons are the evaluate stage's: the paired
bootstrap and Wilcoxon test of ``pairs_table`` (``model_a`` the strategy, ``model_b``
truncate: a positive diff of MRR or R@k is the strategy's gain), Benjamini-Hochberg over
every row of the experiment (one family per test), and per (collection, labelset, model)
a leaderboard of truncate and its strategies over the queries they share
(``graph_leaderboard``).
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from kisbench.evaluation.evaluate import RankSet, load_rank_sets
from kisbench.evaluation.layout import strategy_ranks_dir
from kisbench.evaluation.leaderboard import graph_leaderboard
from kisbench.evaluation.metrics import significant, summarize
from kisbench.evaluation.pairwise import PAIR_COLUMNS, PAIR_TESTS, adjust, pairs_table
from kisbench.evaluation.sentences import AGGREGATIONS, STRATEGIES, set_name

TRUNCATE = "truncate"
SUMMARY = "sentences.json"  # in metrics/
PAIRS = "sentences_pairs.csv"
COLUMNS = ["model", "strategy", *PAIR_COLUMNS]


def strategy_sets(
    models: list[str], collections: list[str], names: list[str]
) -> dict[tuple[str, str, str], list[RankSet]]:
    """``{(model, collection, name): rank sets}`` of every strategy that ranked something."""
    out = {}
    for model in models:
        for collection in collections:
            for name in names:
                folder = strategy_ranks_dir(model, collection, name)
                if not any(folder.glob("*.csv")):
                    continue
                out[(model, collection, name)] = load_rank_sets(
                    [set_name(model, name)],
                    [collection],
                    folder=lambda _m, c, n=name, mo=model: strategy_ranks_dir(mo, c, n),
                )
    return out


def compare_strategies(
    truncate: list[RankSet],
    strategies: dict[tuple[str, str, str], list[RankSet]],
    *,
    headline: str = "mrr",
    n_boot: int = 10000,
    seed: int = 0,
) -> tuple[dict[str, Any], pd.DataFrame]:
    """``(summary, pairs)``. Summary: ``{"metric", "results": {collection: {labelset:
    {model: {name: {...}}}}}, "leaderboards": {...}}`` where each name's entry holds its
    queries, its headline with the 95 % interval and truncate's on the same queries, the
    paired difference with its interval, p- and q-values. Pairs: one row per strategy and
    graph, ``COLUMNS``."""
    base = {(s.model, s.collection, s.labelset): s for s in truncate}
    rows = []
    grouped: dict[tuple[str, str, str], dict[str, pd.Series]] = {}
    sizes: dict[tuple[str, str, str], int] = {}
    for (model, collection, name), sets in strategies.items():
        for s in sets:
            t = base.get((model, collection, s.labelset))
            if t is None:
                continue
            mine = s.by_query
            theirs = t.by_query.reindex(mine.index)
            if theirs.isna().any():
                continue  # a query the rank stage did not rank: labels changed in between
            theirs = theirs.astype(int).rename(model)
            table = pairs_table(
                {s.model: mine, model: theirs},
                [s.model, model],
                metric=headline,
                n_images=s.n_images,
                n_boot=n_boot,
                seed=seed,
                collection=collection,
                labelset=s.labelset,
            )
            table.insert(0, "strategy", name)
            table.insert(0, "model", model)
            rows.append(table)
            kind = "temporal" if name in AGGREGATIONS else "sentences"
            key = (collection, s.labelset, model, kind)
            group = grouped.setdefault(key, {TRUNCATE: theirs})
            group[name] = mine
            sizes[key] = s.n_images
    pairs = pd.concat(rows, ignore_index=True) if rows else pd.DataFrame(columns=COLUMNS)
    pairs = adjust(pairs, PAIR_TESTS)[COLUMNS] if len(pairs) else pairs

    results: dict[str, Any] = {}
    for row in pairs.itertuples(index=False):
        s = next(
            x
            for x in strategies[(row.model, row.collection, row.strategy)]
            if x.labelset == row.labelset
        )
        summary = summarize(s.ranks, s.n_images, n_boot=n_boot, seed=seed)[headline]
        entry = {
            "queries": int(row.queries),
            "images": s.n_images,
            headline: {k: significant(v) for k, v in summary.items()},
            "truncate": significant(row.value_b),
            **{
                k: significant(getattr(row, k))
                for k in ("diff", "diff_low", "diff_high", "p_paired", "q_paired")
            },
            "p_wilcoxon": significant(row.p_wilcoxon),
            "q_wilcoxon": significant(row.q_wilcoxon),
            "strategy_better": int(row.a_better),
            "truncate_better": int(row.b_better),
        }
        results.setdefault(row.collection, {}).setdefault(row.labelset, {}).setdefault(
            row.model, {}
        )[row.strategy] = entry

    boards: dict[str, Any] = {}
    for (collection, labelset, model, kind), group in grouped.items():
        first = group[TRUNCATE]
        ranks = {n: r.reindex(first.index).to_numpy() for n, r in group.items()}
        if any(len(r) != len(first) for r in ranks.values()):
            continue
        boards.setdefault(collection, {}).setdefault(labelset, {}).setdefault(model, {})[kind] = (
            graph_leaderboard(
                ranks,
                sizes[(collection, labelset, model, kind)],
                metric=headline,
                n_boot=n_boot,
                seed=seed,
            )
        )
    return {
        "metric": headline,
        "strategies": [*STRATEGIES, *AGGREGATIONS],
        "results": results,
        "leaderboards": boards,
    }, pairs
