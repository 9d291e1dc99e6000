"""Metrics on hand-computed cases."""

from __future__ import annotations

import numpy as np
import pytest

from kisbench.evaluation.metrics import cumulative_curve, mrr, recall_at, summarize


def test_cumulative_curve_by_hand():
    # Four queries, targets at ranks 1, 3, 2, 10 of a 10-image collection.
    curve = cumulative_curve(np.array([1, 3, 2, 10]), n_images=10)
    assert curve.tolist() == [0.25, 0.5, 0.75, 0.75, 0.75, 0.75, 0.75, 0.75, 0.75, 1.0]


def test_absent_target_is_never_found():
    curve = cumulative_curve(np.array([1, 6]), n_images=5)  # rank 6 = not in the collection
    assert curve.tolist() == [0.5] * 5


def test_point_metrics_by_hand():
    ranks = np.array([1, 3, 2, 10])
    assert recall_at(ranks, 1) == 0.25
    assert recall_at(ranks, 5) == 0.75
    assert mrr(ranks) == pytest.approx((1 + 1 / 3 + 1 / 2 + 1 / 10) / 4)
    s = summarize(ranks, n_boot=200)
    assert s["median_rank"]["value"] == 2.5
    assert s["mean_rank"]["value"] == 4.0
    assert s["r@10"]["value"] == 1.0
    assert s["mrr"]["value"] == pytest.approx(0.48333333)


def test_bootstrap_interval_contains_value_and_is_seeded():
    rng = np.random.default_rng(1)
    ranks = rng.integers(1, 100, size=100)
    a = summarize(ranks, n_boot=500, seed=3)
    b = summarize(ranks, n_boot=500, seed=3)
    assert a == b
    for m in a.values():
        assert m["low"] <= m["value"] <= m["high"]
    assert a["mrr"]["high"] > a["mrr"]["low"]


def test_constant_ranks_have_a_zero_width_interval():
    s = summarize(np.full(30, 4), n_boot=100)
    assert s["mrr"] == {"value": 0.25, "low": 0.25, "high": 0.25}


def test_bad_ranks_are_rejected():
    with pytest.raises(ValueError):
        cumulative_curve(np.array([0, 1]), 5)
    with pytest.raises(ValueError):
        summarize(np.array([]))
