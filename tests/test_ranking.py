"""Ranking against a brute-force reference written here, independent of
kisbench.evaluation.ranking."""

from __future__ import annotations

import numpy as np
import pytest

from kisbench.evaluation.ranking import MISSING, TIE_EPS, rank_table, rank_targets


def unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def brute_force(queries: np.ndarray, images: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """Per query: score every image in float64, one by one; count the others at or above."""
    n = len(images)
    out = []
    for q, t in zip(queries.astype(np.float64), targets, strict=True):
        if t < 0:
            out.append(n + 1)
            continue
        scores = []
        for img in images.astype(np.float64):
            vecs = img.reshape(-1, img.shape[-1])
            scores.append(max(float(v @ q) for v in vecs))
        ahead = sum(1 for j, s in enumerate(scores) if j != t and s >= scores[t] - TIE_EPS)
        out.append(ahead + 1)
    return np.array(out)


def test_hand_worked_example_with_a_tie():
    # Images on the unit circle; the query points along x.
    images = np.array([[1.0, 0.0], [0.0, 1.0], [0.6, 0.8], [1.0, 0.0]], dtype=np.float32)
    queries = np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]], dtype=np.float32)
    # scores for q0/q1: 1, 0, 0.6, 1 ; for q2: 0, 1, 0.8, 0
    targets = np.array([0, 2, 3])
    result = rank_targets(queries, images, targets, top_k=2)
    # q0 -> image 0 ties image 3 (pessimistic: image 3 counts ahead) -> rank 2
    # q1 -> image 2 (0.6) is behind images 0 and 3 (1.0) -> rank 3
    # q2 -> image 3 (0.0) ties image 0 and is behind 1 and 2 -> rank 4
    assert result.ranks.tolist() == [2, 3, 4]
    np.testing.assert_allclose(result.scores, [1.0, 0.6, 0.0], atol=1e-6)
    assert set(result.top[2].tolist()) == {1, 2}
    assert result.top[2][0] == 1


@pytest.mark.parametrize("multi", [False, True])
def test_matches_brute_force_with_duplicates_and_a_missing_target(multi):
    rng = np.random.default_rng(7)
    shape = (300, 3, 16) if multi else (300, 16)
    images = unit(rng.normal(size=shape)).astype(np.float32)
    images[17] = images[42]  # an exact duplicate: a true tie for queries aimed at either
    queries = unit(rng.normal(size=(40, 16))).astype(np.float32)
    targets = rng.integers(0, 300, size=40)
    targets[:3] = [17, 42, MISSING]
    # Queries that point straight at a target's (first) vector, to get rank-1 hits too.
    queries[3:8] = images[targets[3:8]] if not multi else images[targets[3:8], 0]
    expected = brute_force(queries, images, targets)
    got = rank_targets(queries, images, targets, chunk_bytes=40 * 4 * 7)  # many chunks
    np.testing.assert_array_equal(got.ranks, expected)
    assert got.ranks[0] >= 2 and got.ranks[1] >= 2  # the duplicate always counts ahead
    assert got.ranks[2] == 301 and np.isnan(got.scores[2])
    assert (got.ranks[3:8] == 1).all()


def test_chunked_equals_single_block():
    rng = np.random.default_rng(3)
    images = unit(rng.normal(size=(1000, 32))).astype(np.float32)
    queries = unit(rng.normal(size=(50, 32))).astype(np.float32)
    targets = rng.integers(0, 1000, size=50)
    whole = rank_targets(queries, images, targets, top_k=5, chunk_bytes=1 << 30)
    parts = rank_targets(queries, images, targets, top_k=5, chunk_bytes=50 * 4 * 13)
    np.testing.assert_array_equal(whole.ranks, parts.ranks)
    np.testing.assert_array_equal(whole.top, parts.top)


def test_top_ids_are_the_best_images_in_order():
    rng = np.random.default_rng(5)
    images = unit(rng.normal(size=(200, 8))).astype(np.float32)
    queries = unit(rng.normal(size=(10, 8))).astype(np.float32)
    result = rank_targets(queries, images, np.zeros(10, dtype=int), top_k=5, chunk_bytes=10 * 4 * 9)
    reference = np.argsort(-(queries.astype(np.float64) @ images.T.astype(np.float64)), axis=1)
    np.testing.assert_array_equal(result.top, reference[:, :5])


def test_rank_table_columns_and_missing_target():
    images = unit(np.eye(3, dtype=np.float32))
    table = rank_table(images, ["a", "b", "c"], images[[1, 2]], ["b", "zz"], "short", top_k=2)
    assert list(table.columns) == ["query_id", "target_id", "labelset", "rank", "score", "top_ids"]
    assert table["rank"].tolist() == [1, 4]
    assert table["top_ids"][0].split()[0] == "b"


def test_shape_mismatch_is_an_error():
    with pytest.raises(ValueError, match="shape"):
        rank_targets(np.ones((2, 3), np.float32), np.ones((4, 5), np.float32), np.zeros(2, int))
