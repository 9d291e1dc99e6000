"""Known-item search metrics from per-query target ranks (1 = best), with confidence
intervals whose coverage is measured (``tests/test_coverage.py``, docs/evaluation.md).

Every metric needs ``n_images``, the collection size N: a rank above N means the target is
not in the ranking at all (the rank stage writes N + 1 for a target it could not score).
Such a target is never found, as TREC counts an unretrieved item: it adds 0 to MRR and is
outside the top k for every k, k > N included. In the median and mean rank it counts as
rank N + 1, the place after the last image.

Intervals (95 % by default), one method per kind of metric:

- R@k, a proportion of queries: the Clopper-Pearson (exact binomial) interval. Its coverage
  is at least the nominal level for every true proportion; discreteness makes it higher
  when few queries are expected to be found (e.g. 0.99 at R@1 of a chance-level model).
- MRR and mean rank, means of a per-query value: the studentized (bootstrap-t) interval,
  resampling queries with a seeded generator; it corrects for the skew of the reciprocal
  rank better than the percentile interval. MRR of a model near chance level on a large
  collection stays below the nominal level (measured in the docs): the reciprocal rank's
  tail there is carried by a few queries that 100 queries rarely contain.
- Median rank: the distribution-free order-statistic interval (sorted ranks at the
  binomial(n, 1/2) quantiles, interpolated between the two pairs that bracket the level);
  more than the nominal level when ranks tie heavily (a strong model's).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable

import numpy as np
from scipy import stats

RECALL_KS = (1, 5, 10, 50, 100)
LOWER_IS_BETTER = frozenset({"median_rank", "mean_rank"})
INTERVAL_METHODS = {
    **{f"r@{k}": "clopper-pearson" for k in RECALL_KS},
    "mrr": "studentized bootstrap, upper end raised to chance unless the exact test finds it worse",
    "median_rank": "order statistics (interpolated)",
    "mean_rank": "studentized bootstrap",
}


def _checked(ranks: np.ndarray, n_images: int) -> np.ndarray:
    r = np.asarray(ranks)
    if r.size == 0:
        raise ValueError("no ranks")
    if (r < 1).any():
        raise ValueError("ranks are 1-based")
    if n_images < 1:
        raise ValueError("a collection has at least one image")
    return r


def cumulative_curve(ranks: np.ndarray, n_images: int) -> np.ndarray:
    """Share of queries whose target is within the top k, for k = 1..n_images.

    ``curve[k - 1]`` is the value at k. A rank above ``n_images`` (target absent) never
    counts as found, as in ``recall_at``.
    """
    ranks = np.asarray(_checked(ranks, n_images), dtype=np.int64)
    found = ranks[ranks <= n_images]
    counts = np.bincount(found, minlength=n_images + 1)[1:]
    return np.cumsum(counts) / len(ranks)


def reciprocal(ranks: np.ndarray, n_images: int) -> np.ndarray:
    """Per query 1 / rank, and 0 for a target that is not in the ranking (rank > N)."""
    r = np.asarray(ranks, dtype=np.float64)
    return np.where(r <= n_images, 1.0 / r, 0.0)


def placed(ranks: np.ndarray, n_images: int) -> np.ndarray:
    """Ranks for the median and mean rank: a never-found target counts as N + 1."""
    return np.minimum(np.asarray(ranks, dtype=np.float64), n_images + 1)


def recall_at(ranks: np.ndarray, k: int, n_images: int) -> float:
    """Share of queries whose target is within the top k; never found is never within."""
    return float(np.mean(np.asarray(ranks) <= min(k, n_images)))


def mrr(ranks: np.ndarray, n_images: int) -> float:
    return float(np.mean(reciprocal(ranks, n_images)))


def _statistics(n_images: int) -> dict[str, Callable[[np.ndarray], np.ndarray]]:
    """Each statistic on a (..., M) array of ranks, reducing the last axis."""
    stats_: dict[str, Callable[[np.ndarray], np.ndarray]] = {
        f"r@{k}": (lambda r, k=min(k, n_images): np.mean(r <= k, axis=-1)) for k in RECALL_KS
    }
    stats_["mrr"] = lambda r: np.mean(reciprocal(r, n_images), axis=-1)
    stats_["median_rank"] = lambda r: np.median(placed(r, n_images), axis=-1)
    stats_["mean_rank"] = lambda r: np.mean(placed(r, n_images), axis=-1)
    return stats_


def metric_names() -> Iterable[str]:
    return _statistics(1).keys()


def statistic(name: str, n_images: int) -> Callable[[np.ndarray], np.ndarray]:
    """The named metric as a function of a (..., M) array of ranks, reducing the last axis."""
    stats_ = _statistics(n_images)
    if name not in stats_:
        raise ValueError(f"unknown metric {name!r}; known: {', '.join(stats_)}")
    return stats_[name]


def value(ranks: np.ndarray, name: str, n_images: int) -> float:
    """The named metric of one set of ranks."""
    r = np.asarray(_checked(ranks, n_images), dtype=np.float64)
    return float(statistic(name, n_images)(r))


def clopper_pearson(
    found: np.ndarray, n: int, confidence: float = 0.95
) -> tuple[np.ndarray, np.ndarray]:
    """Exact binomial interval for ``found`` successes of ``n`` (arrays welcome)."""
    x = np.asarray(found, dtype=np.float64)
    alpha = 1 - confidence
    with np.errstate(invalid="ignore"):
        low = np.where(x > 0, stats.beta.ppf(alpha / 2, x, n - x + 1), 0.0)
        high = np.where(x < n, stats.beta.ppf(1 - alpha / 2, x + 1, n - x), 1.0)
    return low, high


def studentized(
    x: np.ndarray,
    *,
    n_boot: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
    bounds: tuple[float, float] = (-np.inf, np.inf),
) -> tuple[np.ndarray, np.ndarray]:
    """Bootstrap-t interval of the mean of the last axis of ``x`` (a batch of samples is fine).

    Resamples are query weights (seeded draws with replacement), shared by every sample of a
    batch, so
    the resampled means and variances are two matrix products. The interval is
    ``mean - t*[1 - a/2] * se, mean - t*[a/2] * se`` with t* the resampled
    ``(mean* - mean) / se*``, clipped to ``bounds`` (the metric's range).
    """
    x = np.asarray(x, dtype=np.float64)
    n = x.shape[-1]
    idx = np.random.default_rng(seed).integers(0, n, size=(n_boot, n))
    # Each resample as query weights (how often each query was drawn, over n).
    rows = (np.arange(n_boot)[:, None] * n + idx).ravel()
    weights = np.bincount(rows, minlength=n_boot * n).reshape(n_boot, n) / n
    mean = x.mean(axis=-1)
    spread = x.std(axis=-1, ddof=1) if n > 1 else np.zeros_like(mean)
    boot = x @ weights.T  # (..., B)
    boot_sq = (x * x) @ weights.T
    boot_se = np.sqrt(np.maximum(boot_sq - boot * boot, 0.0) * n / max(n - 1, 1) / n)
    shift = boot - mean[..., None]
    # A resample of equal values has se* = 0: its t* is infinite unless its mean is the
    # sample's (round-off aside), which the quantiles and the clipping below absorb.
    with np.errstate(divide="ignore", invalid="ignore"):
        t = np.where(np.abs(shift) <= 1e-12 * (1 + np.abs(mean[..., None])), 0.0, shift / boot_se)
    # Finite stand-ins for the infinities: quantiles interpolate, and inf - inf is NaN.
    t = np.clip(t, -1e12, 1e12)
    alpha = 1 - confidence
    t_low, t_high = np.quantile(t, [alpha / 2, 1 - alpha / 2], axis=-1)
    se = spread / np.sqrt(n)
    with np.errstate(invalid="ignore"):
        low = np.where(se > 0, mean - t_high * se, mean)
        high = np.where(se > 0, mean - t_low * se, mean)
    return np.clip(low, *bounds), np.clip(high, *bounds)


def median_interval(ranks: np.ndarray, confidence: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
    """Order-statistic interval of the median over the last axis, distribution-free.

    ``[x_(k), x_(n-k+1)]`` holds the population median with probability
    ``g_k = P(k <= B <= n - k)``, B ~ binomial(n, 1/2): the outer pair with ``g_k`` at
    least ``confidence`` and the next pair inwards bracket the level, and the interval
    interpolates between them (Hettmansperger & Sheather 1986), so it is near the level
    rather than above it (0.965 for 100 queries without interpolation).
    """
    r = np.sort(np.asarray(ranks, dtype=np.float64), axis=-1)
    n = r.shape[-1]
    if n < 2:
        return r[..., 0], r[..., -1]
    # the largest k (1-based) whose pair still reaches the level
    k = int(stats.binom.ppf((1 - confidence) / 2, n, 0.5))
    g = 1 - 2 * stats.binom.cdf(np.array([k - 1, k]), n, 0.5)
    while k > 1 and g[0] < confidence:
        k -= 1
        g = 1 - 2 * stats.binom.cdf(np.array([k - 1, k]), n, 0.5)
    k = max(k, 1)
    if k >= n - k or g[0] <= g[1]:
        return r[..., k - 1], r[..., n - k]
    share = (g[0] - confidence) / (g[0] - g[1])
    lam = (n - k) * share / (k + (n - 2 * k) * share)
    low = (1 - lam) * r[..., k - 1] + lam * r[..., k]
    high = (1 - lam) * r[..., n - k] + lam * r[..., n - k - 1]
    return low, high


def intervals(
    ranks: np.ndarray,
    n_images: int,
    *,
    n_boot: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
    names: Iterable[str] | None = None,
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Every (or each named) metric's interval over the last axis of ``ranks`` (a batch of
    rank sets is fine), by the method of ``INTERVAL_METHODS``."""
    r = np.asarray(ranks, dtype=np.float64)
    n = r.shape[-1]
    out: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for name in names if names is not None else metric_names():
        statistic(name, n_images)  # unknown names fail here
        if name.startswith("r@"):
            k = min(int(name[2:]), n_images)
            out[name] = clopper_pearson(np.sum(r <= k, axis=-1), n, confidence)
        elif name == "mrr":
            low, high = studentized(
                reciprocal(r, n_images),
                n_boot=n_boot,
                confidence=confidence,
                seed=seed,
                bounds=(0.0, 1.0),
            )
            out[name] = _up_to_chance(r, n_images, low, high, 1 - confidence)
        elif name == "mean_rank":
            out[name] = studentized(
                placed(r, n_images),
                n_boot=n_boot,
                confidence=confidence,
                seed=seed,
                bounds=(1.0, n_images + 1.0),
            )
        elif name == "median_rank":
            out[name] = median_interval(placed(r, n_images), confidence)
        else:  # a new metric needs its method chosen and its coverage measured
            raise ValueError(f"no interval method for {name!r}; add one to intervals()")
    return out


def summarize(
    ranks: np.ndarray,
    n_images: int,
    *,
    n_boot: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> dict[str, dict[str, float]]:
    """Every metric with its confidence interval over queries.

    Returns ``{metric: {"value": v, "low": lo, "high": hi}}``. The bootstrap is seeded, so
    the same ranks always give the same intervals.
    """
    r = np.asarray(_checked(ranks, n_images), dtype=np.float64)
    if r.ndim != 1:
        raise ValueError("ranks must be a non-empty 1-D array")
    out: dict[str, dict[str, float]] = {}
    for name, (low, high) in intervals(
        r, n_images, n_boot=n_boot, confidence=confidence, seed=seed
    ).items():
        v = value(r, name, n_images)
        # Float round-off of the bootstrap must not leave the value outside its interval.
        out[name] = {"value": v, "low": min(float(low), v), "high": max(float(high), v)}
    return out


def interval(
    ranks: np.ndarray,
    name: str,
    n_images: int,
    *,
    n_boot: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> tuple[float, float]:
    """One metric's interval, as ``summarize`` computes it (and only that one)."""
    r = np.asarray(_checked(ranks, n_images), dtype=np.float64)
    low, high = intervals(
        r, n_images, n_boot=n_boot, confidence=confidence, seed=seed, names=[name]
    )[name]
    v = value(r, name, n_images)
    return min(float(low), v), max(float(high), v)


def chance_test(
    ranks: np.ndarray, name: str, n_images: int, *, n_sims: int = 10000, seed: int = 0
) -> dict[str, float]:
    """Is the metric better (or worse) than a random ranking? An exact-level test: the null
    distribution is the metric of as many queries with ranks uniform on 1..N, simulated
    (seeded), so it does not lean on any interval's coverage.

    Returns one-sided p-values ``{"p_better": ..., "p_worse": ...}``, each with the usual
    +1 so it is never 0.
    """
    r = np.asarray(_checked(ranks, n_images), dtype=np.float64)
    better, worse = chance_p_values(r, name, n_images, n_sims=n_sims, seed=seed)
    return {"p_better": float(better), "p_worse": float(worse)}


def chance_p_values(
    ranks: np.ndarray, name: str, n_images: int, *, n_sims: int = 10000, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`chance_test`'s one-sided p-values (better, worse) for each rank set of the
    last axis of ``ranks`` (a batch is fine)."""
    r = np.asarray(ranks, dtype=np.float64)
    sign = -1.0 if name in LOWER_IS_BETTER else 1.0
    observed = sign * statistic(name, n_images)(r)
    null = np.sort(sign * _null(name, n_images, r.shape[-1], n_sims, seed))
    tol = 1e-12 * (1 + np.abs(observed))  # round-off must not turn a tie into a miss
    better = n_sims - np.searchsorted(null, observed - tol, side="left")
    worse = np.searchsorted(null, observed + tol, side="right")
    return (1 + better) / (n_sims + 1), (1 + worse) / (n_sims + 1)


def _up_to_chance(
    ranks: np.ndarray, n_images: int, low: np.ndarray, high: np.ndarray, alpha: float
) -> tuple[np.ndarray, np.ndarray]:
    """The MRR interval, its upper end raised to the chance level wherever the exact chance
    test (one-sided, level ``alpha``) cannot say the ranks are worse than a random ranking's.

    Near chance the MRR is carried by the top ranks, which 100 queries on a large collection
    rarely contain: a sample without them looks like one of a model worse than chance, and
    no bootstrap of it reaches the true value (studentized, at chance: the upper end falls
    short in 29 % of experiments on 10,000 images, the lower end overshoots in 0.25 %). The
    test's null distribution is exact, so at chance the raised end holds the truth unless
    the test rejects, with probability ``alpha``. Where the interval already reaches chance
    (any model the test tells from chance as better) nothing changes.
    """
    _, worse = chance_p_values(ranks, "mrr", n_images)
    level = chance_levels(n_images)["mrr"]
    return low, np.where(worse > alpha, np.maximum(high, level), high)


@functools.lru_cache(maxsize=16)
def _null(name: str, n_images: int, queries: int, n_sims: int, seed: int) -> np.ndarray:
    """The metric of ``n_sims`` random rankings of ``queries`` queries: the same for every
    model of a graph, so computed once."""
    null = np.random.default_rng(seed).integers(1, n_images + 1, size=(n_sims, queries))
    values = statistic(name, n_images)(null.astype(np.float64))
    values.setflags(write=False)
    return values


def significant(v: float, digits: int = 6) -> float:
    """``v`` to ``digits`` significant digits, for the JSON files: rounding to decimal places
    would turn a small value such as 3.54299e-05 into 3.5e-05."""
    return float(f"{float(v):.{digits}g}")


def chance_curve(k: np.ndarray, n_images: int) -> np.ndarray:
    """Share of queries a random ranking of ``n_images`` finds within the top k: the target's
    rank is uniform over 1..N, so min(k, N) / N."""
    if n_images < 1:
        raise ValueError("a collection has at least one image")
    return np.minimum(np.asarray(k), n_images) / n_images


def chance_levels(n_images: int) -> dict[str, float]:
    """Expected metrics when the target's rank is uniform over 1..n_images (random ranking).

    R@k = k / N; MRR = H_N / N (the mean of 1/r over r = 1..N); median and mean rank (N + 1) / 2.
    A model at these numbers has learned nothing about the queries.
    """
    shares = chance_curve(np.array(RECALL_KS), n_images)
    out = {f"r@{k}": float(v) for k, v in zip(RECALL_KS, shares, strict=True)}
    out["mrr"] = float(np.sum(1.0 / np.arange(1, n_images + 1)) / n_images)
    out["median_rank"] = (n_images + 1) / 2
    out["mean_rank"] = (n_images + 1) / 2
    return out
