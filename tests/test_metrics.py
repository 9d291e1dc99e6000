"""Metrics on hand-computed cases."""

from __future__ import annotations

import numpy as np
import pytest

from kisbench.evaluation.evaluate import RankSet, evaluate
from kisbench.evaluation.metrics import (
    chance_test,
    cumulative_curve,
    mrr,
    recall_at,
    significant,
    summarize,
    value,
)
from kisbench.reset.consistency import json_safe


def test_cumulative_curve_by_hand():
    # Four queries, targets at ranks 1, 3, 2, 10 of a 10-image collection.
    curve = cumulative_curve(np.array([1, 3, 2, 10]), n_images=10)
    assert curve.tolist() == [0.25, 0.5, 0.75, 0.75, 0.75, 0.75, 0.75, 0.75, 0.75, 1.0]


def test_absent_target_is_never_found():
    curve = cumulative_curve(np.array([1, 6]), n_images=5)  # rank 6 = not in the collection
    assert curve.tolist() == [0.5] * 5


def test_point_metrics_by_hand():
    ranks = np.array([1, 3, 2, 10])
    assert recall_at(ranks, 1, 10) == 0.25
    assert recall_at(ranks, 5, 10) == 0.75
    assert mrr(ranks, 10) == pytest.approx((1 + 1 / 3 + 1 / 2 + 1 / 10) / 4)
    s = summarize(ranks, 10, n_boot=200)
    assert s["median_rank"]["value"] == 2.5
    assert s["mean_rank"]["value"] == 4.0
    assert s["r@10"]["value"] == 1.0
    assert s["mrr"]["value"] == pytest.approx(0.48333333)


def test_bootstrap_interval_contains_value_and_is_seeded():
    rng = np.random.default_rng(1)
    ranks = rng.integers(1, 100, size=100)
    a = summarize(ranks, 100, n_boot=500, seed=3)
    b = summarize(ranks, 100, n_boot=500, seed=3)
    assert a == b
    for m in a.values():
        assert m["low"] <= m["value"] <= m["high"]
    assert a["mrr"]["high"] > a["mrr"]["low"]


def test_constant_ranks_have_a_zero_width_interval():
    s = summarize(np.full(30, 2), 10, n_boot=100)
    assert s["mrr"] == {"value": 0.5, "low": 0.5, "high": 0.5}


def test_an_mrr_not_shown_worse_than_chance_reaches_up_to_chance():
    """Rank 4 of 10 for all 30 queries: MRR 0.25 against chance H_10 / 10 = 0.2929. 30
    random rankings reach an MRR of 0.25 or less often (p well above 0.05), so the interval
    is the bootstrap's [0.25, 0.25] raised to the chance level."""
    s = summarize(np.full(30, 4), 10, n_boot=100)
    chance = sum(1 / r for r in range(1, 11)) / 10
    assert s["mrr"] == pytest.approx({"value": 0.25, "low": 0.25, "high": chance})
    # 30 queries at rank 10 of 10 are worse than chance beyond doubt: no raise
    s = summarize(np.full(30, 10), 10, n_boot=100)
    assert s["mrr"] == pytest.approx({"value": 0.1, "low": 0.1, "high": 0.1})


def test_bad_ranks_are_rejected():
    with pytest.raises(ValueError):
        cumulative_curve(np.array([0, 1]), 5)
    with pytest.raises(ValueError):
        summarize(np.array([]), 5)


def test_never_found_is_never_found_by_hand():
    """30 images, 11 targets, one never found (the rank stage writes images + 1 = 31): as
    TREC counts an unretrieved item, it adds nothing to MRR and is outside the top k for
    every k, k > 30 included, in the metrics and the curve alike."""
    found = [1, 2, 2, 3, 5, 7, 10, 12, 20, 30]
    ranks = np.array([*found, 31])
    s = summarize(ranks, 30, n_boot=200)
    for k in (50, 100):
        assert s[f"r@{k}"]["value"] == pytest.approx(10 / 11)
        assert recall_at(ranks, k, 30) == pytest.approx(10 / 11)
    assert s["r@10"]["value"] == pytest.approx(7 / 11)
    by_hand = (1 + 1 / 2 + 1 / 2 + 1 / 3 + 1 / 5 + 1 / 7 + 1 / 10 + 1 / 12 + 1 / 20 + 1 / 30) / 11
    assert s["mrr"]["value"] == pytest.approx(by_hand)  # no 1/31 term
    assert mrr(ranks, 30) == pytest.approx(by_hand)
    curve = cumulative_curve(ranks, 30)
    assert curve.max() == pytest.approx(10 / 11) and curve[-1] == pytest.approx(10 / 11)
    # the metrics and the curve agree at every k the curve has
    for k in (1, 5, 10):
        assert curve[k - 1] == pytest.approx(s[f"r@{k}"]["value"])
    # median and mean rank place it after the last image: rank 31
    assert s["mean_rank"]["value"] == pytest.approx((sum(found) + 31) / 11)
    assert value(np.array([40, 40, 1]), "mean_rank", 30) == pytest.approx((31 + 31 + 1) / 3)
    # its interval is about 10 of 11, not about 11 of 11
    assert s["r@100"]["high"] < 1.0


def test_json_numbers_keep_significant_digits():
    assert significant(-3.54299e-05) == -3.54299e-05
    assert significant(0.123456789) == 0.123457
    assert significant(12345.678) == 12345.7
    assert round(-3.54299e-05, 6) != -3.54299e-05  # what 6 decimal places did


def test_chance_test_has_its_level_and_finds_the_obvious():
    """Random rankings are called better than random in about 5 % of experiments (the
    null is simulated with another seed than the experiments); all-first and all-last
    rankings are as far from chance as the simulation can say."""
    rng = np.random.default_rng(8)
    n_images, reps = 255, 300
    rejected = sum(
        chance_test(rng.integers(1, n_images + 1, size=100), "mrr", n_images, n_sims=1000)[
            "p_better"
        ]
        < 0.05
        for _ in range(reps)
    )
    assert 0.02 <= rejected / reps <= 0.09
    best = chance_test(np.ones(100), "mrr", n_images, n_sims=999)
    assert best["p_better"] == pytest.approx(1 / 1000) and best["p_worse"] == 1.0
    worst = chance_test(np.full(100, n_images), "median_rank", n_images, n_sims=999)
    assert worst["p_worse"] == pytest.approx(1 / 1000)


def test_metrics_files_keep_significant_digits():
    """kis_details, kis.json and the RESET summary keep 6 significant digits, not 6
    decimals (which turned -3.54299e-05 into -3.5e-05 and 1e-07 into 0)."""
    n_images = 10_000_000
    ranks = np.full(4, n_images)  # MRR = 1e-07
    sets = [RankSet("m", "c", "short", ranks, n_images, None, ("a", "b", "c", "d"))]
    head, details, _ = evaluate(sets, n_boot=50)
    assert head["mrr"]["c"]["short"]["m"] == pytest.approx(1e-07, rel=1e-9)
    assert details["c"]["short"]["m"]["mrr"]["value"] == pytest.approx(1e-07, rel=1e-9)
    safe = json_safe({"pearson": -3.54299123e-05, "n": np.int64(3), "x": float("nan")})
    assert safe == {"pearson": -3.54299e-05, "n": 3, "x": None}
