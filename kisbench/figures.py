"""The thesis' figures, drawn with matplotlib (Agg: no display needed)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402


def model_colors(models: list[str]) -> dict[str, tuple[float, ...]]:
    """One colour per model, fixed by the model's position in params.yaml ``models``,
    so a model has the same colour in every figure and experiment."""
    cmap = plt.get_cmap("tab10" if len(models) <= 10 else "tab20")
    return {m: cmap(i % cmap.N) for i, m in enumerate(models)}


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
            ax.legend(fontsize="small", loc="lower right")
    return fig


def save(fig: Figure, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
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
