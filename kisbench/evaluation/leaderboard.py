"""A leaderboard per graph (collection x labelset) that says which ranks are real.

For every model of one graph, from the per-query ranks of the same queries:

- its rank by the headline metric, and a 95 % interval of that rank: the queries are
  resampled (seeded), the whole ordering is recomputed on every resample (a model's rank is
  1 + the number of models strictly better on that resample), and the interval is the 2.5 %
  and 97.5 % quantiles of the model's ranks;
- whether it is *tied with #1*: the paired test against the best model
  (``kisbench.evaluation.pairwise.paired_difference``; for MRR and mean rank the sign-flip
  test, docs/evaluation.md "Statistics") is not significant at the 5 % level
  after Benjamini-Hochberg adjustment over the graph's comparisons with the best;
- the smallest headline difference to the best model that the query set detects with 80 %
  power: simulated from the observed per-query differences between the two models (centred,
  resampled, shifted by a candidate difference, tested two-sided at 5 % by the paired
  z-test on the mean difference, which the paired bootstrap approximates);
- the queries needed to halve the intervals: four times as many (an interval over queries
  narrows as 1 / sqrt(queries)), and the queries at which the observed gap to the best
  would be detected with 80 % power, by the same law.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from scipy import stats

from kisbench.evaluation.metrics import LOWER_IS_BETTER, significant, statistic, value
from kisbench.evaluation.pairwise import paired_difference, per_query

ALPHA = 0.05
POWER = 0.8


def detectable_difference(
    a: np.ndarray,
    b: np.ndarray,
    *,
    alpha: float = ALPHA,
    power: float = POWER,
    n_sims: int = 10000,
    seed: int = 0,
) -> float:
    """Smallest difference in the mean of paired per-query values ``a - b`` that a two-sided
    paired test at level ``alpha`` detects with probability ``power``, for this many queries.

    The noise is the observed one: the differences ``a - b`` centred on zero and resampled
    with replacement; an experiment with true difference ``delta`` adds ``delta`` to them
    and rejects when ``|mean| > z * se``. With the same resamples for every ``delta`` the
    power is a count over them, so the smallest ``delta`` is found exactly, not by a grid.
    """
    d = np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)
    n = len(d)
    if n < 2:
        return math.nan
    e = d - d.mean()
    idx = np.random.default_rng(seed).integers(0, n, size=(n_sims, n))
    sample = e[idx]
    mean = sample.mean(axis=1)
    se = sample.std(axis=1, ddof=1) / np.sqrt(n)
    z = stats.norm.ppf(1 - alpha / 2)
    upper = np.sort(z * se - mean)  # reject on the high side when delta > upper
    lower = np.sort(-z * se - mean)  # and on the low side when delta < lower
    # Power at delta = each candidate (the upper thresholds, where it steps up).
    high = np.searchsorted(upper, upper, side="right")
    low = n_sims - np.searchsorted(lower, upper, side="right")
    reached = np.nonzero((high + low) / n_sims >= power)[0]
    return float(max(upper[reached[0]], 0.0)) if len(reached) else math.nan


def graph_leaderboard(
    ranks: dict[str, np.ndarray],
    n_images: int,
    *,
    metric: str = "mrr",
    n_boot: int = 10000,
    seed: int = 0,
    alpha: float = ALPHA,
    power: float = POWER,
) -> dict[str, Any]:
    """The leaderboard of one graph. ``ranks``: per model, per-query ranks in one query order.

    Returns ``{"queries", "images", "metric", "best", "detectable_difference",
    "queries_to_halve_interval", "models": {model: {...}}}`` with models best first; see the
    module docstring for each entry.
    """
    models = list(ranks)
    if not models:
        raise ValueError("a leaderboard needs at least one model")
    arrays = {m: np.asarray(ranks[m], dtype=np.float64) for m in models}
    n = len(arrays[models[0]])
    if any(len(a) != n for a in arrays.values()):
        raise ValueError("every model must rank the same queries")
    sign = -1.0 if metric in LOWER_IS_BETTER else 1.0  # sign * value: higher is better
    values = {m: value(arrays[m], metric, n_images) for m in models}
    order = sorted(models, key=lambda m: (-sign * values[m], models.index(m)))
    best = order[0]

    stat = statistic(metric, n_images)
    idx = np.random.default_rng(seed).integers(0, n, size=(n_boot, n))
    boot = np.stack([sign * stat(arrays[m][idx]) for m in order], axis=1)  # (B, M)
    # Competition ranks on every resample: 1 + the models strictly better there.
    boot_rank = 1 + (boot[:, None, :] > boot[:, :, None]).sum(axis=2)
    rank_low = np.quantile(boot_rank, alpha / 2, axis=0, method="inverted_cdf")
    rank_high = np.quantile(boot_rank, 1 - alpha / 2, axis=0, method="inverted_cdf")

    tests = {
        m: paired_difference(
            arrays[best], arrays[m], n_images=n_images, metric=metric, n_boot=n_boot, seed=seed
        )
        for m in order[1:]
    }
    p = np.array([tests[m].p for m in order[1:]])
    q = dict(zip(order[1:], stats.false_discovery_control(p) if len(p) else p, strict=True))

    means = metric in ("mrr", "mean_rank") or metric.startswith("r@")
    first = per_query(arrays[best], metric, n_images) if means else None
    rows: dict[str, Any] = {}
    for i, m in enumerate(order):
        rank = 1 + sum(sign * values[o] > sign * values[m] for o in order)
        row: dict[str, Any] = {
            "rank": rank,
            "rank_low": int(rank_low[i]),
            "rank_high": int(rank_high[i]),
            metric: significant(values[m]),
        }
        if m != best:
            gap = sign * (values[best] - values[m])  # >= 0: how far behind the best
            row["gap_to_first"] = significant(gap)
            row["p_vs_first"] = significant(tests[m].p)
            row["q_vs_first"] = significant(q[m])
            row["tied_with_first"] = bool(q[m] >= alpha)
            if first is not None:
                other = per_query(arrays[m], metric, n_images)
                detectable = detectable_difference(
                    first, other, alpha=alpha, power=power, n_sims=n_boot, seed=seed
                )
                row["detectable_gap"] = significant(detectable)
                row["queries_to_detect_gap"] = (
                    math.ceil(n * (detectable / gap) ** 2) if gap > 0 else None
                )
        else:
            row["tied_with_first"] = True
        rows[m] = row
    second = rows[order[1]] if len(order) > 1 else {}
    return {
        "queries": n,
        "images": n_images,
        "metric": metric,
        "best": best,
        "detectable_difference": second.get("detectable_gap"),
        "queries_to_halve_interval": 4 * n,
        "models": rows,
    }
