"""Ranking against a brute-force reference written here, independent of
kisbench.evaluation.ranking."""

from __future__ import annotations

import numpy as np
import pytest

from kisbench.evaluation.ranking import (
    MISSING,
    TIE_EPS,
    equivalent_pairs,
    rank_table,
    rank_targets,
    target_ranks,
)


def unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def brute_force(
    queries: np.ndarray, images: np.ndarray, targets: np.ndarray, same: dict | None = None
) -> np.ndarray:
    """Per query: score every image in float64, one by one; count the others at or above,
    except the images in ``same[query]`` (those equivalent to its target)."""
    n = len(images)
    out = []
    for m, (q, t) in enumerate(zip(queries.astype(np.float64), targets, strict=True)):
        excluded = (same or {}).get(m, set())
        if t < 0:
            out.append(n + 1)
            continue
        scores = []
        for img in images.astype(np.float64):
            vecs = img.reshape(-1, img.shape[-1])
            scores.append(max(float(v @ q) for v in vecs))
        ahead = sum(
            1
            for j, s in enumerate(scores)
            if j != t and j not in excluded and s >= scores[t] - TIE_EPS
        )
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


def test_hand_worked_example_with_an_equivalent():
    # The hand-worked example above; image 3 is declared equivalent to image 0.
    images = np.array([[1.0, 0.0], [0.0, 1.0], [0.6, 0.8], [1.0, 0.0]], dtype=np.float32)
    queries = np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]], dtype=np.float32)
    targets = np.array([0, 2, 3])
    pairs = equivalent_pairs(["i0", "i2", "i3"], {f"i{k}": k for k in range(4)}, [["i0", "i3"]])
    assert pairs.tolist() == [[0, 3], [2, 0]]
    result = rank_targets(queries, images, targets, equivalents=pairs)
    # q0 -> image 0 ties image 3, its equivalent: not counted -> rank 1 (was 2)
    # q1 -> image 2 (0.6): images 0 and 3 are not its equivalents -> rank 3, unchanged
    # q2 -> image 3 (0.0) ties image 0, its equivalent (not counted), behind 1, 2 -> rank 3
    assert result.ranks.tolist() == [1, 3, 3]


@pytest.mark.parametrize("multi", [False, True])
def test_equivalents_match_brute_force_across_chunks(multi):
    rng = np.random.default_rng(11)
    shape = (200, 2, 8) if multi else (200, 8)
    images = unit(rng.normal(size=shape)).astype(np.float32)
    images[5] = images[150]  # an exact duplicate, declared equivalent below
    images[60] = images[61]  # another, not declared: still counts ahead
    queries = unit(rng.normal(size=(30, 8))).astype(np.float32)
    targets = rng.integers(0, 200, size=30)
    targets[:4] = [5, 150, 60, MISSING]
    queries[:3] = images[targets[:3]] if not multi else images[targets[:3], 0]
    ids = [f"x{k:03d}" for k in range(200)]
    groups = [["x005", "x150", "x099"], ["x010", "x011"]]
    targets[4:6] = [10, 99]
    same = {}
    for m, t in enumerate(targets):
        for g in groups:
            if t >= 0 and ids[t] in g:
                same[m] = {ids.index(j) for j in g} - {t}
    pairs = equivalent_pairs(
        [ids[t] if t >= 0 else "gone" for t in targets], {i: k for k, i in enumerate(ids)}, groups
    )
    got = rank_targets(queries, images, targets, equivalents=pairs, chunk_bytes=30 * 4 * 7)
    np.testing.assert_array_equal(got.ranks, brute_force(queries, images, targets, same))
    assert got.ranks[0] == 1 and got.ranks[1] == 1  # the declared duplicate: not ahead
    assert got.ranks[2] >= 2  # the undeclared one still is
    assert got.ranks[3] == 201
    whole = rank_targets(queries, images, targets, equivalents=pairs, chunk_bytes=1 << 30)
    np.testing.assert_array_equal(whole.ranks, got.ranks)


def test_rank_table_equivalents_by_id():
    images = unit(np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]], dtype=np.float32))
    ids = ["a", "b", "c"]
    plain = rank_table(images, ids, images[[0, 2]], ["a", "c"], "short")
    same = rank_table(images, ids, images[[0, 2]], ["a", "c"], "short", equivalents=[["b", "a"]])
    assert plain["rank"].tolist() == [2, 1] and same["rank"].tolist() == [1, 1]
    # An equivalent that is not among the images (skipped by the embed stage) is ignored.
    gone = rank_table(images, ids, images[[0]], ["a"], "short", equivalents=[["a", "zz"]])
    assert gone["rank"].tolist() == [2]


def test_an_image_equivalent_to_itself_is_an_error():
    images = unit(np.eye(3, dtype=np.float32))
    with pytest.raises(ValueError, match="itself"):
        rank_targets(images, images, np.array([0, 1, 2]), equivalents=np.array([[1, 1]]))


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


def test_whole_row_ranks_honour_equivalents_like_the_brute_force():
    """target_ranks (fusion's tie policy on whole score rows) with equivalents."""
    rng = np.random.default_rng(2)
    images = unit(rng.normal(size=(50, 6))).astype(np.float32)
    images[7] = images[3]
    queries = unit(rng.normal(size=(12, 6))).astype(np.float32)
    targets = rng.integers(0, 50, size=12)
    targets[:2] = [3, 7]
    queries[:2] = images[[3, 7]]
    same = {0: {7}, 1: {3, 20}}
    pairs = np.array([(m, j) for m, js in same.items() for j in sorted(js)])
    scores = queries @ images.T
    got = target_ranks(scores, targets, equivalents=pairs)
    np.testing.assert_array_equal(got, brute_force(queries, images, targets, same))
    assert got[0] == 1 and got[1] == 1
