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

from kisbench.evaluation.metrics import RECALL_KS, clopper_pearson, intervals, studentized

QUERIES = 100
EXPERIMENTS = 2000
SIZES = (255, 10000)
BAND = (0.93, 0.97)
Interval = Callable[[np.ndarray, int], dict[str, tuple[np.ndarray, np.ndarray]]]


def pmf(kind: str, n_images: int) -> np.ndarray:
    r = np.arange(1, n_images + 1)
    p = np.full(n_images, 1.0 / n_images) if kind == "chance" else 0.2 * 0.8 ** (r - 1)
    return p / p.sum()


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
    rng = np.random.default_rng(2024 + n_images + (kind == "strong"))
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


@pytest.mark.xfail(
    strict=True,
    reason="MRR near chance level: the reciprocal rank's tail lies in a few top ranks that "
    "100 queries rarely contain; the studentized bootstrap covers 0.88 (N = 255) and 0.71 "
    "(N = 10,000), the old percentile interval 0.80 and 0.53 (docs/evaluation.md)",
)
@pytest.mark.parametrize("n_images", SIZES)
def test_mrr_coverage_chance_level(measured, n_images):
    assert BAND[0] <= measured[("chance", n_images)]["mrr"] <= BAND[1]


@pytest.mark.parametrize(("n_images", "floor"), [(255, 0.86), (10000, 0.68)])
def test_mrr_coverage_chance_level_floor(measured, n_images, floor):
    """Below the band, but no lower than the studentized bootstrap reaches (0.879, 0.709);
    the percentile interval it replaced reached 0.804 and 0.527."""
    assert measured[("chance", n_images)]["mrr"] >= floor


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


if __name__ == "__main__":
    for case in CASES:
        print(case, {k: round(v, 3) for k, v in coverage(*case).items()})
