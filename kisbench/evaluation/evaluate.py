"""From ranks tables to metrics files and cumulative-curve tables."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from kisbench import files, layout
from kisbench.data.collections import read_labels
from kisbench.errors import InputError
from kisbench.evaluation.layout import CURVES, RANKS_INFO, curve_name, ranks_dir
from kisbench.evaluation.leaderboard import graph_leaderboard
from kisbench.evaluation.metrics import (
    chance_curve,
    chance_test,
    cumulative_curve,
    significant,
    summarize,
    value,
)
from kisbench.evaluation.pairwise import (
    GAIN_COLUMNS,
    GAIN_TESTS,
    PAIR_COLUMNS,
    PAIR_TESTS,
    adjust,
    align,
    gains_table,
    pairs_table,
    top_models,
)

# The curve tables' column of the random-ranking expectation: the DVC plot template
# (.dvc/plots/cumulative.json) draws it, and readers drop it before taking the other
# columns as models.
CHANCE_COLUMN = "chance"


@dataclass(frozen=True)
class RankSet:
    model: str
    collection: str
    labelset: str
    ranks: np.ndarray
    n_images: int
    truncated: int | None
    query_ids: tuple[str, ...] = ()
    top_ids: tuple[str, ...] = ()  # per query, the best image ids, space-separated

    @property
    def by_query(self) -> pd.Series:
        return pd.Series(self.ranks, index=list(self.query_ids), name=self.model)


def labelset_order(collection: str) -> list[str]:
    """Labelsets in the column order of the labels file (short before long in the thesis')."""
    return read_labels(layout.labels_path(collection)).labelsets


def _ordered(tables: list[Path], order: list[str]) -> list[Path]:
    """Ranks tables in labels-file order; any other table after them, by name."""
    position = {name: i for i, name in enumerate(order)}
    return sorted(tables, key=lambda p: (position.get(p.stem, len(order)), p.stem))


def load_rank_sets(
    models: list[str],
    collections: list[str],
    folder: Callable[[str, str], Path] = ranks_dir,
) -> list[RankSet]:
    """Every (model, collection, labelset) ranks table of the experiment; all must exist.

    Labelsets come in the order of the collection's labels file, so every table and figure
    shows them in that order. ``folder(model, collection)``: where a rank set's tables are
    (another stage's rank sets laid out alike, e.g. the multi-sentence strategies').
    """
    out: list[RankSet] = []
    missing: list[str] = []
    for collection in collections:
        order = labelset_order(collection)
        for model in models:
            where = folder(model, collection)
            tables = _ordered(list(where.glob("*.csv")), order) if where.is_dir() else []
            if not tables:
                missing.append(str(where))
                continue
            info = json.loads((where / RANKS_INFO).read_text(encoding="utf-8"))
            for path in tables:
                df = pd.read_csv(path, dtype={"query_id": str, "target_id": str, "top_ids": str})
                labelset = path.stem
                out.append(
                    RankSet(
                        model,
                        collection,
                        labelset,
                        df["rank"].to_numpy(),
                        int(info["images"]),
                        info["truncated"].get(labelset),
                        tuple(df["query_id"]),
                        tuple(df["top_ids"].fillna("")),
                    )
                )
    if missing:
        raise InputError(f"no ranks for: {', '.join(missing)}; run their rank stages first")
    return out


def evaluate(
    sets: list[RankSet], *, headline: str = "mrr", n_boot: int = 10000, seed: int = 0
) -> tuple[dict[str, Any], dict[str, Any], dict[tuple[str, str], pd.DataFrame]]:
    """Headline metrics, detailed metrics and cumulative curves of every rank set.

    Headline: ``{headline: {collection: {labelset: {model: value}}}}``, one number per
    model, collection and labelset, so that ``dvc exp show`` stays readable. Details hold
    every metric with its confidence interval (``kisbench.evaluation.metrics``: exact
    binomial for R@k, studentized bootstrap for MRR and mean rank, order statistics for the
    median), numbers to 6 significant digits, and ``vs_chance``: the headline's one-sided
    p-values against a random ranking (``chance_test``). Curves: one wide table per
    (collection, labelset), column ``k``, one column per model and ``CHANCE_COLUMN``
    (:func:`chance_curve` of the graph's image count).
    """
    if CHANCE_COLUMN in {s.model for s in sets}:
        raise InputError(
            f"a model is named {CHANCE_COLUMN!r}, the name of the chance column of the curve "
            f"tables ({CURVES}); give it another key in params.yaml"
        )
    head: dict[str, Any] = {}
    details: dict[str, Any] = {}
    curves: dict[tuple[str, str], dict[str, np.ndarray]] = {}
    for s in sets:
        summary = summarize(s.ranks, s.n_images, n_boot=n_boot, seed=seed)
        if headline not in summary:
            raise InputError(f"unknown headline metric {headline!r}; known: {', '.join(summary)}")
        head.setdefault(s.collection, {}).setdefault(s.labelset, {})[s.model] = significant(
            summary[headline]["value"]
        )
        details.setdefault(s.collection, {}).setdefault(s.labelset, {})[s.model] = {
            "queries": len(s.ranks),
            "images": s.n_images,
            "truncated_queries": s.truncated,
            **{name: {k: significant(v) for k, v in m.items()} for name, m in summary.items()},
            "vs_chance": {
                "metric": headline,
                **{
                    k: significant(v)
                    for k, v in chance_test(
                        s.ranks, headline, s.n_images, n_sims=n_boot, seed=seed
                    ).items()
                },
            },
        }
        curves.setdefault((s.collection, s.labelset), {})[s.model] = cumulative_curve(
            s.ranks, s.n_images
        )
    tables = {}
    by_graph = graphs(sets)
    for key, by_model in curves.items():
        n_images = _one_size(by_graph[key].values(), "/".join(key))  # every curve's length
        k = np.arange(1, n_images + 1)
        table = pd.DataFrame({"k": k})
        for model, curve in by_model.items():
            table[model] = curve
        table[CHANCE_COLUMN] = chance_curve(k, n_images)
        tables[key] = table
    return {headline: head}, details, tables


def graphs(sets: list[RankSet]) -> dict[tuple[str, str], dict[str, RankSet]]:
    """The rank sets by graph: ``{(collection, labelset): {model: RankSet}}``, in load order."""
    out: dict[tuple[str, str], dict[str, RankSet]] = {}
    for s in sets:
        out.setdefault((s.collection, s.labelset), {})[s.model] = s
    return out


def compare(
    sets: list[RankSet],
    *,
    headline: str = "mrr",
    top_n: int = 5,
    n_boot: int = 10000,
    seed: int = 0,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Paired comparisons: every pair of the ``top_n`` models of each (collection,
    labelset) by the headline metric, and every model's gain of each labelset over the
    first one of its collection. Both tables use the headline metric.

    Benjamini-Hochberg families: for each test, all pairs of the experiment (every
    collection and labelset) form one family, and all gains another."""
    pairs = []
    for (collection, labelset), by_model in graphs(sets).items():
        values = {m: value(s.ranks, headline, s.n_images) for m, s in by_model.items()}
        n_images = _one_size(by_model.values(), f"{collection}/{labelset}")
        best = top_models(values, top_n, headline)
        ranks = {m: by_model[m].by_query for m in best}
        pairs.append(
            pairs_table(
                ranks,
                best,
                metric=headline,
                n_images=n_images,
                n_boot=n_boot,
                seed=seed,
                collection=collection,
                labelset=labelset,
            )
        )
    per_model: dict[tuple[str, str], dict[str, pd.Series]] = {}
    sizes: dict[tuple[str, str], int] = {}
    for s in sets:
        per_model.setdefault((s.collection, s.model), {})[s.labelset] = s.by_query
        sizes[(s.collection, s.model)] = s.n_images
    gains = [
        gains_table(
            by_labelset,
            list(by_labelset),
            metric=headline,
            n_images=sizes[(collection, model)],
            n_boot=n_boot,
            seed=seed,
            collection=collection,
            model=model,
        )
        for (collection, model), by_labelset in per_model.items()
        if len(by_labelset) > 1
    ]
    return (
        adjust(_concat(pairs, PAIR_COLUMNS), PAIR_TESTS)[PAIR_COLUMNS],
        adjust(_concat(gains, GAIN_COLUMNS), GAIN_TESTS)[GAIN_COLUMNS],
    )


def leaderboards(
    sets: list[RankSet], *, headline: str = "mrr", n_boot: int = 10000, seed: int = 0
) -> dict[str, Any]:
    """``{collection: {labelset: leaderboard}}`` over every model of each graph
    (``kisbench.evaluation.leaderboard.graph_leaderboard``), queries paired by id."""
    out: dict[str, Any] = {}
    for (collection, labelset), by_model in graphs(sets).items():
        where = f"{collection}/{labelset}"
        models = list(by_model)
        first = by_model[models[0]].by_query
        ranks = {m: align(first, by_model[m].by_query, where)[1] for m in models}
        board = graph_leaderboard(
            ranks, _one_size(by_model.values(), where), metric=headline, n_boot=n_boot, seed=seed
        )
        out.setdefault(collection, {})[labelset] = board
    return out


def _one_size(sets: Any, where: str) -> int:
    """The collection size shared by every rank set of one graph."""
    sizes = {s.n_images for s in sets}
    if len(sizes) != 1:
        raise InputError(
            f"{where}: the models ranked different numbers of images ({sorted(sizes)}); "
            "re-run their rank stages (`dvc repro`)"
        )
    return sizes.pop()


def _concat(frames: list[pd.DataFrame], columns: list[str]) -> pd.DataFrame:
    frames = [f for f in frames if len(f)]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=columns)


def write_curves(tables: dict[tuple[str, str], pd.DataFrame], folder: Path) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for (collection, labelset), table in tables.items():
        path = folder / curve_name(collection, labelset)
        files.write_csv(path, table, index=False, float_format="%.6g")  # significant digits
        written.append(path)
    return written
