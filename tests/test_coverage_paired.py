"""Measured coverage of the paired-difference intervals (``kisbench.evaluation.pairwise``).

Experiments of 100 queries on collections of 255 and 10,000 images. Each query's two ranks,
model A's and model B's, are drawn with a Gaussian copula (correlation 0.6: two models of
one collection find the same targets hard) from two marginals: chance (uniform on 1..N) or
geometric with p = 0.3 (stronger), 0.2 (strong), 0.05 (weak), truncated at N; and a
near-chance model, 5 % geometric(0.3) and 95 % chance. The true difference comes from the
two marginal pmfs (sums over them), not from the interval code. A 95 % interval should hold
it in 93-97 % of the experiments: 2,000 for MRR, R@10 and mean rank (the Monte Carlo error
of a coverage of 0.95 is 0.005), 500 for the median rank (0.010; its bootstrap sorts every
resample). docs/evaluation.md gives the numbers; ``python -m tests.test_coverage_paired``
prints them.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable

import numpy as np
import pytest
from scipy import stats

from kisbench.evaluation.metrics import studentized
from kisbench.evaluation.pairwise import agresti_min, paired_batch, paired_difference

QUERIES = 100
EXPERIMENTS = {"mrr": 2000, "r@10": 2000, "mean_rank": 2000, "median_rank": 500}
RESAMPLES = {"mrr": 1000, "r@10": 1000, "mean_rank": 1000, "median_rank": 500}
METRICS = tuple(EXPERIMENTS)
RHO = 0.6
BAND = (0.93, 0.97)
ALPHA = 0.05
GEOMETRIC = {"stronger": 0.3, "strong": 0.2, "weak": 0.05}
PAIRS = [
    ("stronger", "strong"),
    ("strong", "weak"),
    ("strong", "chance"),
    ("chance", "chance"),
    ("weak", "weak"),
    ("near", "chance"),
]
CASES = [(a, b, n) for n in (255, 10000) for a, b in PAIRS]
IDS = [f"{a}-{b}-{n}" for a, b, n in CASES]
# Result: per metric, (low, high, p) arrays over the experiments.
Method = Callable[[np.ndarray, np.ndarray, int, str], tuple[np.ndarray, np.ndarray, np.ndarray]]


def pmf(kind: str, n_images: int) -> np.ndarray:
    r = np.arange(1, n_images + 1)
    if kind == "chance":
        p = np.full(n_images, 1.0 / n_images)
    elif kind == "near":
        p = 0.05 * pmf("stronger", n_images) + 0.95 * pmf("chance", n_images)
    else:
        q = GEOMETRIC[kind]
        p = q * (1 - q) ** (r - 1)
    return p / p.sum()


def truth(kind: str, n_images: int) -> dict[str, float]:
    p = pmf(kind, n_images)
    r = np.arange(1, n_images + 1)
    cdf = np.cumsum(p)
    # the median: where the cdf reaches 1/2; on a flat cdf step, the middle of the step
    low = r[np.searchsorted(cdf, 0.5 - 1e-12)]
    high = r[np.searchsorted(cdf, 0.5 + 1e-12)]
    return {
        "mrr": float(np.sum(p / r)),
        "r@10": float(cdf[9]),
        "mean_rank": float(np.sum(p * r)),
        "median_rank": (low + high) / 2,
    }


def draw(kind_a: str, kind_b: str, n_images: int, experiments: int) -> tuple[np.ndarray, ...]:
    """(experiments, QUERIES) ranks of A and of B, correlated per query."""
    rng = np.random.default_rng(2024 + n_images + 10 * PAIRS.index((kind_a, kind_b)))
    z_a = rng.standard_normal((experiments, QUERIES))
    z_b = RHO * z_a + np.sqrt(1 - RHO**2) * rng.standard_normal((experiments, QUERIES))
    out = []
    for kind, z in ((kind_a, z_a), (kind_b, z_b)):
        cdf = np.cumsum(pmf(kind, n_images))
        cdf[-1] = 1.0
        out.append(np.searchsorted(cdf, stats.norm.cdf(z)) + 1)
    return tuple(out)


def library(a: np.ndarray, b: np.ndarray, n_images: int, metric: str) -> tuple[np.ndarray, ...]:
    _, low, high, p = paired_batch(
        a, b, n_images=n_images, metric=metric, n_boot=RESAMPLES[metric], seed=11
    )
    return low, high, p


def _per_query(r: np.ndarray, metric: str, n_images: int) -> np.ndarray:
    if metric == "mrr":
        return np.where(r <= n_images, 1.0 / r, 0.0)
    if metric == "r@10":
        return (r <= 10).astype(np.float64)
    return np.minimum(r, n_images + 1).astype(np.float64)


def percentile(a: np.ndarray, b: np.ndarray, n_images: int, metric: str) -> tuple[np.ndarray, ...]:
    """The interval before (``git show HEAD:kisbench/evaluation/pairwise.py``): the
    percentile interval of the paired bootstrap and its centred p-value, for the means;
    the median rank kept it."""
    if metric == "median_rank":
        return library(a, b, n_images, metric)
    d = _per_query(a, metric, n_images) - _per_query(b, metric, n_images)
    idx = np.random.default_rng(11).integers(0, QUERIES, size=(RESAMPLES[metric], QUERIES))
    # each resample as how often it drew each query: the resampled means are d @ counts.T
    counts = (idx[:, :, None] == np.arange(QUERIES)).sum(axis=1)
    boot = d @ counts.T / QUERIES
    diff = d.mean(axis=-1)
    low, high = np.quantile(boot, [ALPHA / 2, 1 - ALPHA / 2], axis=-1)
    far = np.abs(boot - diff[:, None]) >= np.abs(diff)[:, None] - 1e-12
    return low, high, (1 + far.sum(axis=-1)) / (len(idx) + 1)


def bootstrap_t_alone(
    a: np.ndarray, b: np.ndarray, n_images: int, metric: str
) -> tuple[np.ndarray, ...]:
    """The MRR interval without the widening: the studentized bootstrap of the per-query
    differences, with the library's p."""
    low, high = studentized(
        _per_query(a, metric, n_images) - _per_query(b, metric, n_images),
        n_boot=RESAMPLES[metric],
        seed=11,
        bounds=(-1.0, 1.0),
    )
    return low, high, library(a, b, n_images, metric)[2]


def coverage(
    case: tuple[str, str, int], method: Method = library, metrics: tuple[str, ...] = METRICS
) -> dict[str, dict[str, float]]:
    """Per metric: the coverage, the share of experiments whose p <= 5 % and the share
    whose interval and p disagree (excludes 0 but p > 5 %, or the reverse)."""
    kind_a, kind_b, n_images = case
    true_a, true_b = truth(kind_a, n_images), truth(kind_b, n_images)
    out = {}
    for metric in metrics:
        a, b = draw(kind_a, kind_b, n_images, EXPERIMENTS[metric])
        low, high, p = method(a, b, n_images, metric)
        true = true_a[metric] - true_b[metric]
        tol = 1e-12 * (1 + abs(true))
        excludes = (low > 0) | (high < 0)
        out[metric] = {
            "coverage": float(np.mean((low <= true + tol) & (true - tol <= high))),
            "rejected": float(np.mean(p <= ALPHA)),
            "disagree": float(np.mean(excludes != (p <= ALPHA))),
            # queries found in the top 10 by one model only, per experiment
            "discordant": float(np.mean(np.sum((a <= 10) != (b <= 10), axis=-1))),
        }
    return out


# The median's bootstrap sorts every resample (about 1.4 s a case): the tests measure it
# where it is closest to failing and at a true 0; the table (__main__) everywhere.
MEDIAN_CASES = [c for c in CASES if c[:2] in (("stronger", "strong"), ("chance", "chance"))]


@pytest.fixture(scope="module")
def measured() -> dict[tuple[str, str, int], dict[str, dict[str, float]]]:
    return {
        case: coverage(case, metrics=METRICS if case in MEDIAN_CASES else METRICS[:3])
        for case in CASES
    }


@pytest.fixture(scope="module")
def before() -> dict[tuple[str, str, int], dict[str, dict[str, float]]]:
    chance = [c for c in CASES if c[:2] == ("chance", "chance")]
    return {case: coverage(case, percentile, METRICS[:3]) for case in chance}


# The band is claimed everywhere but for the MRR of a near-chance model against chance (a
# few top hits carry its MRR; test_never_clearly_below bounds it).
BAND_CASES = [
    (case, metric)
    for metric in ("mrr", "r@10", "mean_rank")
    for case in CASES
    if not (metric == "mrr" and case[0] == "near")
]


@pytest.mark.parametrize(
    ("case", "metric"), BAND_CASES, ids=[f"{m}-{a}-{b}-{n}" for (a, b, n), m in BAND_CASES]
)
def test_coverage_in_band(measured, case, metric):
    """The upper end for R@10 only where at least 8 queries per experiment are found in the
    top 10 by one model only: a discrete count can only cover more below that (on 10,000
    images at chance nearly every experiment has none)."""
    got = measured[case][metric]
    high = BAND[1] if metric != "r@10" or got["discordant"] >= 8 else 1.0
    assert BAND[0] <= got["coverage"] <= high, got


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_never_clearly_below(measured, case):
    """Where the band is not claimed, the interval only over-covers, except the MRR of a
    near-chance model against chance on 255 images and the median of stronger vs strong
    (both stated in the docs)."""
    floor = {"mrr": 0.90, "r@10": BAND[0], "mean_rank": BAND[0], "median_rank": 0.90}
    for metric in measured[case]:
        assert measured[case][metric]["coverage"] >= floor[metric], (metric, measured[case])


@pytest.mark.parametrize("n_images", [255, 10000])
def test_the_percentile_interval_missed_at_chance(before, n_images):
    """Why the MRR interval changed: the old percentile interval covered a true 0 between
    two chance-level models in about 91 % of experiments."""
    assert before[("chance", "chance", n_images)]["mrr"]["coverage"] < BAND[0]


@pytest.mark.parametrize("n_images", [255, 10000])
def test_the_bootstrap_t_alone_missed_at_chance(n_images):
    """Why it is widened: without it the bootstrap-t covers a true 0 between two
    chance-level models less often still (0.88 / 0.87)."""
    got = coverage(("chance", "chance", n_images), bootstrap_t_alone, ("mrr",))
    assert got["mrr"]["coverage"] < 0.91


@pytest.mark.parametrize("n_images", [255, 10000])
def test_no_more_disagreement_than_before(measured, before, n_images):
    case = ("chance", "chance", n_images)
    for metric in ("mrr", "r@10", "mean_rank"):
        assert measured[case][metric]["disagree"] <= before[case][metric]["disagree"], metric


@pytest.mark.parametrize("case", [c for c in CASES if c[0] == c[1]], ids=lambda c: str(c))
def test_false_rejections_at_a_true_zero(measured, case):
    """Two interchangeable models: p <= 5 % in at most about 5 % of experiments (the
    sign-flip test is exact there; 0.065 is 3 Monte Carlo errors above 0.05)."""
    for metric in measured[case]:
        assert measured[case][metric]["rejected"] <= 0.065, (metric, measured[case][metric])


def test_sign_flip_p_matches_exact_enumeration():
    """With 8 queries every one of the 2^8 swaps can be listed: the exact two-sided p of
    the MRR difference; the Monte Carlo p of 20,000 random swaps must be within 0.01."""
    a = np.array([1, 3, 2, 9, 1, 40, 5, 2])
    b = np.array([4, 3, 7, 2, 6, 80, 1, 9])
    d = 1.0 / a - 1.0 / b
    observed = abs(d.mean())
    signs = np.array(list(itertools.product([1.0, -1.0], repeat=len(d))))
    exact = np.mean(np.abs(signs @ d / len(d)) >= observed - 1e-12)
    test = paired_difference(a, b, n_images=100, n_boot=20000, seed=4)
    assert test.p == pytest.approx(exact, abs=0.01)
    assert 0.05 < exact < 0.95  # a p that says something about the comparison


def test_the_interval_is_the_studentized_one_widened_to_zero_where_p_exceeds_5():
    rng = np.random.default_rng(6)
    a = rng.integers(1, 256, size=(300, QUERIES))
    b = np.where(rng.random((300, QUERIES)) < 0.5, a, rng.integers(1, 256, size=(300, QUERIES)))
    a[:100] = rng.integers(1, 4, size=(100, QUERIES))  # clearly better than b
    _, low, high, p = paired_batch(a, b, n_images=255, n_boot=1000, seed=2)
    s_low, s_high = studentized(1.0 / a - 1.0 / b, n_boot=1000, seed=2, bounds=(-1.0, 1.0))
    tied = p > ALPHA
    assert np.array_equal(low, np.where(tied, np.minimum(s_low, 0), s_low))
    assert np.array_equal(high, np.where(tied, np.maximum(s_high, 0), s_high))
    assert np.all(low[tied] <= 0) and np.all(high[tied] >= 0)
    assert not tied[:100].any() and 0.5 < tied[100:].mean()


def test_agresti_min_hand_worked():
    """100 queries, 10 found by A only, 2 by B only: p_A = 10.5 / 102, p_B = 2.5 / 102,
    centre 8 / 102 = 0.078431, se = sqrt((13 / 102 - 0.078431^2) / 102) = 0.034485,
    half-width 1.959964 x se = 0.067590; the Wald test's z = 0.078431 / 0.034485 = 2.2744."""
    low, high, p = agresti_min(np.array(10), np.array(2), 100)
    assert float(low) == pytest.approx(0.078431 - 0.067590, abs=2e-6)
    assert float(high) == pytest.approx(0.078431 + 0.067590, abs=2e-6)
    assert float(p) == pytest.approx(2 * stats.norm.sf(2.2744), rel=1e-3)
    # all of A's wins: never past 1, and the observed difference inside
    low, high, p = agresti_min(np.array(100), np.array(0), 100)
    assert float(high) == 1.0 and float(low) < 1.0 and float(p) < 1e-6
    # nobody differs: centred on 0, p = 1
    low, high, p = agresti_min(np.array(0), np.array(0), 100)
    assert float(low) == -float(high) and float(p) == 1.0


def test_batch_matches_one_pair_at_a_time():
    rng = np.random.default_rng(9)
    a = rng.integers(1, 60, size=(5, 30))
    b = rng.integers(1, 60, size=(5, 30))
    for metric in METRICS:
        batch = paired_batch(a, b, n_images=50, metric=metric, n_boot=300, seed=1)
        for row in range(5):
            one = paired_difference(a[row], b[row], n_images=50, metric=metric, n_boot=300, seed=1)
            got = tuple(float(x[row]) for x in batch)
            assert got == pytest.approx((one.diff, one.low, one.high, one.p), abs=1e-12), metric


if __name__ == "__main__":
    for case in CASES:
        now = coverage(case)
        old = {**coverage(case, percentile, METRICS[:3]), "median_rank": now["median_rank"]}
        alone = coverage(case, bootstrap_t_alone, ("mrr",))["mrr"]["coverage"]
        cells = [
            f"{m} {now[m]['coverage']:.3f} (before {old[m]['coverage']:.3f})"
            f" p<=5% {now[m]['rejected']:.3f} ({old[m]['rejected']:.3f})"
            f" disagree {now[m]['disagree']:.3f} ({old[m]['disagree']:.3f})"
            for m in METRICS
        ]
        print("-".join(case[:2]), case[2], f"(MRR bootstrap-t alone {alone:.3f})")
        print("  " + "\n  ".join(cells))
