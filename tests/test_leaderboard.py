"""The leaderboard: rank intervals, ties with #1 and the detectable difference, against
independent computations (identities, a normal-theory formula, a brute-force power run)."""

import json

import numpy as np
import pytest
from scipy import stats

from kisbench.evaluation.leaderboard import detectable_difference, graph_leaderboard
from kisbench.evaluation.metrics import reciprocal

N_IMAGES = 500


def test_identical_models_are_tied_and_share_rank_one():
    rng = np.random.default_rng(0)
    a = rng.integers(1, 40, size=100)
    board = graph_leaderboard({"a": a, "twin": a.copy()}, N_IMAGES, n_boot=500)
    rows = board["models"]
    assert rows["a"]["rank"] == rows["twin"]["rank"] == 1
    assert (rows["twin"]["rank_low"], rows["twin"]["rank_high"]) == (1, 1)
    assert rows["twin"]["tied_with_first"] is True
    assert rows["twin"]["gap_to_first"] == 0
    json.dumps(board)  # the DVC metric file must be plain JSON


def test_a_clearly_better_model_is_not_tied():
    rng = np.random.default_rng(1)
    good = rng.integers(1, 3, size=100)
    bad = good + rng.integers(20, 200, size=100)
    near = np.where(rng.random(100) < 0.05, good + 1, good)  # differs on a few queries
    board = graph_leaderboard({"bad": bad, "good": good, "near": near}, N_IMAGES, n_boot=1000)
    assert board["best"] == "good"
    assert list(board["models"]) == ["good", "near", "bad"]  # best first
    rows = board["models"]
    assert rows["bad"]["tied_with_first"] is False
    assert (rows["bad"]["rank_low"], rows["bad"]["rank_high"]) == (3, 3)
    assert rows["near"]["tied_with_first"] is True
    assert (rows["good"]["rank_low"], rows["good"]["rank_high"]) == (1, 1)
    assert board["queries_to_halve_interval"] == 400


def test_rank_interval_spans_the_ranks_two_close_models_take():
    rng = np.random.default_rng(2)
    base = rng.integers(1, 60, size=100)
    a = base
    b = np.where(rng.random(100) < 0.5, base, rng.integers(1, 60, size=100))
    board = graph_leaderboard({"a": a, "b": b}, N_IMAGES, n_boot=2000, seed=4)
    second = board["models"]["b" if board["best"] == "a" else "a"]
    assert (second["rank_low"], second["rank_high"]) == (1, 2)
    assert second["tied_with_first"] is True


def test_detectable_difference_matches_normal_theory_and_brute_force():
    rng = np.random.default_rng(3)
    a = reciprocal(rng.integers(1, 30, size=100), N_IMAGES)
    b = reciprocal(rng.integers(1, 30, size=100), N_IMAGES)
    delta = detectable_difference(a, b, n_sims=4000, seed=0)
    d = a - b
    # normal theory: (z_0.975 + z_0.8) * sd / sqrt(n)
    theory = (stats.norm.ppf(0.975) + stats.norm.ppf(0.8)) * d.std(ddof=1) / np.sqrt(len(d))
    assert delta == pytest.approx(theory, rel=0.1)
    # brute force, another seed and another test (scipy's paired t-test): experiments with
    # true difference delta reject in about 80 % of cases, with half of it far less often
    brute = np.random.default_rng(99)
    centred = d - d.mean()

    def power(shift: float) -> float:
        samples = centred[brute.integers(0, len(d), size=(3000, len(d)))] + shift
        return float(np.mean(stats.ttest_1samp(samples, 0.0, axis=1).pvalue < 0.05))

    assert power(delta) == pytest.approx(0.8, abs=0.04)
    assert power(delta / 2) < 0.45


def test_the_leaderboard_reports_the_detectable_gap_of_one_and_two():
    rng = np.random.default_rng(5)
    first = rng.integers(1, 10, size=100)
    second = rng.integers(1, 14, size=100)
    board = graph_leaderboard({"x": first, "y": second}, N_IMAGES, n_boot=2000)
    best, other = (first, second) if board["best"] == "x" else (second, first)
    expected = detectable_difference(
        reciprocal(best, N_IMAGES), reciprocal(other, N_IMAGES), n_sims=2000
    )
    assert board["detectable_difference"] == pytest.approx(expected, rel=1e-5)
    row = board["models"]["y" if board["best"] == "x" else "x"]
    gap, detect = row["gap_to_first"], row["detectable_gap"]
    # the queries at which this gap would be detected, by the 1 / sqrt(n) law
    assert row["queries_to_detect_gap"] == int(np.ceil(100 * (detect / gap) ** 2))
