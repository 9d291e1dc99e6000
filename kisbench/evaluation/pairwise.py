"""Comparing two rankings of the same queries: paired significance tests with their
directions and effect sizes, the per-query best of the models, and which models are compared.

With about 100 queries per graph, many differences between models are within noise; a
paired test uses that both models answered the same queries, which an overlap of two
separate confidence intervals does not.

Multiple testing: each test (paired bootstrap, Wilcoxon, the labelset gains) forms one
Benjamini-Hochberg family over the whole experiment, every model pair of every collection
and labelset (``kisbench.evaluation.evaluate.compare`` adjusts the concatenated tables).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from kisbench.errors import InputError
from kisbench.evaluation.metrics import LOWER_IS_BETTER, reciprocal, statistic, studentized, value


def top_models(values: dict[str, float], n: int, metric: str) -> list[str]:
    """The ``n`` best models by ``metric`` value, best first; ties keep the given order."""
    sign = 1.0 if metric in LOWER_IS_BETTER else -1.0
    order = sorted(enumerate(values), key=lambda iv: (sign * values[iv[1]], iv[0]))
    return [model for _, model in order[: max(n, 0)]]


def complementary(*ranks: np.ndarray) -> np.ndarray:
    """Per query the best of the models' ranks (the "oracle"): what choosing the right one
    model for every query would reach. A bound only for choosing one model per query, not
    for fusion: a fused list can rank a target above both models' ranks, and fusion beats
    this in 6 of the smoke run's 24 set-ups. Not a retriever."""
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


def per_query(ranks: np.ndarray, metric: str, n_images: int) -> np.ndarray:
    """The per-query values whose mean is ``metric`` (MRR: reciprocal ranks; R@k: 0/1)."""
    r = np.asarray(ranks, dtype=np.float64)
    if metric == "mrr":
        return reciprocal(r, n_images)
    if metric.startswith("r@"):
        return (r <= min(int(metric[2:]), n_images)).astype(np.float64)
    if metric == "mean_rank":
        return np.minimum(r, n_images + 1)
    raise ValueError(f"{metric!r} is not a mean over queries; the power needs one")


def paired_difference(
    a: np.ndarray,
    b: np.ndarray,
    *,
    n_images: int,
    metric: str = "mrr",
    n_boot: int = 10000,
    confidence: float = 0.95,
    seed: int = 0,
) -> PairedDiff:
    """``metric(a) - metric(b)`` of two rank sets of the same queries, with a paired
    interval and p-value (queries resampled, or their two ranks swapped, together).

    Per metric (``paired_batch``, coverage measured in ``tests/test_coverage_paired.py``):

    - MRR and mean rank: the studentized (bootstrap-t) interval of the per-query
      differences, widened to include 0 wherever the paired sign-flip test cannot reject
      "no difference" at 1 - ``confidence``; ``p`` is that test's.
    - R@k: the Agresti-Min interval of a difference of paired proportions (1/2 added to
      each cell of the 2 x 2 table of found / not found); ``p`` of the Wald test it inverts.
    - median rank: the percentile interval of the bootstrap; ``p`` from the bootstrap.

    The sign-flip p-value counts the random swaps whose difference is at least as far from
    0 as the observed one; the bootstrap p-value centres the bootstrap distribution on zero
    (the null) and counts resampled differences at least as far from the observed one as
    the observed one is from zero; both have the usual +1 so they are never 0.
    """
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 1 or len(a) == 0:
        raise ValueError("paired ranks must be two non-empty 1-D arrays of the same length")
    diff, low, high, p = paired_batch(
        a, b, n_images=n_images, metric=metric, n_boot=n_boot, confidence=confidence, seed=seed
    )
    return PairedDiff(diff=float(diff), low=float(low), high=float(high), p=float(p))


def paired_batch(
    a: np.ndarray,
    b: np.ndarray,
    *,
    n_images: int,
    metric: str = "mrr",
    n_boot: int = 10000,
    confidence: float = 0.95,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``paired_difference``'s (diff, low, high, p) for each pair of rank sets along the last
    axis of ``a`` and ``b`` (a batch of experiments is fine; every one shares the resamples).

    Why per metric, measured (docs/evaluation.md, Statistics): the percentile interval of an
    MRR difference between two chance-level models covered 0.93 / 0.90 (N = 255 / 10,000: at
    a true 0 the difference of 1 / rank is carried by the few queries at the top, which 100
    queries rarely hold); the bootstrap-t alone does worse there (0.88 / 0.87) but corrects
    the skew elsewhere. The
    sign-flip test is exact wherever the two ranks of a query are exchangeable (two
    interchangeable models), so at such a true 0 the widened interval misses only when the
    test rejects; for a mean difference it is also asymptotically valid at any true 0 (its
    null variance is the mean squared difference). R@k differences are counts of
    discordant queries, on which the percentile interval fell to 0.93.
    """
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.shape != b.shape or a.ndim < 1 or a.shape[-1] == 0:
        raise ValueError("paired ranks must be non-empty arrays of the same shape")
    stat = statistic(metric, n_images)
    n = a.shape[-1]
    alpha = 1 - confidence
    diff = stat(a) - stat(b)
    # Float round-off must not turn an exact tie with |diff| into a miss.
    reach = np.abs(diff)[..., None] - 1e-12
    if metric == "median_rank":
        idx = np.random.default_rng(seed).integers(0, n, size=(n_boot, n))
        boot = _resampled(stat, a, b, idx)
        low, high = np.quantile(boot, [alpha / 2, 1 - alpha / 2], axis=-1)
        far = np.abs(boot - diff[..., None]) >= reach
        return diff, low, high, (1 + far.sum(axis=-1)) / (n_boot + 1)
    d = per_query(a, metric, n_images) - per_query(b, metric, n_images)
    if metric.startswith("r@"):
        low, high, p = agresti_min(np.sum(d > 0, axis=-1), np.sum(d < 0, axis=-1), n, confidence)
        return diff, low, high, p
    # Swapping a query's two ranks flips the sign of its difference. The swaps are a stream
    # of their own, independent of the bootstrap's resamples (``studentized``'s, from seed).
    swap = np.random.default_rng([seed, 1]).random((n_boot, n)) < 0.5
    null = d @ np.where(swap, -1.0, 1.0).T / n
    p = (1 + np.sum(np.abs(null) >= reach, axis=-1)) / (n_boot + 1)
    span = 1.0 if metric == "mrr" else float(n_images)
    low, high = studentized(
        d, n_boot=n_boot, confidence=confidence, seed=seed, bounds=(-span, span)
    )
    tied = p > alpha  # the test cannot tell the two apart: 0 stays in the interval
    low = np.where(tied, np.minimum(low, 0.0), low)
    high = np.where(tied, np.maximum(high, 0.0), high)
    return diff, low, high, p


def _resampled(
    stat: Callable[[np.ndarray], np.ndarray], a: np.ndarray, b: np.ndarray, idx: np.ndarray
) -> np.ndarray:
    """``stat(a*) - stat(b*)`` for every resample (row of query indices) of ``idx``, in
    blocks of rank sets that keep the resampled ranks within about 32 MB."""
    flat_a, flat_b = a.reshape(-1, a.shape[-1]), b.reshape(-1, b.shape[-1])
    block = max(1, 4_000_000 // idx.size)
    out = np.empty((len(flat_a), len(idx)))
    for start in range(0, len(flat_a), block):
        part = slice(start, start + block)
        out[part] = stat(flat_a[part][:, idx]) - stat(flat_b[part][:, idx])
    return out.reshape(*a.shape[:-1], len(idx))


def agresti_min(
    a_only: np.ndarray, b_only: np.ndarray, n: int, confidence: float = 0.95
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Agresti-Min (2005) interval of a difference of paired proportions, (a_only - b_only)
    / n, from the counts of queries only A found and only B found: the Wald interval after
    adding 1/2 to each of the four cells of the 2 x 2 table, clipped to [-1, 1]; and the
    two-sided p-value of the Wald test it inverts, so that the interval excludes 0 exactly
    when p < 1 - ``confidence``."""
    z = stats.norm.ppf(1 - (1 - confidence) / 2)
    pa = (np.asarray(a_only, dtype=np.float64) + 0.5) / (n + 2)
    pb = (np.asarray(b_only, dtype=np.float64) + 0.5) / (n + 2)
    centre = pa - pb
    # > 0: pa + pb < 1, so centre^2 < pa + pb
    se = np.sqrt((pa + pb - centre**2) / (n + 2))
    p = 2 * stats.norm.sf(np.abs(centre) / se)
    return np.clip(centre - z * se, -1.0, 1.0), np.clip(centre + z * se, -1.0, 1.0), p


def wilcoxon_ranks(a: np.ndarray, b: np.ndarray) -> float:
    """Two-sided p-value of the Wilcoxon signed-rank test on per-query ranks.

    It weighs every query's rank change, deep ones included, where MRR is dominated by
    the top ranks; queries with equal ranks are dropped (scipy's ``zero_method="wilcox"``).
    """
    d = np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)
    if not np.any(d):
        return 1.0
    return float(stats.wilcoxon(d, zero_method="wilcox").pvalue)


def rank_biserial(a: np.ndarray, b: np.ndarray) -> float:
    """The matched-pairs rank-biserial correlation of the Wilcoxon test, in [-1, 1]:
    ``(T_A - T_B) / (T_A + T_B)`` with T_A the sum of the magnitude ranks of the queries
    where ``a`` ranks the target better (lower) and T_B where ``b`` does; equal ranks are
    dropped as in ``wilcoxon_ranks``, tied magnitudes share their mean rank. Positive: the
    rank test favours A; 0: no difference (or no query differs)."""
    d = np.asarray(b, dtype=np.float64) - np.asarray(a, dtype=np.float64)
    d = d[d != 0]
    if len(d) == 0:
        return 0.0
    magnitude = stats.rankdata(np.abs(d))
    return float((magnitude[d > 0].sum() - magnitude[d < 0].sum()) / magnitude.sum())


def favours(diff: float, metric: str) -> int:
    """+1 when a difference ``metric(A) - metric(B)`` says A is better, -1 for B, 0 neither."""
    better = -diff if metric in LOWER_IS_BETTER else diff
    return int(np.sign(better))


def adjust(table: pd.DataFrame, tests: tuple[str, ...]) -> pd.DataFrame:
    """Benjamini-Hochberg q-values ``q_T`` from ``p_T`` for each test T, the table's rows
    forming one family per test."""
    out = table.copy()
    for test in tests:
        p = out[f"p_{test}"].to_numpy(dtype=np.float64)
        out[f"q_{test}"] = stats.false_discovery_control(p) if len(p) else p
    return out


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
    "p_paired",
    "q_paired",
    "a_better",
    "b_better",
    "same_rank",
    "p_wilcoxon",
    "q_wilcoxon",
    "rank_biserial",
    "directions_disagree",
    "oracle",
]


def pairs_table(
    ranks: dict[str, pd.Series],
    models: list[str],
    *,
    metric: str,
    n_images: int,
    n_boot: int,
    seed: int,
    collection: str = "",
    labelset: str = "",
) -> pd.DataFrame:
    """One row per pair of ``models`` (give them best first, so ``a`` is the better one).

    ``ranks``: per model, ranks indexed by query id. q-values are Benjamini-Hochberg
    adjusted over the rows of this table; ``compare`` re-adjusts them over every pair of
    the experiment, the family the report states. ``rank_biserial`` is the Wilcoxon test's
    effect size and direction (positive: A's per-query ranks are better);
    ``directions_disagree`` is 1 where it and the metric difference favour different models.
    ``oracle``: the metric of the per-query best of the two (a bound for choosing one model
    per query, not for fusion).
    """
    rows = []
    for i, model_a in enumerate(models):
        for model_b in models[i + 1 :]:
            a, b = align(ranks[model_a], ranks[model_b], f"{collection}/{labelset}")
            test = paired_difference(
                a, b, n_images=n_images, metric=metric, n_boot=n_boot, seed=seed
            )
            effect = rank_biserial(a, b)
            rows.append(
                {
                    "collection": collection,
                    "labelset": labelset,
                    "model_a": model_a,
                    "model_b": model_b,
                    "queries": len(a),
                    "metric": metric,
                    "value_a": value(a, metric, n_images),
                    "value_b": value(b, metric, n_images),
                    "diff": test.diff,
                    "diff_low": test.low,
                    "diff_high": test.high,
                    "p_paired": test.p,
                    "a_better": int(np.sum(a < b)),
                    "b_better": int(np.sum(b < a)),
                    "same_rank": int(np.sum(a == b)),
                    "p_wilcoxon": wilcoxon_ranks(a, b),
                    "rank_biserial": effect,
                    "directions_disagree": int(favours(test.diff, metric) * np.sign(effect) < 0),
                    "oracle": value(complementary(a, b), metric, n_images),
                }
            )
    table = pd.DataFrame(rows, columns=[c for c in PAIR_COLUMNS if not c.startswith("q_")])
    return adjust(table, PAIR_TESTS)[PAIR_COLUMNS]


PAIR_TESTS = ("paired", "wilcoxon")
GAIN_TESTS = ("paired",)


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
    "p_paired",
    "q_paired",
]


def gains_table(
    ranks: dict[str, pd.Series],
    labelsets: list[str],
    *,
    metric: str,
    n_images: int,
    n_boot: int,
    seed: int,
    collection: str = "",
    model: str = "",
) -> pd.DataFrame:
    """What each labelset gains over the first one (e.g. long over short labels) for one
    model, paired by query: the same target image described two ways. A partial labelset
    is paired on the targets that have a query in both (``queries``; both values are over
    those); a labelset sharing none with the first gets no row. q-values as in
    ``pairs_table``: over these rows here, over every gain of the experiment in ``compare``."""
    rows = []
    base = labelsets[0]
    for labelset in labelsets[1:]:
        shared = ranks[labelset].index.intersection(ranks[base].index)
        if shared.empty:
            continue
        other, first = align(ranks[labelset][shared], ranks[base][shared], f"{collection}/{model}")
        test = paired_difference(
            other, first, n_images=n_images, metric=metric, n_boot=n_boot, seed=seed
        )
        rows.append(
            {
                "collection": collection,
                "model": model,
                "base": base,
                "labelset": labelset,
                "queries": len(other),
                "metric": metric,
                "value_base": value(first, metric, n_images),
                "value": value(other, metric, n_images),
                "gain": test.diff,
                "gain_low": test.low,
                "gain_high": test.high,
                "p_paired": test.p,
            }
        )
    table = pd.DataFrame(rows, columns=[c for c in GAIN_COLUMNS if not c.startswith("q_")])
    return adjust(table, GAIN_TESTS)[GAIN_COLUMNS]
