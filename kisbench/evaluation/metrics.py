"""Known-item search metrics from per-query target ranks (1 = best)."""

from __future__ import annotations

from collections.abc import Callable, Iterable

import numpy as np

RECALL_KS = (1, 5, 10, 50, 100)
LOWER_IS_BETTER = frozenset({"median_rank", "mean_rank"})


def cumulative_curve(ranks: np.ndarray, n_images: int) -> np.ndarray:
    """Share of queries whose target is within the top k, for k = 1..n_images.

    ``curve[k - 1]`` is the value at k. A rank above ``n_images`` (target absent) never
    counts as found.
    """
    ranks = np.asarray(ranks, dtype=np.int64)
    if len(ranks) == 0:
        raise ValueError("no ranks")
    if (ranks < 1).any():
        raise ValueError("ranks are 1-based")
    found = ranks[ranks <= n_images]
    counts = np.bincount(found, minlength=n_images + 1)[1:]
    return np.cumsum(counts) / len(ranks)


def recall_at(ranks: np.ndarray, k: int) -> float:
    return float(np.mean(np.asarray(ranks) <= k))


def mrr(ranks: np.ndarray) -> float:
    return float(np.mean(1.0 / np.asarray(ranks, dtype=np.float64)))


def _statistics() -> dict[str, Callable[[np.ndarray], np.ndarray]]:
    """Each statistic on a (B, M) batch of rank resamples -> (B,) values."""
    stats: dict[str, Callable[[np.ndarray], np.ndarray]] = {
        f"r@{k}": (lambda r, k=k: np.mean(r <= k, axis=-1)) for k in RECALL_KS
    }
    stats["mrr"] = lambda r: np.mean(1.0 / r, axis=-1)
    stats["median_rank"] = lambda r: np.median(r, axis=-1)
    stats["mean_rank"] = lambda r: np.mean(r, axis=-1)
    return stats


def summarize(
    ranks: np.ndarray, *, n_boot: int = 1000, confidence: float = 0.95, seed: int = 0
) -> dict[str, dict[str, float]]:
    """Every metric with a percentile bootstrap confidence interval over queries.

    Returns ``{metric: {"value": v, "low": lo, "high": hi}}``. The resampling is seeded, so
    the same ranks always give the same intervals.
    """
    r = np.asarray(ranks, dtype=np.float64)
    if r.ndim != 1 or len(r) == 0:
        raise ValueError("ranks must be a non-empty 1-D array")
    rng = np.random.default_rng(seed)
    boot = r[rng.integers(0, len(r), size=(n_boot, len(r)))]
    alpha = (1 - confidence) / 2
    out: dict[str, dict[str, float]] = {}
    for name, stat in _statistics().items():
        values = stat(boot)
        out[name] = {
            "value": float(stat(r[None, :])[0]),
            "low": float(np.quantile(values, alpha)),
            "high": float(np.quantile(values, 1 - alpha)),
        }
    return out


def interval(
    ranks: np.ndarray, name: str, *, n_boot: int = 1000, confidence: float = 0.95, seed: int = 0
) -> tuple[float, float]:
    """One metric's percentile bootstrap interval; the same resamples as ``summarize``."""
    r = np.asarray(ranks, dtype=np.float64)
    boot = r[np.random.default_rng(seed).integers(0, len(r), size=(n_boot, len(r)))]
    values = statistic(name)(boot)
    alpha = (1 - confidence) / 2
    return float(np.quantile(values, alpha)), float(np.quantile(values, 1 - alpha))


def metric_names() -> Iterable[str]:
    return _statistics().keys()


def statistic(name: str) -> Callable[[np.ndarray], np.ndarray]:
    """The named metric as a function of a (..., M) array of ranks, reducing the last axis."""
    stats = _statistics()
    if name not in stats:
        raise ValueError(f"unknown metric {name!r}; known: {', '.join(stats)}")
    return stats[name]


def value(ranks: np.ndarray, name: str) -> float:
    """The named metric of one set of ranks."""
    return float(statistic(name)(np.asarray(ranks, dtype=np.float64)[None, :])[0])


def chance_levels(n_images: int) -> dict[str, float]:
    """Expected metrics when the target's rank is uniform over 1..n_images (random ranking).

    R@k = k / N; MRR = H_N / N (the mean of 1/r over r = 1..N); median and mean rank (N + 1) / 2.
    A model at these numbers has learned nothing about the queries.
    """
    if n_images < 1:
        raise ValueError("a collection has at least one image")
    out = {f"r@{k}": min(k, n_images) / n_images for k in RECALL_KS}
    out["mrr"] = float(np.sum(1.0 / np.arange(1, n_images + 1)) / n_images)
    out["median_rank"] = (n_images + 1) / 2
    out["mean_rank"] = (n_images + 1) / 2
    return out
