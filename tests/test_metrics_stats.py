"""Metrics, chance levels and paired tests against hand-worked values and known truths."""

from itertools import product

import numpy as np
import pandas as pd
import pytest

from kisbench.evaluation.metrics import (
    chance_levels,
    cumulative_curve,
    mrr,
    recall_at,
    summarize,
    value,
)
from kisbench.evaluation.pairwise import (
    complementary,
    gains_table,
    paired_difference,
    pairs_table,
    top_models,
    wilcoxon_ranks,
)

RANKS = np.array([1, 2, 4, 10])  # worked by hand below, collection of 10 images


def test_metrics_by_hand():
    assert recall_at(RANKS, 1, 10) == 0.25
    assert recall_at(RANKS, 5, 10) == 0.75
    assert recall_at(RANKS, 10, 10) == 1.0
    assert mrr(RANKS, 10) == pytest.approx((1 + 1 / 2 + 1 / 4 + 1 / 10) / 4)  # 0.4625
    assert value(RANKS, "median_rank", 10) == 3.0
    assert value(RANKS, "mean_rank", 10) == 4.25


def test_curve_by_hand_and_absent_target():
    curve = cumulative_curve(RANKS, 10)
    assert curve.tolist() == [0.25, 0.5, 0.5, 0.75, 0.75, 0.75, 0.75, 0.75, 0.75, 1.0]
    # rank 11 = target not in a 10-image collection: never found, but still a query
    assert cumulative_curve(np.array([1, 11]), 10)[-1] == 0.5


def test_chance_levels_match_enumeration():
    n = 7
    every_rank = np.arange(1, n + 1)  # a uniformly random rank takes each value once
    chance = chance_levels(n)
    assert chance["mrr"] == pytest.approx(np.mean(1 / every_rank))
    assert chance["r@5"] == pytest.approx(5 / 7)
    assert chance["r@10"] == 1.0
    assert chance["median_rank"] == 4.0
    assert chance_levels(4)["mrr"] == pytest.approx(25 / 48)


def test_bootstrap_ci_coverage_on_known_truth():
    """Ranks from a known distribution: the 95% interval should hold the true MRR and R@10
    in about 95% of repeated experiments of 100 queries."""
    support = np.arange(1, 201)
    p = 1 / support**1.2
    p /= p.sum()
    truth = {"mrr": float(np.sum(p / support)), "r@10": float(p[:10].sum())}
    rng = np.random.default_rng(123)
    reps = 400
    hits = {name: 0 for name in truth}
    for rep in range(reps):
        ranks = rng.choice(support, size=100, p=p)
        ci = summarize(ranks, 200, n_boot=600, seed=rep)
        for name, true in truth.items():
            hits[name] += ci[name]["low"] <= true <= ci[name]["high"]
    for name in truth:
        coverage = hits[name] / reps
        assert 0.90 <= coverage <= 0.985, (name, coverage)


def test_top_models_order_and_direction():
    values = {"a": 0.2, "b": 0.5, "c": 0.5, "d": 0.1}
    assert top_models(values, 3, "mrr") == ["b", "c", "a"]  # tie keeps given order
    assert top_models(values, 2, "median_rank") == ["d", "a"]  # lower is better
    assert top_models(values, 10, "mrr") == ["b", "c", "a", "d"]


def test_complementary_is_per_query_best():
    assert complementary(np.array([3, 1, 7]), np.array([2, 5, 7])).tolist() == [2, 1, 7]


def test_paired_difference_type_one_error_near_nominal():
    """Both models draw each query's rank from the same distribution: p < 0.05 should
    happen in about 5% of experiments."""
    rng = np.random.default_rng(7)
    reps = 300
    rejected = 0
    for rep in range(reps):
        a = rng.integers(1, 60, size=100)
        b = rng.integers(1, 60, size=100)
        rejected += paired_difference(a, b, n_images=60, n_boot=500, seed=rep).p < 0.05
    assert 0.015 <= rejected / reps <= 0.10


def test_paired_difference_detects_a_real_difference():
    rng = np.random.default_rng(1)
    a = rng.integers(1, 5, size=100)
    b = a + rng.integers(5, 50, size=100)  # b is worse on every query
    test = paired_difference(a, b, n_images=60, n_boot=500)
    assert test.diff == pytest.approx(mrr(a, 60) - mrr(b, 60))
    assert 0 < test.low <= test.diff <= test.high
    assert test.p == pytest.approx(1 / 501)  # no resample crosses zero


def test_paired_difference_identical_models():
    a = np.array([1, 3, 5, 8])
    test = paired_difference(a, a.copy(), n_images=10, n_boot=100)
    assert (test.diff, test.low, test.high, test.p) == (0.0, 0.0, 0.0, 1.0)


def test_wilcoxon_matches_exact_enumeration():
    """Exact two-sided signed-rank p-value by enumerating every sign assignment."""
    a = np.array([1, 4, 2, 30, 6, 9, 3, 12])
    d = np.array([-2, 3, -7, 28, -1, -21, -4, 11])  # distinct non-zero |d|: exact test
    b = a - d
    magnitude_rank = np.argsort(np.argsort(np.abs(d))) + 1
    observed = magnitude_rank[d > 0].sum()
    total = magnitude_rank.sum()
    sums = [
        sum(r for r, s in zip(magnitude_rank, signs, strict=True) if s)
        for signs in product([0, 1], repeat=len(d))
    ]
    tail = min(observed, total - observed)
    exact = np.mean([min(s, total - s) <= tail for s in sums])
    assert wilcoxon_ranks(a, b) == pytest.approx(exact)
    assert wilcoxon_ranks(a, a) == 1.0


def series(ranks, ids):
    return pd.Series(ranks, index=ids)


def test_pairs_table_rows_and_adjustment():
    ids = [f"q{i}" for i in range(6)]
    ranks = {
        "good": series([1, 1, 2, 1, 3, 1], ids),
        "mid": series([2, 5, 1, 4, 3, 2], ids),
        # same queries in another order: the table must pair by query id, not position
        "bad": series([9, 8, 9, 7, 9, 9], ids).iloc[::-1],
    }
    table = pairs_table(
        ranks, ["good", "mid", "bad"], metric="mrr", n_images=10, n_boot=200, seed=0
    )
    assert list(zip(table.model_a, table.model_b, strict=True)) == [
        ("good", "mid"),
        ("good", "bad"),
        ("mid", "bad"),
    ]
    row = table.iloc[0]
    assert (row.a_better, row.b_better, row.same_rank) == (4, 1, 1)
    oracle = [1, 1, 1, 1, 3, 1]
    assert row.oracle == pytest.approx(np.mean(1 / np.array(oracle)))
    assert row.value_a == pytest.approx(mrr(np.array([1, 1, 2, 1, 3, 1]), 10))
    # Benjamini-Hochberg over the 3 pairs: q >= p, and the smallest p is scaled by 3 / 1
    assert (table.q_paired >= table.p_paired - 1e-12).all()
    smallest = table.p_paired.min()
    assert table.q_paired[table.p_paired.idxmin()] <= 3 * smallest + 1e-12
    bad_row = table.iloc[1]
    assert bad_row.value_b == pytest.approx(np.mean(1 / np.array([9, 8, 9, 7, 9, 9])))


def test_gains_table_pairs_only_the_targets_of_both_labelsets():
    # short: 4 targets; long (a partial labelset): 2 of them and one short lacks.
    short = series([4, 2, 10, 1], ["w", "x", "y", "z"])
    long = series([1, 5, 3], ["y", "x", "v"])
    table = gains_table(
        {"short": short, "long": long},
        ["short", "long"],
        metric="mrr",
        n_images=20,
        n_boot=100,
        seed=0,
    )
    row = table.iloc[0]
    assert row.queries == 2  # x and y: the only targets with both queries
    assert row.value_base == pytest.approx((1 / 2 + 1 / 10) / 2)
    assert row.value == pytest.approx((1 / 5 + 1 / 1) / 2)
    assert row.gain == pytest.approx(row.value - row.value_base)
    none = gains_table(
        {"short": short, "long": series([1], ["q"])},
        ["short", "long"],
        metric="mrr",
        n_images=20,
        n_boot=100,
        seed=0,
    )
    assert none.empty  # nothing in common: no row


def test_gains_table_pairs_by_query():
    ids = ["x", "y", "z"]
    per_labelset = {"short": series([4, 2, 10], ids), "long": series([1, 1, 5], ids)[::-1]}
    table = gains_table(
        per_labelset, ["short", "long"], metric="mrr", n_images=10, n_boot=100, seed=0
    )
    assert len(table) == 1
    row = table.iloc[0]
    assert (row.base, row.labelset) == ("short", "long")
    assert row.gain == pytest.approx((1 + 1 + 1 / 5) / 3 - (1 / 4 + 1 / 2 + 1 / 10) / 3)
