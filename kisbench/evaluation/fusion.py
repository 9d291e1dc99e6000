"""Fusion of several models into one retriever, evaluated like any model.

The thesis judged combining two models only by the complementary curve (per query the
better of the two ranks, the "oracle"). That is the per-query best of the models: a bound
for choosing one model per query, not for fusion, since a fused list can place a target
above where either model put it (fusion beats it in 6 of the smoke run's 24 set-ups). Here
the combinations are real retrievers, scored over every image of the collection:

- ``rrf``: reciprocal rank fusion, ``sum_m 1 / (k + rank_m(image))``;
- ``zscore``: sum of each model's scores standardised per query over the whole collection;
- ``minmax``: sum of each model's scores rescaled per query to [0, 1];

next to ``single`` (each model alone, from the same scores) and ``oracle`` (the
per-query best of the members' ranks). The target's rank in a fused list follows
``kisbench.evaluation.ranking``'s pessimistic tie policy, with the tolerance carried through
each normalisation.

Memory: every model's (queries x images) float32 scores are computed once and kept in RAM,
or written to a temporary memory-mapped file when they exceed the budget; queries are then
fused in blocks whose terms fit the budget, so the peak is about twice the budget. One query
row over all models must fit (12 bytes per image and model: 120 MB for 1,000,000 images and
10 models).
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from itertools import combinations
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from kisbench.data.store import EmbeddingSet, VectorLayout
from kisbench.errors import InputError
from kisbench.evaluation.metrics import (
    LOWER_IS_BETTER,
    interval,
    metric_names,
    significant,
    value,
)
from kisbench.evaluation.pairwise import complementary
from kisbench.evaluation.ranking import (
    MISSING,
    TIE_EPS,
    equivalent_pairs,
    score_matrix,
    target_ranks,
)

METHODS = ("rrf", "zscore", "minmax")
# An RRF term is a float64 reciprocal below 1/k: summing tens of them errs by under 1e-15,
# while one step down a model's list, 1/(k+r) - 1/(k+r+1), stays above this up to r ~ 1e7.
RRF_EPS = 1e-14
FUSED_COLUMNS = ["query_id", "target_id", "method", "members", "rank"]


def retrievers(models: list[str]) -> list[tuple[str, ...]]:
    """Every pair of models, then all of them together (when that is more than a pair)."""
    out = [tuple(pair) for pair in combinations(models, 2)]
    if len(models) != 2:
        out.append(tuple(models))
    return out


def members_name(members: tuple[str, ...]) -> str:
    """``a+b`` for a pair, ``a+b+c+...`` for every model of the experiment."""
    return "+".join(members)


def normalise(
    scores: np.ndarray, method: str, *, rrf_k: float = 60.0
) -> tuple[np.ndarray, np.ndarray]:
    """One model's (B, N) scores as fusion terms, float64, and the per-row tie tolerance.

    A difference of ``TIE_EPS`` in cosine score is round-off (see
    ``kisbench.evaluation.ranking``); the tolerance is that amount on the normalised scale,
    so fusing one model alone ranks exactly as the model does.
    """
    s = np.asarray(scores, dtype=np.float64)
    if method == "zscore":
        spread = s.std(axis=1)
        centre = s.mean(axis=1)
    elif method == "minmax":
        centre = s.min(axis=1)
        spread = s.max(axis=1) - centre
    elif method == "rrf":
        return 1.0 / (rrf_k + all_ranks(scores)), np.full(len(s), RRF_EPS)
    else:
        raise InputError(f"unknown fusion method {method!r}; known: {', '.join(METHODS)}")
    # A constant row carries no preference: every image ties (all terms 0, tolerance 0).
    spread = np.where(spread > 0, spread, np.inf)
    return (s - centre[:, None]) / spread[:, None], TIE_EPS / spread


def all_ranks(scores: np.ndarray) -> np.ndarray:
    """The rank of every image in every row under the pessimistic tie policy: the number of
    images (itself included) scoring at least its score minus ``TIE_EPS``."""
    m, n = scores.shape
    eps = scores.dtype.type(TIE_EPS)
    order = np.argsort(scores, axis=1)
    ascending = np.take_along_axis(scores, order, axis=1)
    # In ascending order, an image's first rival is itself unless its left neighbour lies
    # within the tolerance: only those (rare) places need a search.
    first = np.broadcast_to(np.arange(n), (m, n)).copy()
    near = np.zeros((m, n), dtype=bool)
    near[:, 1:] = ascending[:, :-1] >= ascending[:, 1:] - eps
    for row in np.nonzero(near.any(axis=1))[0]:
        cols = np.nonzero(near[row])[0]
        first[row, cols] = np.searchsorted(ascending[row], ascending[row, cols] - eps, "left")
    out = np.empty((m, n), dtype=np.int64)
    np.put_along_axis(out, order, n - first, axis=1)
    return out


@dataclass(frozen=True)
class Inputs:
    """One collection and labelset as every model sees it, aligned to common ids."""

    models: list[str]
    images: list[np.ndarray]  # per model (N, D) or (N, P, D), same image order
    queries: list[np.ndarray]  # per model (M, D), same query order
    query_ids: list[str]
    targets: np.ndarray  # (M,) image row of each query's target, MISSING if absent
    n_images: int
    # per model, the images' declared layout (their EmbeddingSet's); None: each array's
    # shape implies it (the legacy rule)
    layouts: list[VectorLayout] | None = None
    # (E, 2) pairs (query row, image row): images equivalent to the query's target, which
    # no retriever counts ahead of it (kisbench.evaluation.ranking.equivalent_pairs)
    equivalents: np.ndarray | None = None


def align_inputs(
    images: dict[str, EmbeddingSet],
    queries: dict[str, EmbeddingSet],
    where: str = "",
    equivalents: Iterable[Iterable[str]] = (),
) -> Inputs:
    """Check that every model embedded the same images and queries, and put them in the
    first model's order. A query's id is its target image's id (the labels' ID column).
    ``equivalents``: the collection's groups of equivalent image ids."""
    models = list(images)
    if not models:
        raise InputError(f"{where}: no models to fuse")
    first = models[0]
    image_ids, query_ids = images[first].ids, queries[first].ids
    image_rows, image_vecs, query_vecs, layouts = {}, [], [], []
    for model in models:
        if queries[model].layout.several:  # a text is one vector in every family
            raise InputError(
                f"{where}: {model}'s queries have several vectors per query, shape "
                f"{queries[model].vectors.shape}; re-run its embed-queries stage"
            )
        layouts.append(images[model].layout)
        for kind, sets, ids in (("images", images, image_ids), ("queries", queries, query_ids)):
            if set(sets[model].ids) != set(ids):
                raise InputError(
                    f"{where}: {model} and {first} embedded different {kind}; "
                    f"re-run the embed stages of both (`dvc repro`)"
                )
        image_rows = {i: r for r, i in enumerate(images[model].ids)}
        order = [image_rows[i] for i in image_ids]
        vecs = images[model].vectors
        # Same order (the usual case): keep the memory map instead of loading a copy.
        image_vecs.append(vecs if order == list(range(len(order))) else np.asarray(vecs)[order])
        q_rows = {i: r for r, i in enumerate(queries[model].ids)}
        query_vecs.append(np.asarray(queries[model].vectors)[[q_rows[i] for i in query_ids]])
    index = {i: r for r, i in enumerate(image_ids)}
    targets = np.array([index.get(q, MISSING) for q in query_ids], dtype=np.int64)
    pairs = equivalent_pairs(list(query_ids), index, equivalents)
    return Inputs(
        models, image_vecs, query_vecs, list(query_ids), targets, len(image_ids), layouts, pairs
    )


def _blocks(total: int, size: int) -> Iterator[slice]:
    for start in range(0, total, size):
        yield slice(start, min(total, start + size))


def fuse(
    inputs: Inputs,
    *,
    methods: tuple[str, ...] = METHODS,
    rrf_k: float = 60.0,
    budget_bytes: int = 512 * 2**20,
    device: str = "cpu",
    scratch: Path | None = None,
    progress: str | None = None,
) -> pd.DataFrame:
    """Per query the target's rank for each model alone, each retriever (every pair, all
    models), each fusion method and the oracle (per-query best of the members); long table
    with ``FUSED_COLUMNS``."""
    for method in methods:
        if method not in METHODS:
            raise InputError(f"unknown fusion method {method!r}; known: {', '.join(METHODS)}")
    models, m, n = inputs.models, len(inputs.query_ids), inputs.n_images
    shape = (len(models), m, n)
    with tempfile.TemporaryDirectory(dir=scratch) as tmp:
        if np.prod(shape) * 4 <= budget_bytes:
            raw = np.empty(shape, dtype=np.float32)
        else:
            raw = np.lib.format.open_memmap(
                Path(tmp) / "scores.npy", mode="w+", dtype=np.float32, shape=shape
            )
        for i in range(len(models)):
            layout = inputs.layouts[i] if inputs.layouts is not None else None
            score_matrix(
                inputs.queries[i], inputs.images[i], device=device, out=raw[i], layout=layout
            )
        # Per query row: raw scores plus one float64 term array per model.
        per_query = len(models) * n * (4 + 8) + n * 8
        block = max(1, budget_bytes // per_query)
        parts = []
        bar = tqdm(total=m, desc=progress, unit="query", disable=progress is None)
        for rows in _blocks(m, block):
            parts.append(_fuse_block(inputs, raw[:, rows], rows, methods, rrf_k))
            bar.update(rows.stop - rows.start)
        bar.close()
        del raw
    # Blocks hold every retriever for some queries; the table lists each retriever's queries
    # together, in query order, whatever the block size.
    table = pd.concat(parts, ignore_index=True).sort_values("entry", kind="stable")
    return table[FUSED_COLUMNS].reset_index(drop=True)


def _fuse_block(
    inputs: Inputs,
    raw: np.ndarray,
    rows: slice,
    methods: tuple[str, ...],
    rrf_k: float,
) -> pd.DataFrame:
    models = inputs.models
    targets = inputs.targets[rows]
    ids = inputs.query_ids[rows]
    same = None
    if inputs.equivalents is not None and len(inputs.equivalents):
        inside = (inputs.equivalents[:, 0] >= rows.start) & (inputs.equivalents[:, 0] < rows.stop)
        same = inputs.equivalents[inside] - np.array([rows.start, 0])
    out: list[tuple[str, str, np.ndarray]] = []
    single = {m: target_ranks(raw[i], targets, equivalents=same) for i, m in enumerate(models)}
    out += [("single", m, r) for m, r in single.items()]
    groups = retrievers(models)
    for members in groups:
        name = members_name(members)
        out.append(("oracle", name, complementary(*(single[m] for m in members))))
    for method in methods:
        terms = [normalise(raw[i], method, rrf_k=rrf_k) for i in range(len(models))]
        for members in groups:
            first, *rest = (models.index(m) for m in members)
            fused, tolerance = terms[first]
            for n, i in enumerate(rest):
                # The first addition makes a new array, so the terms are never modified.
                fused = fused + terms[i][0] if n == 0 else np.add(fused, terms[i][0], out=fused)
                tolerance = tolerance + terms[i][1]
            ranks = target_ranks(fused, targets, tolerance, same)
            out.append((method, members_name(members), ranks))
    return pd.DataFrame(
        [
            (qid, qid, method, members, int(rank), entry)
            for entry, (method, members, ranks) in enumerate(out)
            for qid, rank in zip(ids, ranks, strict=True)
        ],
        columns=[*FUSED_COLUMNS, "entry"],
    )


def summary(
    fused: pd.DataFrame,
    n_images: int,
    *,
    headline: str = "mrr",
    n_boot: int = 10000,
    seed: int = 0,
) -> pd.DataFrame:
    """Every metric of every (method, members) retriever of one collection and labelset,
    with the headline metric's confidence interval (the only one the report shows: one for
    every metric of every retriever cost most of this stage's time)."""
    rows = []
    for (method, members), group in fused.groupby(["method", "members"], sort=False):
        ranks = group["rank"].to_numpy()
        low, high = interval(ranks, headline, n_images, n_boot=n_boot, seed=seed)
        rows.append(
            {
                "members": members,
                "method": method,
                "queries": len(ranks),
                "images": n_images,
                **{name: value(ranks, name, n_images) for name in metric_names()},
                f"{headline}_low": low,
                f"{headline}_high": high,
            }
        )
    return pd.DataFrame(rows)


def headline_table(table: pd.DataFrame, models: list[str], headline: str) -> dict:
    """For ``metrics/fusion.json``: per collection and labelset, the headline metric of the
    best model alone (``best_model``), of the per-query best of all models (``oracle_all``:
    a bound for picking one model per query, which fusion can exceed) and of all models
    fused by each method (``rrf_all``, ...). A handful of numbers, so that ``dvc exp show``
    stays readable; every retriever is in the CSV."""
    everyone = members_name(tuple(models))
    pick = max if headline not in LOWER_IS_BETTER else min
    out: dict = {}
    for (collection, labelset), group in table.groupby(["collection", "labelset"], sort=False):
        singles = group[group["method"] == "single"][headline]
        entry = {"best_model": significant(pick(singles))}
        fused = group[group["members"] == everyone]
        for method, v in zip(fused["method"], fused[headline], strict=True):
            if method != "single":
                entry[f"{method}_all"] = significant(v)
        out.setdefault(collection, {})[labelset] = entry
    return {headline: out}
