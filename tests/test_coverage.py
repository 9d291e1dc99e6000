"""Measured coverage of the 95 % intervals (``kisbench.evaluation.metrics.intervals``).

Experiments of 100 queries on collections of 255 and 10,000 images, the target's rank drawn
from a chance-level model (uniform on 1..N) or a strong one (geometric with p = 0.2,
truncated at N). The true values come from the distribution itself (sums over its pmf), not
from the interval code. A 95 % interval should hold the truth in 93-97 % of 2,000 simulated
experiments (the Monte Carlo error of a coverage of 0.95 is 0.005). docs/evaluation.md gives
the numbers; ``python -m tests.test_coverage`` prints them.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
from scipy import stats

from kisbench.evaluation.metrics import (
    RECALL_KS,
    chance_levels,
    chance_p_values,
    chance_test,
    clopper_pearson,
    intervals,
    reciprocal,
    studentized,
)

QUERIES = 100
EXPERIMENTS = 2000
SIZES = (255, 10000)
BAND = (0.93, 0.97)
Interval = Callable[[np.ndarray, int], dict[str, tuple[np.ndarray, np.ndarray]]]


def pmf(kind: str, n_images: int) -> np.ndarray:
    """chance, strong, or "mix W": a strong model for a share W of the queries, chance for
    the rest (printed by ``python -m tests.test_coverage``, not asserted)."""
    r = np.arange(1, n_images + 1)
    uniform = np.full(n_images, 1.0 / n_images)
    strong = 0.2 * 0.8 ** (r - 1)
    strong /= strong.sum()
    if kind == "chance":
        return uniform
    if kind == "strong":
        return strong
    w = float(kind.removeprefix("mix "))
    return w * strong + (1 - w) * uniform


def truth(kind: str, n_images: int) -> dict[str, float]:
    p = pmf(kind, n_images)
    r = np.arange(1, n_images + 1)
    cdf = np.cumsum(p)
    out = {f"r@{k}": float(cdf[min(k, n_images) - 1]) for k in RECALL_KS}
    out["mrr"] = float(np.sum(p / r))
    out["mean_rank"] = float(np.sum(p * r))
    # the median: where the cdf reaches 1/2; on a flat cdf step, the middle of the step
    low = r[np.searchsorted(cdf, 0.5 - 1e-12)]
    high = r[np.searchsorted(cdf, 0.5 + 1e-12)]
    out["median_rank"] = (low + high) / 2
    return out


def library(ranks: np.ndarray, n_images: int) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    return intervals(ranks, n_images, n_boot=1000, seed=11)


def coverage(kind: str, n_images: int, method: Interval = library) -> dict[str, float]:
    rng = np.random.default_rng(2024 + n_images + (kind != "chance"))
    ranks = rng.choice(
        np.arange(1, n_images + 1), size=(EXPERIMENTS, QUERIES), p=pmf(kind, n_images)
    )
    true = truth(kind, n_images)
    out = {}
    for name, (low, high) in method(ranks, n_images).items():
        out[name] = float(np.mean((low <= true[name] + 1e-12) & (true[name] - 1e-12 <= high)))
    return out


CASES = [(kind, n) for n in SIZES for kind in ("chance", "strong")]


@pytest.fixture(scope="module")
def measured() -> dict[tuple[str, int], dict[str, float]]:
    return {case: coverage(*case) for case in CASES}


@pytest.mark.parametrize("case", CASES, ids=[f"{k}-{n}" for k, n in CASES])
def test_mean_rank_coverage(measured, case):
    assert BAND[0] <= measured[case]["mean_rank"] <= BAND[1], measured[case]


@pytest.mark.parametrize("n_images", SIZES)
def test_mrr_coverage_strong_model(measured, n_images):
    assert BAND[0] <= measured[("strong", n_images)]["mrr"] <= BAND[1]


@pytest.mark.parametrize("n_images", SIZES)
def test_mrr_coverage_chance_level(measured, n_images):
    assert BAND[0] <= measured[("chance", n_images)]["mrr"] <= BAND[1]


def bootstrap_only(ranks: np.ndarray, n_images: int) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    x = reciprocal(ranks, n_images)
    return {"mrr": studentized(x, n_boot=1000, seed=11, bounds=(0.0, 1.0))}


@pytest.mark.parametrize(("n_images", "below"), [(255, 0.90), (10000, 0.75)])
def test_the_bootstrap_alone_misses_at_chance_level(n_images, below):
    """Why the MRR interval is raised to chance where the chance test allows it: the
    studentized bootstrap alone covers 0.879 and 0.709 at chance."""
    assert coverage("chance", n_images, bootstrap_only)["mrr"] < below


@pytest.mark.parametrize("kind", ["chance", "strong"])
def test_the_mrr_interval_is_the_bootstrap_raised_to_chance_unless_worse(kind):
    n_images = 10000
    ranks = np.random.default_rng(5).choice(
        np.arange(1, n_images + 1), size=(300, QUERIES), p=pmf(kind, n_images)
    )
    low, high = library(ranks, n_images)["mrr"]
    b_low, b_high = bootstrap_only(ranks, n_images)["mrr"]
    _, worse = chance_p_values(ranks, "mrr", n_images)
    level = chance_levels(n_images)["mrr"]
    assert np.array_equal(low, b_low)
    raised = worse > 0.05
    assert np.array_equal(high[raised], np.maximum(b_high[raised], level))
    assert np.array_equal(high[~raised], b_high[~raised])
    if kind == "strong":  # told from chance: nothing changes
        assert np.array_equal(high, b_high)
    else:  # at chance the raise is what holds the truth in about 1 in 4 experiments
        assert 0.15 < np.mean(b_high < level) and np.all(high[raised] >= level)


def test_batched_chance_p_values_match_the_one_set_test():
    rng = np.random.default_rng(8)
    ranks = rng.integers(1, 256, size=(20, 40)).astype(np.float64)
    ranks[:5] = rng.integers(1, 4, size=(5, 40))  # better than chance
    better, worse = chance_p_values(ranks, "mrr", 255)
    # the same null draws, counted out one rank set at a time
    null = np.random.default_rng(0).integers(1, 256, size=(10000, 40))
    null_mrr = (1.0 / null).mean(axis=1)
    for row, b, w in zip(ranks, better, worse, strict=True):
        observed = (1.0 / row).mean()
        tol = 1e-12 * (1 + observed)
        assert b == (1 + np.sum(null_mrr >= observed - tol)) / 10001
        assert w == (1 + np.sum(null_mrr <= observed + tol)) / 10001
        one = chance_test(row, "mrr", 255)
        assert (one["p_better"], one["p_worse"]) == (b, w)
    assert np.all(better[:5] < 0.001)


@pytest.mark.parametrize("case", CASES, ids=[f"{k}-{n}" for k, n in CASES])
def test_recall_coverage_simulated(measured, case):
    """Through the ranks (``intervals``): never clearly below the level for any k."""
    for k in RECALL_KS:
        assert measured[case][f"r@{k}"] >= BAND[0], (k, measured[case])


@pytest.mark.parametrize("n_images", SIZES)
def test_median_rank_coverage(measured, n_images):
    assert BAND[0] <= measured[("chance", n_images)]["median_rank"] <= BAND[1]
    # A strong model's ranks tie heavily (most are 1-5): the order-statistic interval can
    # only be more conservative then, never less.
    assert measured[("strong", n_images)]["median_rank"] >= BAND[0]


@pytest.mark.parametrize("case", CASES, ids=[f"{k}-{n}" for k, n in CASES])
def test_recall_coverage_exact(case):
    """R@k coverage computed exactly: the sum of the binomial pmf over the counts whose
    interval holds the true proportion. At least 95 % everywhere (Clopper-Pearson);
    within the band wherever the count is not nearly always 0 or n (a discrete count
    can only cover more there: 99 % of chance-level experiments on 10,000 images find no
    target at rank 1)."""
    true = truth(*case)
    found = np.arange(QUERIES + 1)
    low, high = clopper_pearson(found, QUERIES)
    for k in RECALL_KS:
        p = true[f"r@{k}"]
        covered = (low <= p + 1e-12) & (p - 1e-12 <= high)
        exact = float(stats.binom.pmf(found, QUERIES, p)[covered].sum())
        assert exact >= 0.95 - 1e-9, (k, exact)
        if QUERIES * p * (1 - p) >= 3:
            assert exact <= BAND[1], (k, p, exact)


def test_recall_simulation_matches_the_exact_coverage(measured):
    """The same through the ranks (``intervals``): simulated and exact coverage agree."""
    p = truth("chance", 255)["r@50"]
    low, high = clopper_pearson(np.arange(QUERIES + 1), QUERIES)
    covered = (low <= p) & (p <= high)
    exact = stats.binom.pmf(np.arange(QUERIES + 1), QUERIES, p)[covered].sum()
    assert measured[("chance", 255)]["r@50"] == pytest.approx(exact, abs=0.015)


def test_studentized_matches_a_plain_loop():
    """The batched bootstrap-t equals a loop over the same resamples, written out."""
    rng = np.random.default_rng(3)
    x = 1.0 / rng.integers(1, 50, size=60)
    low, high = studentized(x, n_boot=400, seed=9)
    idx = np.random.default_rng(9).integers(0, len(x), size=(400, len(x)))
    se = x.std(ddof=1) / np.sqrt(len(x))
    t = []
    for rows in idx:
        s = x[rows]
        t.append((s.mean() - x.mean()) / (s.std(ddof=1) / np.sqrt(len(s))))
    t_low, t_high = np.quantile(t, [0.025, 0.975])
    assert float(low) == pytest.approx(x.mean() - t_high * se)
    assert float(high) == pytest.approx(x.mean() - t_low * se)


MIXTURES = ("mix 0.02", "mix 0.05", "mix 0.1", "mix 0.3")

if __name__ == "__main__":
    for case in CASES:
        print(case, {k: round(v, 3) for k, v in coverage(*case).items()})
    for n in SIZES:
        for kind in MIXTURES:
            print((kind, n), "mrr", round(coverage(kind, n)["mrr"], 3))
