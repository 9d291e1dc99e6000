"""Chunked ranking (counts, per-chunk top-k merge) against a brute-force reference."""

from __future__ import annotations

import numpy as np
import pytest

from kisbench.evaluation.ranking import MISSING, rank_targets

# Small integer vectors: every score is exact in float32, so ties are real ties.


def brute_force(queries, images, targets):
    """Rank by the documented policy: 1 + other images scoring at least the target's score
    (exact integers here, so the tolerance plays no part); absent target: N + 1."""
    flat = images.astype(np.int64).reshape(-1, images.shape[-1])
    scores = queries.astype(np.int64) @ flat.T
    if images.ndim == 3:
        scores = scores.reshape(len(queries), len(images), images.shape[1]).max(axis=2)
    ranks = []
    for m, t in enumerate(targets):
        if t == MISSING:
            ranks.append(len(images) + 1)
            continue
        others = np.delete(scores[m], t)
        ranks.append(1 + int((others >= scores[m, t]).sum()))
    return np.array(ranks), scores


def data(seed, n=131, m=19, d=6, p=None):
    rng = np.random.default_rng(seed)
    shape = (n, p, d) if p else (n, d)
    images = rng.integers(-2, 3, shape).astype(np.float32)
    queries = rng.integers(-2, 3, (m, d)).astype(np.float32)
    targets = rng.integers(0, n, m)
    targets[::5] = MISSING
    return queries, images, targets


@pytest.mark.parametrize("p", [None, 4])
@pytest.mark.parametrize("chunk_bytes", [1, 3000, 2**30])  # 1 image, a few, all at once
def test_ranks_and_top_k_match_brute_force(p, chunk_bytes):
    queries, images, targets = data(seed=p or 0, p=p)
    expected, scores = brute_force(queries, images, targets)
    got = rank_targets(queries, images, targets, top_k=7, chunk_bytes=chunk_bytes)
    np.testing.assert_array_equal(got.ranks, expected)
    present = targets != MISSING
    np.testing.assert_array_equal(
        got.scores[present], scores[np.arange(len(targets)), targets][present]
    )
    assert np.isnan(got.scores[~present]).all()
    # top-k: best first, and no image left out scores above the k-th (ties in any order)
    for m in range(len(queries)):
        top = got.top[m]
        assert len(set(top)) == 7
        kept = scores[m, top]
        assert (np.diff(kept) <= 0).all()
        assert np.delete(scores[m], top).max() <= kept[-1]


def test_every_image_tied_ranks_last():
    images = np.ones((50, 3), np.float32)
    queries = np.ones((2, 3), np.float32)
    got = rank_targets(queries, images, np.array([0, 49]), chunk_bytes=200)
    np.testing.assert_array_equal(got.ranks, [50, 50])


def test_top_k_larger_than_the_collection():
    queries, images, targets = data(seed=3, n=5)
    got = rank_targets(queries, images, targets, top_k=10, chunk_bytes=60)
    assert got.top.shape == (len(queries), 5)
