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
