"""Comparing two rankings of the same queries: the complementary (oracle) ranks and paired
significance tests, and which models are compared.

With about 100 queries per graph, many differences between models are within noise; a
paired test uses that both models answered the same queries, which an overlap of two
separate confidence intervals does not.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from kisbench.errors import InputError
from kisbench.evaluation.metrics import LOWER_IS_BETTER, statistic, value


def top_models(values: dict[str, float], n: int, metric: str) -> list[str]:
    """The ``n`` best models by ``metric`` value, best first; ties keep the given order."""
    sign = 1.0 if metric in LOWER_IS_BETTER else -1.0
    order = sorted(enumerate(values), key=lambda iv: (sign * values[iv[1]], iv[0]))
    return [model for _, model in order[: max(n, 0)]]


def complementary(*ranks: np.ndarray) -> np.ndarray:
    """Per query the best of the models' ranks: what an oracle picking the right model
    for every query would reach. An upper bound for combining them, not a retriever."""
    return np.minimum.reduce([np.asarray(r) for r in ranks])


def align(a: pd.Series, b: pd.Series, what: str) -> tuple[np.ndarray, np.ndarray]:
    """Two rank series indexed by query id, as arrays in the same query order.

    Both must rank the same queries; a paired test on different query sets is meaningless.
    """
    if set(a.index) != set(b.index):
        only = sorted(set(a.index) ^ set(b.index))[:5]
        raise InputError(
            f"{what}: the two rank tables hold different queries (e.g. {only}); "
            "re-run their rank stages on the same labels"
        )
    return a.to_numpy(), b.reindex(a.index).to_numpy()


@dataclass(frozen=True)
class PairedDiff:
    diff: float  # metric(a) - metric(b)
    low: float
    high: float
    p: float  # two-sided, H0: no difference


def paired_bootstrap(
    a: np.ndarray,
    b: np.ndarray,
    *,
    metric: str = "mrr",
    n_boot: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> PairedDiff:
    """Bootstrap over queries of ``metric(a) - metric(b)``, resampling query pairs together.

    The interval is the percentile interval. The p-value centres the bootstrap distribution
    on zero (the null) and counts resampled differences at least as far from the observed
    one as the observed one is from zero, with the usual +1 so it is never 0.
    """
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 1 or len(a) == 0:
        raise ValueError("paired ranks must be two non-empty 1-D arrays of the same length")
    stat = statistic(metric)
    idx = np.random.default_rng(seed).integers(0, len(a), size=(n_boot, len(a)))
    boot = stat(a[idx]) - stat(b[idx])
    diff = float(stat(a[None, :])[0] - stat(b[None, :])[0])
    alpha = (1 - confidence) / 2
    # Float round-off must not turn an exact tie with |diff| into a miss.
    far = np.abs(boot - diff) >= abs(diff) - 1e-12
    return PairedDiff(
        diff=diff,
        low=float(np.quantile(boot, alpha)),
        high=float(np.quantile(boot, 1 - alpha)),
        p=float((1 + far.sum()) / (n_boot + 1)),
    )


def wilcoxon_ranks(a: np.ndarray, b: np.ndarray) -> float:
    """Two-sided p-value of the Wilcoxon signed-rank test on per-query ranks.

    It weighs every query's rank change, deep ones included, where MRR is dominated by
    the top ranks; queries with equal ranks are dropped (scipy's ``zero_method="wilcox"``).
    """
    d = np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)
    if not np.any(d):
        return 1.0
    return float(stats.wilcoxon(d, zero_method="wilcox").pvalue)


PAIR_COLUMNS = [
    "collection",
    "labelset",
    "model_a",
    "model_b",
    "queries",
    "metric",
    "value_a",
    "value_b",
    "diff",
    "diff_low",
    "diff_high",
    "p_bootstrap",
    "q_bootstrap",
    "a_better",
    "b_better",
    "same_rank",
    "p_wilcoxon",
    "q_wilcoxon",
    "oracle",
]


def pairs_table(
    ranks: dict[str, pd.Series],
    models: list[str],
    *,
    metric: str,
    n_boot: int,
    seed: int,
    collection: str = "",
    labelset: str = "",
) -> pd.DataFrame:
    """One row per pair of ``models`` (give them best first, so ``a`` is the better one).

    ``ranks``: per model, ranks indexed by query id. q-values are Benjamini-Hochberg
    adjusted over the pairs of this table (one graph), since a grid tests many pairs at once.
    """
    rows = []
    for i, model_a in enumerate(models):
        for model_b in models[i + 1 :]:
            a, b = align(ranks[model_a], ranks[model_b], f"{collection}/{labelset}")
            test = paired_bootstrap(a, b, metric=metric, n_boot=n_boot, seed=seed)
            rows.append(
                {
                    "collection": collection,
                    "labelset": labelset,
                    "model_a": model_a,
                    "model_b": model_b,
                    "queries": len(a),
                    "metric": metric,
                    "value_a": value(a, metric),
                    "value_b": value(b, metric),
                    "diff": test.diff,
                    "diff_low": test.low,
                    "diff_high": test.high,
                    "p_bootstrap": test.p,
                    "a_better": int(np.sum(a < b)),
                    "b_better": int(np.sum(b < a)),
                    "same_rank": int(np.sum(a == b)),
                    "p_wilcoxon": wilcoxon_ranks(a, b),
                    "oracle": value(complementary(a, b), metric),
                }
            )
    table = pd.DataFrame(rows, columns=[c for c in PAIR_COLUMNS if not c.startswith("q_")])
    for test in ("bootstrap", "wilcoxon"):
        p = table[f"p_{test}"].to_numpy()
        table[f"q_{test}"] = stats.false_discovery_control(p) if len(p) else p
    return table[PAIR_COLUMNS]


GAIN_COLUMNS = [
    "collection",
    "model",
    "base",
    "labelset",
    "queries",
    "metric",
    "value_base",
    "value",
    "gain",
    "gain_low",
    "gain_high",
    "p_bootstrap",
]


def gains_table(
    ranks: dict[str, pd.Series],
    labelsets: list[str],
    *,
    metric: str,
    n_boot: int,
    seed: int,
    collection: str = "",
    model: str = "",
) -> pd.DataFrame:
    """What each labelset gains over the first one (e.g. long over short labels) for one
    model, paired by query: the same target image described two ways."""
    rows = []
    base = labelsets[0]
    for labelset in labelsets[1:]:
        other, first = align(ranks[labelset], ranks[base], f"{collection}/{model}")
        test = paired_bootstrap(other, first, metric=metric, n_boot=n_boot, seed=seed)
        rows.append(
            {
                "collection": collection,
                "model": model,
                "base": base,
                "labelset": labelset,
                "queries": len(other),
                "metric": metric,
                "value_base": value(first, metric),
                "value": value(other, metric),
                "gain": test.diff,
                "gain_low": test.low,
                "gain_high": test.high,
                "p_bootstrap": test.p,
            }
        )
    return pd.DataFrame(rows, columns=GAIN_COLUMNS)
