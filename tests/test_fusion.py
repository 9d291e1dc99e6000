"""Fusion on constructed examples whose fused ranks are worked out by hand.

The query vectors are the score rows themselves and the images the identity matrix, so a
query's score for image i is exactly the number written in the test.
"""

import numpy as np
import pytest

from kisbench.data.store import EmbeddingSet
from kisbench.errors import InputError
from kisbench.evaluation.fusion import Inputs, align_inputs, all_ranks, fuse, normalise, retrievers
from kisbench.evaluation.ranking import MISSING, rank_targets, score_matrix, target_ranks


def identity_inputs(scores: dict[str, list[list[float]]], targets: list[int]) -> Inputs:
    models = list(scores)
    n = len(next(iter(scores.values()))[0])
    return Inputs(
        models=models,
        images=[np.eye(n, dtype=np.float32) for _ in models],
        queries=[np.array(scores[m], dtype=np.float32) for m in models],
        query_ids=[f"q{i}" for i in range(len(targets))],
        targets=np.array(targets),
        n_images=n,
    )


def ranks_of(table, method, members):
    part = table[(table["method"] == method) & (table["members"] == members)]
    return part["rank"].tolist()


# Two models, four images. Query q0 wants image 0, query q1 image 3.
# A orders the images 1, 0, 3, 2; B orders them 2, 0, 3, 1 (same scores, images 1 and 2 swapped).
TWO = {
    "a": [[0.8, 0.9, 0.1, 0.5], [0.8, 0.9, 0.1, 0.5]],
    "b": [[0.8, 0.1, 0.9, 0.5], [0.8, 0.1, 0.9, 0.5]],
}


def test_two_models_by_hand():
    table = fuse(identity_inputs(TWO, [0, 3]), budget_bytes=2**20)
    assert ranks_of(table, "single", "a") == [2, 3]
    assert ranks_of(table, "single", "b") == [2, 3]
    assert ranks_of(table, "oracle", "a+b") == [2, 3]
    # RRF (k = 60): image 0 gets 1/62 + 1/62 = 0.032258, images 1 and 2 get
    # 1/61 + 1/64 = 0.032018, image 3 gets 2/63 = 0.031746. q0's target is first
    # (better than the oracle: both models agree on it); q1's target is last.
    assert ranks_of(table, "rrf", "a+b") == [1, 4]
    # z-scores: both rows have mean 0.575 and the same spread s; the sums are
    # 0.45/s for image 0 and -0.15/s for images 1, 2 and 3 alike. q1's target ties
    # with images 1 and 2: pessimistic, rank 4.
    assert ranks_of(table, "zscore", "a+b") == [1, 4]
    # min-max over [0.1, 0.9]: A -> .875, 1, 0, .5; B -> .875, 0, 1, .5; sums 1.75, 1, 1, 1.
    assert ranks_of(table, "minmax", "a+b") == [1, 4]


def test_three_models_full_tie_is_pessimistic():
    """Each image is 1st, 2nd and 3rd once: every fused score is the same (RRF adds the same
    three reciprocals in different orders), so the target ranks last."""
    three = {"a": [[0.9, 0.5, 0.1]], "b": [[0.1, 0.9, 0.5]], "c": [[0.5, 0.1, 0.9]]}
    table = fuse(identity_inputs(three, [0]))
    for method in ("rrf", "zscore", "minmax"):
        assert ranks_of(table, method, "a+b+c") == [3], method
    assert ranks_of(table, "oracle", "a+b+c") == [1]
    assert [ranks_of(table, "single", m)[0] for m in "abc"] == [1, 3, 2]
    # A + B by RRF: image 0 = 1/61 + 1/63, image 1 = 1/62 + 1/61, image 2 = 1/63 + 1/62.
    assert ranks_of(table, "rrf", "a+b") == [2]


def test_retrievers_are_pairs_then_all():
    assert retrievers(["a", "b", "c"]) == [("a", "b"), ("a", "c"), ("b", "c"), ("a", "b", "c")]
    assert retrievers(["a", "b"]) == [("a", "b")]
    assert retrievers(["a"]) == [("a",)]


def test_all_ranks_pessimistic_by_hand():
    row = np.array([[0.5, 0.9, 0.5, 0.1]], dtype=np.float32)
    assert all_ranks(row).tolist() == [[3, 1, 3, 4]]


def test_normalise_by_hand():
    s = np.array([[1.0, 2.0, 3.0, 4.0]], dtype=np.float32)
    z, tol = normalise(s, "zscore")
    assert z[0] == pytest.approx((np.array([1, 2, 3, 4]) - 2.5) / np.sqrt(1.25))
    assert tol[0] == pytest.approx(1e-6 / np.sqrt(1.25))
    m, tol = normalise(s, "minmax")
    assert m[0] == pytest.approx([0, 1 / 3, 2 / 3, 1])
    assert tol[0] == pytest.approx(1e-6 / 3)
    r, _ = normalise(s, "rrf", rrf_k=60)
    assert r[0] == pytest.approx([1 / 64, 1 / 63, 1 / 62, 1 / 61])
    flat, tol = normalise(np.ones((1, 3), dtype=np.float32), "zscore")
    assert flat.tolist() == [[0, 0, 0]] and tol[0] == 0
    with pytest.raises(InputError, match="unknown fusion method"):
        normalise(s, "median")


def random_inputs(rng, n=300, m=40, d=8, models=3, quantise=False):
    images, queries = [], []
    for i in range(models):
        shape = (n, 3, d) if i == models - 1 else (n, d)  # last model: multi-vector
        imgs = rng.normal(size=shape).astype(np.float32)
        qs = rng.normal(size=(m, d)).astype(np.float32)
        if quantise:  # coarse values: many exact ties between images
            imgs, qs = np.round(imgs * 2) / 2, np.round(qs * 2) / 2
        images.append(imgs)
        queries.append(qs)
    targets = rng.choice(n, size=m, replace=False)
    targets[0] = MISSING
    return Inputs(
        [f"m{i}" for i in range(models)],
        images,
        queries,
        [f"q{i}" for i in range(m)],
        targets,
        n,
    )


def test_single_model_matches_the_rank_stage_and_fusing_one_model_changes_nothing():
    rng = np.random.default_rng(3)
    inputs = random_inputs(rng, quantise=True)
    table = fuse(inputs)
    for i, model in enumerate(inputs.models):
        expected = rank_targets(inputs.queries[i], inputs.images[i], inputs.targets).ranks
        assert ranks_of(table, "single", model) == expected.tolist()
        alone = Inputs(
            [model],
            [inputs.images[i]],
            [inputs.queries[i]],
            inputs.query_ids,
            inputs.targets,
            inputs.n_images,
        )
        one = fuse(alone)
        for method in ("rrf", "zscore", "minmax"):
            assert ranks_of(one, method, model) == expected.tolist(), (model, method)
    assert ranks_of(table, "rrf", "m0+m1")[0] == inputs.n_images + 1  # absent target


def test_fusion_equals_brute_force_on_random_data():
    """Fused ranks recomputed here from full score matrices with plain numpy sorts."""
    rng = np.random.default_rng(5)
    inputs = random_inputs(rng)
    table = fuse(inputs, rrf_k=10)
    full = []
    for q, im in zip(inputs.queries, inputs.images, strict=True):
        s = np.einsum("md,npd->mnp", q, im).max(-1) if im.ndim == 3 else q @ im.T
        full.append(s.astype(np.float64))
    n = inputs.n_images
    for row, target in enumerate(inputs.targets[1:], start=1):
        rr = [10 + 1 + np.argsort(np.argsort(-s[row], kind="stable"), kind="stable") for s in full]
        z = [(s[row] - s[row].mean()) / s[row].std() for s in full]
        for members, idx in (("m0+m2", [0, 2]), ("m0+m1+m2", [0, 1, 2])):
            for method, terms in (("rrf", [1 / r for r in rr]), ("zscore", z)):
                fused = np.sum([terms[i] for i in idx], axis=0)
                brute = 1 + np.sum(np.delete(fused, target) > fused[target])
                got = table[(table.method == method) & (table.members == members)]["rank"].iloc[row]
                assert got == brute, (row, members, method)
    assert n == 300


def test_small_memory_budget_spills_and_blocks_with_same_result(tmp_path):
    rng = np.random.default_rng(9)
    inputs = random_inputs(rng)
    big = fuse(inputs)
    small = fuse(inputs, budget_bytes=60_000, scratch=tmp_path)  # 3 x 40 x 300 x 4 > budget
    assert big.equals(small)
    assert list(tmp_path.iterdir()) == []  # the temporary memory map is gone


def test_score_matrix_and_target_ranks():
    rng = np.random.default_rng(0)
    q = rng.normal(size=(5, 4)).astype(np.float32)
    im = rng.normal(size=(7, 2, 4)).astype(np.float32)
    expected = np.einsum("md,npd->mnp", q, im).max(-1)
    assert np.allclose(score_matrix(q, im, chunk_bytes=64), expected, atol=1e-6)
    scores = np.array([[0.2, 0.7, 0.7, 0.1], [0.5, 0.5 - 1e-8, 0.4, 0.9]])
    # row 0, target 1: ties with image 2 -> rank 2; row 1, target 0: image 1 is within
    # round-off below it (counts ahead) and image 3 above -> rank 3
    assert target_ranks(scores, np.array([1, 0])).tolist() == [2, 3]
    assert target_ranks(scores, np.array([MISSING, 3])).tolist() == [5, 1]


def embedding_set(ids, rows):
    return EmbeddingSet(ids=ids, vectors=np.asarray(rows, dtype=np.float32), meta={})


def test_align_inputs_reorders_and_checks():
    a_img = embedding_set(["x", "y", "z"], np.eye(3))
    b_img = embedding_set(["z", "x", "y"], np.eye(3))  # same images, other order
    a_q = embedding_set(["y"], [[0, 1, 0]])
    b_q = embedding_set(["y"], [[0, 0, 1]])  # image y is b's third row
    inputs = align_inputs({"a": a_img, "b": b_img}, {"a": a_q, "b": b_q})
    assert inputs.targets.tolist() == [1]
    table = fuse(inputs)
    assert ranks_of(table, "single", "b") == [1]
    other = embedding_set(["x", "y", "w"], np.eye(3))
    with pytest.raises(InputError, match="different images"):
        align_inputs({"a": a_img, "b": other}, {"a": a_q, "b": b_q}, where="demo/short")
