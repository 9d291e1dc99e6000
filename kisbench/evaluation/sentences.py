"""Queries of several parts: multi-sentence strategies and temporal aggregations, each ranked
like a model (rank set ``<model>~<name>``) and compared with ``truncate``, the query embedded
whole and cut at the model's context (the rank stage's ranks).

A label's parts (``kisbench.data.sentences``) are its sentences, or, for a temporal label
(``a >> b``), its sub-queries. ``cos[k, j]`` is part k's score for image j (a multi-vector
image scores its best vector, as in the rank stage).

Multi-sentence strategies (labels that are not temporal):

- ``mean``: the parts' unit vectors averaged and renormalised, ranked as one query;
- ``score_mean``: the mean over parts of ``cos[k, j]``;
- ``score_min``: the minimum over parts (an image must match every sentence);
- ``score_product``: the product over parts of ``1 + cos[k, j]``. The shift makes every
  factor positive (cos >= -1), so the product is increasing in each part's score; a product
  of raw cosines would rank two negative scores above one small positive one. It is
  ViretTool's per-sub-query score, and ranks like the sum of ``log(1 + cos)``.

Temporal aggregations (temporal labels, on a collection with a frames file; the frames in
video order, ``kisbench.data.frames``):

- ``viret`` (GitHub siret-junior/ViretTool, ``src/ViretTool/ViretCore/Ranking/ContextAware/
  ContextAwareRanker.cs`` ``RankSegmentsInVideo`` and ``VideoSegment.cs``
  ``UpdateSegmentScore``): a segment is every run of ``window`` consecutive frames of one
  video (one segment of the whole video when it is shorter); its score is the product over
  sub-queries of the best ``1 + cos`` among its frames, in any order. A frame's score is the
  best score of the segments that hold it: ViretTool shows whole segments, so the target is
  seen as soon as a segment holding it is.
- ``somhunter`` (GitHub siret-junior/somhunter-core, ``src/somhunter/searches/scores.cpp``
  ``ScoreModel::apply_temporals``, with ``KW_TEMPORAL_SPAN`` 5 in
  ``src/config/static-config.h`` and the inverse scores ``1 - cos`` of
  ``src/somhunter/rankers/keyword-clip-ranker.cpp``): per sub-query i the inverse score
  ``t_i[j] = (1 - cos[i, j]) / max_j (1 - cos[i, j])`` (``normalize``; at least 1e-18);
  the last sub-query's ``s[j] = t_last[j]``, then back to the first,
  ``s[j] = t_i[j] * min(1, min_{k=1..lookahead} s[j + k])`` over the next frames of the
  same video. A frame's score is for the first sub-query at that frame followed by the
  others after it, so the target is the frame of the first sub-query. somhunter's score is
  ``exp(-50 s)``; the ranks table's score column holds ``-s``, which ranks alike.

Ties are pessimistic, as in ``kisbench.evaluation.ranking``: an image at least the target's
score minus a tolerance counts ahead of it (``TIE_EPS``, relative to the score for the
products).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import numpy as np
import pandas as pd
from numpy.lib.stride_tricks import sliding_window_view
from tqdm import tqdm

from kisbench.data.frames import Frame
from kisbench.data.store import VectorLayout
from kisbench.evaluation.ranking import (
    MISSING,
    TIE_EPS,
    equivalent_pairs,
    rank_table,
    ranks_frame,
    score_matrix,
    target_ranks,
)

STRATEGIES = ("mean", "score_mean", "score_min", "score_product")
AGGREGATIONS = ("viret", "somhunter")
SEPARATOR = "~"  # rank set name: <model>~<strategy>
SOMHUNTER_FLOOR = 1e-18  # somhunter-core's MINIMAL_SCORE


def set_name(model: str, strategy: str) -> str:
    return f"{model}{SEPARATOR}{strategy}"


def mean_embedding(vectors: np.ndarray) -> np.ndarray:
    """The renormalised mean of unit vectors (K, D) -> (D,)."""
    v = np.asarray(vectors, dtype=np.float64).mean(axis=0)
    norm = np.linalg.norm(v)
    # Opposite parts can cancel; such a query has no direction, and scores 0 everywhere.
    return (v / norm if norm > 0 else v).astype(np.float32)


def combine(cos: np.ndarray, how: str) -> np.ndarray:
    """Per image, the score of several parts' scores ``cos`` (K, N) by a score strategy."""
    cos = np.asarray(cos, dtype=np.float64)
    if how == "score_mean":
        return cos.mean(axis=0)
    if how == "score_min":
        return cos.min(axis=0)
    if how == "score_product":
        return np.prod(1.0 + cos, axis=0)
    raise ValueError(f"unknown score strategy {how!r}; known: {', '.join(STRATEGIES[1:])}")


def frame_sequence(
    image_ids: Sequence[str], frames: Mapping[str, Frame]
) -> tuple[np.ndarray, np.ndarray]:
    """Per image (collection order) its video number, and the images' order along the
    videos: ``(order, video)``, ``order`` a permutation of the image indices sorted by
    (video, position), ``video[i]`` the video number of ``order[i]``. An image the frames
    file does not list is a video of its own."""
    keys = []
    for image_id in image_ids:
        f = frames.get(image_id)
        keys.append((f.video, f.position) if f else (f"\0{image_id}", 0.0))
    order = np.array(sorted(range(len(image_ids)), key=lambda i: keys[i]), dtype=np.int64)
    names = [keys[i][0] for i in order]
    video = np.cumsum([0] + [a != b for a, b in zip(names, names[1:], strict=False)])
    return order, video.astype(np.int64)


def viret_scores(cos: np.ndarray, order: np.ndarray, video: np.ndarray, window: int) -> np.ndarray:
    """ViretTool's context-aware score of every image (collection order) for sub-query
    scores ``cos`` (K, N): the best segment holding the frame (module docstring)."""
    plus = (np.asarray(cos, dtype=np.float64) + 1.0)[:, order]
    out = np.empty(plus.shape[1])
    bounds = np.flatnonzero(np.diff(video)) + 1
    for start, stop in zip(np.r_[0, bounds], np.r_[bounds, len(video)], strict=True):
        w = min(window, stop - start)
        # (K, segments, w): per sub-query the best frame of each segment, multiplied
        best = sliding_window_view(plus[:, start:stop], w, axis=1).max(axis=2)
        segment = best.prod(axis=0)
        # frame start+f is in the segments starting at f-w+1 .. f (those that exist)
        padded = np.r_[np.full(w - 1, -np.inf), segment, np.full(w - 1, -np.inf)]
        out[start:stop] = sliding_window_view(padded, w).max(axis=1)
    scores = np.empty_like(out)
    scores[order] = out
    return scores


def somhunter_scores(
    cos: np.ndarray, order: np.ndarray, video: np.ndarray, lookahead: int
) -> np.ndarray:
    """somhunter-core's temporal inverse score ``s`` of every image (collection order) for
    sub-query scores ``cos`` (K, N), lower is better (module docstring)."""
    t = 1.0 - np.asarray(cos, dtype=np.float64)[:, order]
    t = np.maximum(t / np.maximum(t.max(axis=1, keepdims=True), SOMHUNTER_FLOOR), SOMHUNTER_FLOOR)
    n = t.shape[1]
    s = t[-1].copy()
    for i in range(len(t) - 2, -1, -1):
        ahead = np.ones(n)  # somhunter's min starts at 1, the worst normalised score
        for k in range(1, lookahead + 1):
            same = np.zeros(n, dtype=bool)
            same[: n - k] = video[k:] == video[: n - k]
            shifted = np.ones(n)
            shifted[: n - k] = s[k:]
            ahead = np.where(same, np.minimum(ahead, shifted), ahead)
        s = t[i] * ahead
    out = np.empty(n)
    out[order] = s
    return out


def ranks_from_scores(
    scores: np.ndarray,
    image_ids: Sequence[str],
    target_ids: Sequence[str],
    labelset: str,
    *,
    relative: bool,
    top_k: int = 10,
    equivalents: Iterable[Iterable[str]] = (),
) -> pd.DataFrame:
    """A ranks table (the rank stage's columns) from whole score rows (M, N), higher better.

    The tie tolerance is ``TIE_EPS``, times the target's score when ``relative`` (products,
    whose round-off follows their size)."""
    index = {image_id: i for i, image_id in enumerate(image_ids)}
    targets = np.array([index.get(t, MISSING) for t in target_ids], dtype=np.int64)
    own = scores[np.arange(len(targets)), targets.clip(min=0)]
    tolerance = TIE_EPS * np.abs(own) if relative else TIE_EPS
    pairs = equivalent_pairs(target_ids, index, equivalents)
    ranks = target_ranks(scores, targets, tolerance=tolerance, equivalents=pairs)
    k = min(top_k, scores.shape[1])
    top = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    score = np.where(targets >= 0, own, np.nan).astype(np.float32)
    return ranks_frame(image_ids, target_ids, labelset, ranks, score, top)


def rank_parts(
    images: np.ndarray,
    image_ids: Sequence[str],
    part_vectors: np.ndarray,
    part_of: Mapping[str, tuple[bool, list[int]]],
    labelset: str,
    *,
    strategies: Sequence[str],
    aggregations: Sequence[str],
    frames: Mapping[str, Frame] | None,
    window: int,
    lookahead: int,
    top_k: int = 10,
    device: str = "cpu",
    layout: VectorLayout | None = None,
    equivalents: Iterable[Iterable[str]] = (),
) -> dict[str, pd.DataFrame]:
    """The ranks table of every strategy and aggregation for one labelset.

    ``part_of``: per query id, ``(temporal, rows of part_vectors)``. Strategies rank the
    queries that are not temporal (none when every one of them has a single sentence: the
    strategies would give truncate's ranks), aggregations the temporal ones (none without
    ``frames``); a name with no query to rank is left out."""
    equivalents = [list(g) for g in equivalents]
    plain = [q for q, (temporal, _) in part_of.items() if not temporal]
    if all(len(part_of[q][1]) == 1 for q in plain):
        plain = []  # no label of several sentences: every strategy would be truncate
    temporal = [q for q, (is_t, _) in part_of.items() if is_t] if frames is not None else []
    out: dict[str, pd.DataFrame] = {}
    if plain and "mean" in strategies:
        means = np.stack([mean_embedding(part_vectors[part_of[q][1]]) for q in plain])
        out["mean"] = rank_table(
            images,
            list(image_ids),
            means,
            plain,
            labelset,
            top_k=top_k,
            device=device,
            layout=layout,
            equivalents=equivalents,
        )
    score_level = [s for s in strategies if s != "mean"]
    jobs = [(s, plain) for s in score_level if plain] + [(a, temporal) for a in aggregations]
    if not any(queries for _, queries in jobs):
        return out
    cos = score_matrix(part_vectors, images, device=device, layout=layout)  # (parts, N)
    if temporal:
        order, video = frame_sequence(image_ids, frames or {})
    for name, queries in tqdm(jobs, desc=f"{labelset}: strategies", leave=False):
        if not queries:
            continue
        rows = np.empty((len(queries), len(image_ids)))
        for m, q in enumerate(queries):
            c = cos[part_of[q][1]]
            if name == "viret":
                rows[m] = viret_scores(c, order, video, window)
            elif name == "somhunter":
                rows[m] = -somhunter_scores(c, order, video, lookahead)
            else:
                rows[m] = combine(c, name)
        out[name] = ranks_from_scores(
            rows,
            image_ids,
            queries,
            labelset,
            relative=name in ("score_product", "viret", "somhunter"),
            top_k=top_k,
            equivalents=equivalents,
        )
    return {name: out[name] for name in [*strategies, *aggregations] if name in out}
