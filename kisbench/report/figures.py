"""The thesis' figures, drawn with matplotlib (Agg: no display needed)."""

from __future__ import annotations

import math
import textwrap
from dataclasses import dataclass
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

from kisbench.evaluation.metrics import chance_curve, cumulative_curve  # noqa: E402
from kisbench.evaluation.pairwise import complementary  # noqa: E402

# Lines that are no model's are black and greys, which no model gets.
BEST_OF_TWO = "per-query best of the two models"
BEST_OF_TWO_STYLE = {"color": "black", "ls": "--", "lw": 1.4}
FUSION_STYLES = {
    "rrf": {"color": "black", "ls": ":", "lw": 1.8},
    "zscore": {"color": "0.4", "ls": "-.", "lw": 1.4},
    "minmax": {"color": "0.55", "ls": (0, (6, 2)), "lw": 1.4},
}
# k / N, the expected share for a random ranking of N images: a wide pale band behind the
# curves, so a chance-level model's curve stays visible on top of it.
CHANCE = "chance (random ranking)"
CHANCE_STYLE = {"color": "0.72", "ls": "-", "lw": 3.2, "zorder": 1.5}
SAME_RANK = "same rank by both (scatter: y = x)"
SAME_RANK_STYLE = {"color": "black", "ls": "-", "lw": 0.8}

# Colour-blind-safe colours, each at least 3:1 against white (WCAG 2.1 non-text contrast):
# Okabe and Ito's blue, vermillion, bluish green and reddish purple, Paul Tol's muted olive
# and wine, and a violet. Okabe-Ito's orange, sky blue and yellow and Tol's cyan and sand
# are below 3:1 (pale lines on white) and left out; Tol's indigo and green too: a thin
# indigo line looks black (the per-query best's colour), the green is near the bluish
# green. Any two of the seven differ by at least 13 CIE76 units under simulated protan,
# deutan and tritan vision and 30 in normal vision (tests/test_figures.py). Instead of more
# colours, which would crowd closer, the line style changes after every seven models: 28
# models get 28 distinct (colour, style) pairs, and only past that do pairs repeat.
COLORS = ("#0072b2", "#d55e00", "#009e73", "#cc79a7", "#999933", "#882255", "#7744cc")
LINESTYLES = (
    ("solid", "-"),
    ("dashed", (0, (5, 1.6))),
    ("dash-dot", (0, (6, 1.6, 1.4, 1.6))),
    ("dotted", (0, (1.2, 1.2))),
)


@dataclass(frozen=True)
class Style:
    """A model's line: its colour (also of its name in text) and its dash pattern."""

    color: str  # "#rrggbb", as matplotlib.colors.to_hex writes it
    dashes: str  # a name from LINESTYLES
    linestyle: str | tuple[float, tuple[float, ...]]  # for matplotlib's ``ls``

    def line(self) -> dict[str, object]:
        return {"color": self.color, "ls": self.linestyle}


def model_styles(models: list[str]) -> dict[str, Style]:
    """One (colour, line style) per model, fixed by the model's position in params.yaml
    ``models`` (the whole list, not the experiment's subset), so a model looks the same in
    every figure and every experiment."""
    out = {}
    for i, model in enumerate(models):
        name, linestyle = LINESTYLES[(i // len(COLORS)) % len(LINESTYLES)]
        out[model] = Style(COLORS[i % len(COLORS)], name, linestyle)
    return out


def cumulative_grid(
    curves: dict[tuple[str, str], pd.DataFrame],
    xmax: dict[str, int],
    styles: dict[str, Style],
    n_images: dict[tuple[str, str], int],
    queries: dict[tuple[str, str], int] | None = None,
) -> Figure:
    """One panel per (collection, labelset): share of queries found within the top k, for
    every model of ``styles`` in the table, and chance, k / ``n_images`` of the graph; the
    title states the graph's image count and, given ``queries``, its query count."""
    collections = list(dict.fromkeys(c for c, _ in curves))
    labelsets = list(dict.fromkeys(ls for _, ls in curves))
    # One legend for all panels (a model has one style everywhere), below them: the models
    # in params order, then chance; the figure grows by its rows.
    labels = [m for m in styles if any(m in table.columns for table in curves.values())]
    labels.append(CHANCE)
    width = 5 * len(labelsets)
    ncols = legend_columns(labels, width, 10)
    legend_in = 0.25 + 0.23 * math.ceil(len(labels) / ncols)
    fig, axes = plt.subplots(
        len(collections),
        len(labelsets),
        figsize=(width, 3.8 * len(collections) + legend_in),
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
            n = n_images[(collection, labelset)]
            ax.plot(part["k"], chance_curve(part["k"], n), label=CHANCE, **CHANCE_STYLE)
            for model in [m for m in styles if m in table.columns]:
                ax.plot(part["k"], part[model], label=model, lw=1.6, **styles[model].line())
            ax.set_xlim(1, limit)
            ax.set_ylim(0, 1.0)
            q = (queries or {}).get((collection, labelset))
            counts = f"{n} images" + (f", {q} queries" if q is not None else "")
            ax.set_title(f"{collection} ({counts}): {labelset} labels")
            ax.set_xlabel("rank k")
            ax.set_ylabel("share of queries with target in top k")
            ax.grid(alpha=0.3)
    handles = [plt.Line2D([], [], lw=1.6, label=m, **styles[m].line()) for m in labels[:-1]]
    handles.append(plt.Line2D([], [], label=CHANCE, **CHANCE_STYLE))
    fig.legend(handles=handles, loc="outside lower center", ncols=ncols, handlelength=3.5)
    return fig


def legend_columns(labels: list[str], width_in: float, fontsize: float) -> int:
    """The most legend columns that fit ``width_in`` inches. matplotlib splits the entries
    into columns as ``np.array_split`` does, each column as wide as its longest label
    (about 0.6 em a character) plus the line sample (3.5 em), padding and spacing (3 em)."""
    em = fontsize / 72
    for ncols in range(len(labels), 1, -1):
        columns = np.array_split(np.array(labels, dtype=object), ncols)
        widths = [(6.5 + 0.6 * max(map(len, column))) * em for column in columns]
        if sum(widths) <= width_in:
            return ncols
    return 1


def pairwise_grid(
    ranks: dict[str, np.ndarray],
    n_images: int,
    xmax: int,
    styles: dict[str, Style],
    *,
    fused: dict[tuple[str, str], dict[str, np.ndarray]] | None = None,
    values: dict[str, float] | None = None,
    title: str = "",
) -> Figure:
    """The thesis' N x N grid for the models of ``ranks`` (in the given order, best first).

    Above the diagonal, panel (i, j): log-log scatter of per-query ranks, model j (x) against
    model i (y), with the diagonal y = x (points on it: same rank). Below it, panel (i, j):
    cumulative curves of both models, their per-query best (for every query the better of
    the two ranks: what choosing one model per query could reach at best; a fusion can
    exceed it), chance (k / ``n_images``) and, where given in ``fused[(model_i, model_j)]``,
    each fusion method's curve. Ranks must be aligned by query. One legend lists every line.
    """
    models = list(ranks)
    n = len(models)
    size = 2.7 if n > 2 else 3.6
    width = size * n
    caption = textwrap.fill(
        "Row i, column j; the diagonal names the models (and their headline value). Above "
        "the diagonal, one point per query: the target's rank by model j (x) against model "
        "i (y), log scales; on the line y = x both models rank it the same. Below: the "
        "share of queries whose target is within the top k, for models i and j, their "
        "per-query best (for every query the better of the two ranks: a bound for choosing "
        "one model per query, not for fusion, which can exceed it), their fusions, and "
        f"chance (k / {n_images}, a random ranking of the {n_images} images).",
        int(width * 13),
    )
    methods = {m for pair in (fused or {}).values() for m in pair}
    handles = [plt.Line2D([], [], lw=1.6, label=m, **styles[m].line()) for m in models]
    handles += [
        plt.Line2D([], [], label=BEST_OF_TWO, **BEST_OF_TWO_STYLE),
        *(
            plt.Line2D([], [], label=f"{m} fusion", **FUSION_STYLES[m])
            for m in FUSION_STYLES
            if m in methods
        ),
        plt.Line2D([], [], label=CHANCE, **CHANCE_STYLE),
        plt.Line2D([], [], label=SAME_RANK, **SAME_RANK_STYLE),
    ]
    ncols = legend_columns([h.get_label() for h in handles], width, 9)
    legend_in = 0.1 + 0.22 * math.ceil(len(handles) / ncols)
    caption_in = 0.08 + 0.14 * (caption.count("\n") + 1)
    ticks_in = 0.8  # tick labels and axis label of the bottom row
    bottom = ticks_in + legend_in + caption_in
    height = size * n + bottom
    # Fixed margins (in inches) instead of a layout engine, and fixed ticks without
    # mathtext: with 25 panels, constrained layout and log minor ticks tripled the time.
    fig, axes = plt.subplots(n, n, figsize=(width, height), squeeze=False)
    fig.subplots_adjust(
        left=0.8 / width,
        right=1 - 0.15 / width,
        bottom=bottom / height,
        top=1 - 0.45 / height,
        wspace=0.5,
        hspace=0.5,
    )
    limit = min(xmax, n_images)
    k = np.arange(1, limit + 1)
    lo, hi = 0.8, n_images * 1.25
    decades = [10**e for e in range(int(np.log10(n_images)) + 1)]
    decade_labels = [_short(d) for d in decades]
    label_size = 8.5
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
                    color=styles[a].color if a in styles else "black",
                    transform=ax.transAxes,
                    weight="bold",
                )
            elif i < j:
                ax.scatter(ranks[b], ranks[a], s=9, alpha=0.55, color="0.25", lw=0)
                ax.plot([lo, hi], [lo, hi], label=SAME_RANK, **SAME_RANK_STYLE)
                ax.set_xscale("log")
                ax.set_yscale("log")
                for axis in (ax.xaxis, ax.yaxis):
                    axis.set_major_locator(FixedLocator(decades))
                    axis.set_major_formatter(FixedFormatter(decade_labels))
                    axis.set_minor_locator(NullLocator())
                ax.set_xlim(lo, hi)
                ax.set_ylim(lo, hi)
                ax.set_xlabel(f"rank by {b} (log)", fontsize=label_size, labelpad=2)
                ax.set_ylabel(f"rank by {a} (log)", fontsize=label_size, labelpad=2)
            else:
                ax.plot(k, chance_curve(k, n_images), label=CHANCE, **CHANCE_STYLE)
                for model in (a, b):
                    curve = cumulative_curve(ranks[model], n_images)[:limit]
                    ax.plot(k, curve, lw=1.6, label=model, **styles[model].line())
                both = cumulative_curve(complementary(ranks[a], ranks[b]), n_images)[:limit]
                ax.plot(k, both, label=BEST_OF_TWO, **BEST_OF_TWO_STYLE)
                pair = (fused or {}).get((a, b)) or (fused or {}).get((b, a)) or {}
                for method, fused_ranks in pair.items():
                    curve = cumulative_curve(fused_ranks, n_images)[:limit]
                    ax.plot(k, curve, label=f"{method} fusion", **FUSION_STYLES[method])
                ax.set_xlim(1, limit)
                ax.set_ylim(0, 1)
                ax.xaxis.set_major_locator(MaxNLocator(4, steps=[1, 2, 2.5, 5, 10], integer=True))
                ax.set_yticks([0, 0.25, 0.5, 0.75, 1])
                ax.grid(alpha=0.3)
                ax.set_xlabel("rank k", fontsize=label_size, labelpad=2)
                ax.set_ylabel("share of queries found", fontsize=label_size, labelpad=2)
            ax.tick_params(labelsize=8)
    fig.text(0.5, 0.08 / height, caption, ha="center", va="bottom", fontsize=8)
    fig.legend(
        handles=handles,
        loc="lower center",
        bbox_to_anchor=(0.5, caption_in / height),
        ncols=ncols,
        fontsize=9,
        handlelength=3.5,
        frameon=False,
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
