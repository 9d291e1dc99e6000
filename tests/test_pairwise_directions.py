"""Directions and effect sizes of the paired tests, and the Benjamini-Hochberg families."""

import numpy as np
import pandas as pd
import pytest

from kisbench.evaluation.evaluate import RankSet, compare
from kisbench.evaluation.fusion import normalise
from kisbench.evaluation.pairwise import complementary, pairs_table, rank_biserial
from kisbench.evaluation.ranking import target_ranks


def test_rank_biserial_by_hand():
    a = np.array([1, 4, 2, 30, 6])
    b = np.array([3, 1, 9, 2, 6])
    # b - a = 2, -3, 7, -28, 0: the tie is dropped; magnitude ranks 1, 2, 3, 4;
    # A better on the queries of magnitude ranks 1 and 3, B on 2 and 4: (4 - 6) / 10
    assert rank_biserial(a, b) == pytest.approx(-0.2)
    assert rank_biserial(b, a) == pytest.approx(0.2)
    assert rank_biserial(a, a) == 0.0
    # tied magnitudes share their mean rank: |d| = 2, 2, 50, 50 -> 1.5, 1.5, 3.5, 3.5
    assert rank_biserial(np.array([1, 1, 60, 60]), np.array([3, 3, 10, 10])) == pytest.approx(
        (3 - 7) / 10
    )
    assert rank_biserial(np.array([1, 2]), np.array([5, 9])) == 1.0  # A better everywhere


def test_pair_rows_report_the_rank_test_direction_and_disagreement():
    ids = ["q1", "q2", "q3", "q4"]
    # A finds two targets at rank 1 and loses two deep ones: MRR favours A (0.508 vs
    # 0.217), the per-query ranks favour B (r = -0.4): the row must say they disagree.
    ranks = {
        "a": pd.Series([1, 1, 60, 60], index=ids),
        "b": pd.Series([3, 3, 10, 10], index=ids),
        "c": pd.Series([2, 2, 70, 70], index=ids),
    }
    table = pairs_table(ranks, ["a", "b", "c"], metric="mrr", n_images=100, n_boot=200, seed=0)
    row = table.set_index(["model_a", "model_b"]).loc[("a", "b")]
    assert row["diff"] > 0
    assert row["rank_biserial"] == pytest.approx(-0.4)
    assert row["directions_disagree"] == 1
    agree = table.set_index(["model_a", "model_b"]).loc[("a", "c")]  # A better everywhere
    assert agree["rank_biserial"] == pytest.approx(1.0)
    assert agree["directions_disagree"] == 0


def bh_by_hand(p):
    """Benjamini-Hochberg written out: q_(i) = min over j >= i of p_(j) * m / j."""
    p = np.asarray(p, dtype=float)
    m = len(p)
    order = np.argsort(p)
    q = np.empty(m)
    running = 1.0
    for j in range(m - 1, -1, -1):
        running = min(running, p[order[j]] * m / (j + 1))
        q[order[j]] = running
    return q


def toy_sets():
    rng = np.random.default_rng(5)
    n, n_images = 40, 200
    ids = tuple(f"q{i}" for i in range(n))
    sets = []
    for collection in ("c1", "c2"):
        for labelset in ("short", "long"):
            base = rng.integers(1, 30, size=n)
            for model, shift in (("m1", 0), ("m2", 3), ("m3", 10)):
                ranks = np.minimum(base + rng.integers(0, shift + 1, size=n), n_images)
                sets.append(RankSet(model, collection, labelset, ranks, n_images, None, ids))
    return sets


def test_one_family_per_test_over_the_whole_experiment():
    pairs, gains = compare(toy_sets(), top_n=3, n_boot=300, seed=0)
    assert len(pairs) == 4 * 3  # 2 collections x 2 labelsets x 3 pairs
    for test in ("paired", "wilcoxon"):
        expected = bh_by_hand(pairs[f"p_{test}"])
        assert np.allclose(pairs[f"q_{test}"], expected)
    # not the per-graph adjustment of before: with 12 tests the scaling differs
    one_graph = pairs[(pairs.collection == "c1") & (pairs.labelset == "short")]
    assert not np.allclose(one_graph["q_wilcoxon"], bh_by_hand(one_graph["p_wilcoxon"]))
    # the long-vs-short gains are adjusted too, as one family
    assert len(gains) == 2 * 3
    assert np.allclose(gains["q_paired"], bh_by_hand(gains["p_paired"]))


def test_fusion_can_beat_the_per_query_best_of_its_models():
    """Why the oracle is no bound for fusion: two models each put the target second, behind
    a different distractor; summing their z-scores puts it first, above both ranks."""
    # columns: target, distractor x, distractor y
    one = np.array([[0.9, 1.0, 0.0]])
    two = np.array([[0.9, 0.0, 1.0]])
    target = np.array([0])
    alone = [target_ranks(s, target) for s in (one, two)]
    assert [int(r[0]) for r in alone] == [2, 2]
    assert int(complementary(*alone)[0]) == 2
    (a, tol_a), (b, tol_b) = normalise(one, "zscore"), normalise(two, "zscore")
    assert int(target_ranks(a + b, target, tol_a + tol_b)[0]) == 1
