"""The thesis' figures, drawn with matplotlib (Agg: no display needed)."""

from __future__ import annotations

import textwrap
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.ticker import (  # noqa: E402
    FixedFormatter,
    FixedLocator,
    MaxNLocator,
    NullLocator,
)

from kisbench.evaluation.metrics import cumulative_curve  # noqa: E402
from kisbench.evaluation.pairwise import complementary  # noqa: E402

# Models get colours; the oracle and fusion curves are black and greys, which no model gets.
ORACLE_STYLE = {"color": "black", "ls": "--", "lw": 1.4}
FUSION_STYLES = {
    "rrf": {"color": "black", "ls": ":", "lw": 1.8},
    "zscore": {"color": "0.4", "ls": "-.", "lw": 1.4},
    "minmax": {"color": "0.55", "ls": (0, (6, 2)), "lw": 1.4},
}
# tab20 without its two greys, dark shades first (the first 9 are tab10 without grey).
PALETTE = [i for i in range(0, 20, 2) if i != 14] + [i for i in range(1, 20, 2) if i != 15]


def model_colors(models: list[str]) -> dict[str, tuple[float, ...]]:
    """One colour per model, fixed by the model's position in params.yaml ``models`` (the
    whole list, not the experiment's subset), so a model keeps its colour in every figure
    and every experiment."""
    cmap = plt.get_cmap("tab20")
    return {m: cmap(PALETTE[i % len(PALETTE)]) for i, m in enumerate(models)}


def cumulative_grid(
    curves: dict[tuple[str, str], pd.DataFrame],
    xmax: dict[str, int],
    colors: dict[str, tuple[float, ...]],
) -> Figure:
    """One panel per (collection, labelset): share of queries found within the top k."""
    collections = list(dict.fromkeys(c for c, _ in curves))
    labelsets = list(dict.fromkeys(ls for _, ls in curves))
    fig, axes = plt.subplots(
        len(collections),
        len(labelsets),
        figsize=(5 * len(labelsets), 3.8 * len(collections)),
        squeeze=False,
        constrained_layout=True,
    )
    for r, collection in enumerate(collections):
        for c, labelset in enumerate(labelsets):
            ax = axes[r][c]
            table = curves.get((collection, labelset))
            if table is None:
                ax.set_axis_off()
                continue
            limit = min(xmax.get(collection, len(table)), len(table))
            part = table[table["k"] <= limit]
            for model in [m for m in colors if m in table.columns]:
                ax.plot(part["k"], part[model], label=model, color=colors[model], lw=1.6)
            ax.set_xlim(1, limit)
            ax.set_ylim(0, 1.0)
            ax.set_title(f"{collection}: {labelset} labels")
            ax.set_xlabel("rank k")
            ax.set_ylabel("share of queries with target in top k")
            ax.grid(alpha=0.3)
    # One legend for all panels (a model has one colour everywhere), outside the curves.
    handles, labels = [], []
    for ax in fig.axes:
        for line in ax.get_lines():
            if line.get_label() not in labels:
                handles.append(line)
                labels.append(line.get_label())
    if handles:
        fig.legend(handles, labels, loc="outside lower center", ncols=min(len(labels), 6))
    return fig


def pairwise_grid(
    ranks: dict[str, np.ndarray],
    n_images: int,
    xmax: int,
    colors: dict[str, tuple[float, ...]],
    *,
    fused: dict[tuple[str, str], dict[str, np.ndarray]] | None = None,
    values: dict[str, float] | None = None,
    title: str = "",
) -> Figure:
    """The thesis' N x N grid for the models of ``ranks`` (in the given order, best first).

    Above the diagonal, panel (i, j): log-log scatter of per-query ranks, model j (x) against
    model i (y), with the diagonal y = x (points on it: same rank). Below it, panel (i, j):
    cumulative curves of both models, their complementary (oracle) curve and, where given in
    ``fused[(model_i, model_j)]``, each fusion method's curve: what a real combination
    reaches next to the oracle bound. Ranks must be aligned by query.
    """
    models = list(ranks)
    n = len(models)
    size = 2.7 if n > 2 else 3.6
    caption = textwrap.fill(
        "Row i, column j. Above the diagonal: the target's rank by model j (x) against model "
        "i (y), log scales. Below: share of queries whose target is within the top k, for "
        "models i and j, their oracle (per-query best) and their fusions.",
        int(size * n * 13),
    )
    bottom = 0.75 + 0.14 * (caption.count("\n") + 1) + 0.3  # tick labels, caption, legend
    width, height = size * n, size * n + bottom
    # Fixed margins (in inches) instead of a layout engine, and fixed ticks without
    # mathtext: with 25 panels, constrained layout and log minor ticks tripled the time.
    fig, axes = plt.subplots(n, n, figsize=(width, height), squeeze=False)
    fig.subplots_adjust(
        left=0.75 / width,
        right=1 - 0.15 / width,
        bottom=bottom / height,
        top=1 - 0.45 / height,
        wspace=0.42,
        hspace=0.42,
    )
    limit = min(xmax, n_images)
    k = np.arange(1, limit + 1)
    lo, hi = 0.8, n_images * 1.25
    decades = [10**e for e in range(int(np.log10(n_images)) + 1)]
    decade_labels = [_short(d) for d in decades]
    for i, a in enumerate(models):
        for j, b in enumerate(models):
            ax = axes[i][j]
            if i == j:
                ax.set_axis_off()
                label = a if values is None else f"{a}\n{values[a]:.3f}"
                ax.text(
                    0.5,
                    0.5,
                    label,
                    ha="center",
                    va="center",
                    fontsize=11,
                    color=colors.get(a, "black"),
                    transform=ax.transAxes,
                    weight="bold",
                )
            elif i < j:
                ax.scatter(ranks[b], ranks[a], s=9, alpha=0.55, color="0.25", lw=0)
                ax.plot([lo, hi], [lo, hi], color="black", lw=0.8, label="same rank")
                ax.set_xscale("log")
                ax.set_yscale("log")
                for axis in (ax.xaxis, ax.yaxis):
                    axis.set_major_locator(FixedLocator(decades))
                    axis.set_major_formatter(FixedFormatter(decade_labels))
                    axis.set_minor_locator(NullLocator())
                ax.set_xlim(lo, hi)
                ax.set_ylim(lo, hi)
            else:
                for model in (a, b):
                    curve = cumulative_curve(ranks[model], n_images)[:limit]
                    ax.plot(k, curve, color=colors.get(model, "black"), lw=1.5, label=model)
                both = cumulative_curve(complementary(ranks[a], ranks[b]), n_images)[:limit]
                ax.plot(k, both, label="complementary (oracle)", **ORACLE_STYLE)
                pair = (fused or {}).get((a, b)) or (fused or {}).get((b, a)) or {}
                for method, fused_ranks in pair.items():
                    curve = cumulative_curve(fused_ranks, n_images)[:limit]
                    ax.plot(k, curve, label=f"{method} fusion", **FUSION_STYLES[method])
                ax.set_xlim(1, limit)
                ax.set_ylim(0, 1)
                ax.xaxis.set_major_locator(MaxNLocator(4, steps=[1, 2, 2.5, 5, 10], integer=True))
                ax.set_yticks([0, 0.25, 0.5, 0.75, 1])
                ax.grid(alpha=0.3)
            ax.tick_params(labelsize=7)
    handles = [plt.Line2D([], [], **ORACLE_STYLE, label="complementary (oracle)")]
    methods = {m for pair in (fused or {}).values() for m in pair}
    handles += [
        plt.Line2D([], [], **FUSION_STYLES[m], label=f"{m} fusion")
        for m in FUSION_STYLES
        if m in methods
    ]
    # One caption instead of axis labels on every panel (which also cost a third of the time).
    fig.text(0.5, 0.08 / height, caption, ha="center", va="bottom", fontsize=8)
    fig.legend(
        handles=handles,
        loc="lower center",
        bbox_to_anchor=(0.5, (0.12 + 0.14 * caption.count("\n") + 0.14) / height),
        ncols=len(handles),
        fontsize=9,
    )
    if title:
        fig.suptitle(title, y=1 - 0.1 / height, va="top")
    return fig


def _short(value: int) -> str:
    """1, 10, 100, 1k, 10k, 100k, 1M: tick labels without mathtext."""
    for unit, suffix in ((10**6, "M"), (10**3, "k")):
        if value >= unit:
            return f"{value // unit}{suffix}"
    return str(value)


def save(fig: Figure, path: Path, dpi: int = 120) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi)
    plt.close(fig)
    return path


def reset_consistency(
    table: pd.DataFrame, *, project_color: str = "tomato", paper_color: str = "royalblue"
) -> Figure:
    """The thesis' Figure 4.13: every extractor's variant-1 consistency with the human
    judgements, best on top, with its bootstrap CI; this project's models highlighted.

    ``table`` has columns extractor, source ("project" or "paper"), consistency_v1,
    v1_low, v1_high.
    """
    t = table.sort_values("consistency_v1", ascending=True, kind="stable")
    fig, ax = plt.subplots(figsize=(9, 1.2 + 0.26 * len(t)), constrained_layout=True)
    y = range(len(t))
    colors = [project_color if s == "project" else paper_color for s in t["source"]]
    value = t["consistency_v1"].to_numpy()
    err = [value - t["v1_low"].to_numpy(), t["v1_high"].to_numpy() - value]
    ax.barh(y, value, color=colors, xerr=err, ecolor="black", capsize=2, height=0.75)
    ax.set_yticks(list(y), t["extractor"].tolist(), fontsize="small")
    ax.set_ylim(-0.6, len(t) - 0.4)
    for tick, source in zip(ax.get_yticklabels(), t["source"], strict=True):
        if source == "project":
            tick.set_fontweight("bold")
    low = min(0.5, float(t["v1_low"].min(skipna=True) if t["v1_low"].notna().any() else 0.5))
    high = float(t["v1_high"].max(skipna=True)) if t["v1_high"].notna().any() else value.max()
    ax.set_xlim(max(0.0, low - 0.02), min(1.0, max(high, value.max()) + 0.03))
    ax.axvline(0.5, color="grey", lw=0.8, ls="--")
    ax.set_xlabel("share of non-indifferent judgements where the extractor agrees (95% CI)")
    ax.set_title("RESET: agreement of image-image similarity with human judgements")
    ax.grid(axis="x", alpha=0.3)
    handles = [
        plt.Rectangle((0, 0), 1, 1, color=project_color, label="this project's models"),
        plt.Rectangle((0, 0), 1, 1, color=paper_color, label="RESET's extractors"),
    ]
    ax.legend(handles=handles, loc="lower right", fontsize="small")
    return fig
