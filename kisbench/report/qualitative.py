"""The qualitative figure: for a few queries, the query text, the target image and each
model's best images, so a reader sees what the numbers mean.

By default the queries are those where two models disagree most (the largest ratio of
their ranks of the target): where one model finds the image and another does not.
"""

from __future__ import annotations

import textwrap
from dataclasses import dataclass
from itertools import combinations
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.axes import Axes  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.patches import Rectangle  # noqa: E402

from kisbench.data.images import load_rgb  # noqa: E402

# Black, which no model gets (their colours name them in the rows): a green frame would
# read as the green model's.
TARGET_COLOR = "black"


def disagreements(ranks: pd.DataFrame, count: int) -> pd.DataFrame:
    """The ``count`` queries on which two models' ranks differ most, by |log2 of their
    ratio|, largest first (ties by query id).

    ``ranks``: one row per query id (index), one column per model. Returns columns
    ``query_id, model_a, model_b, rank_a, rank_b, log2_ratio`` with ``model_a`` the model
    that ranks the target better.
    """
    if ranks.shape[1] < 2 or count <= 0:
        return pd.DataFrame(columns=["query_id", "model_a", "model_b", "rank_a", "rank_b"])
    logs = np.log2(ranks.to_numpy(dtype=np.float64))
    pairs = list(combinations(range(ranks.shape[1]), 2))
    gaps = np.stack([np.abs(logs[:, i] - logs[:, j]) for i, j in pairs], axis=1)
    best_pair = gaps.argmax(axis=1)
    table = pd.DataFrame({"query_id": ranks.index, "gap": gaps.max(axis=1), "pair": best_pair})
    table = table.sort_values(["gap", "query_id"], ascending=[False, True]).head(count)
    rows = []
    for qid, gap, pair in table.itertuples(index=False):
        (a, ra), (b, rb) = sorted(
            ((ranks.columns[c], int(ranks.loc[qid].iloc[c])) for c in pairs[pair]),
            key=lambda mr: mr[1],
        )
        rows.append(
            {
                "query_id": qid,
                "model_a": a,
                "model_b": b,
                "rank_a": ra,
                "rank_b": rb,
                "log2_ratio": float(gap),
            }
        )
    return pd.DataFrame(rows)


@dataclass(frozen=True)
class Example:
    query_id: str
    text: str
    target_id: str
    ranks: dict[str, int]  # model -> the target's rank
    top_ids: dict[str, list[str]]  # model -> best image ids, best first
    # images the collection declares equivalent to the target: framed like it, since
    # finding one is finding the target (and the rank does not count them ahead of it)
    equivalents: tuple[str, ...] = ()


CELL = 160  # pixels per thumbnail cell
GAP = 10  # pixels between cells


def thumbnail(path: Path | None, size: int = CELL) -> np.ndarray:
    """The image shrunk to fit a ``size`` square, centred on white; grey if missing."""
    cell = np.full((size, size, 3), 255, dtype=np.uint8)
    if path is None:
        cell[:] = 200
        return cell
    image = load_rgb(path)
    image.thumbnail((size, size))
    pixels = np.asarray(image)
    h, w = pixels.shape[:2]
    top, left = (size - h) // 2, (size - w) // 2
    cell[top : top + h, left : left + w] = pixels
    return cell


def montage(cells: list[np.ndarray], count: int) -> np.ndarray:
    """``count`` cells side by side with white gaps (missing cells stay white)."""
    size = CELL
    row = np.full((size, count * size + (count - 1) * GAP, 3), 255, dtype=np.uint8)
    for i, cell in enumerate(cells[:count]):
        x = i * (size + GAP)
        row[:, x : x + size] = cell
    return row


def _bare(ax: Axes) -> None:
    ax.set_xticks([])
    ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_visible(False)


def _frame(ax: Axes, column: int) -> None:
    """Frame cell ``column`` of a montage in the target colour."""
    x = column * (CELL + GAP) - 0.5
    ax.add_patch(
        Rectangle((x, -0.5), CELL, CELL, fill=False, edgecolor=TARGET_COLOR, lw=3.5, label="target")
    )


def examples_figure(
    examples: list[Example],
    images: dict[str, Path],
    colors: dict[str, str],
    *,
    top: int = 5,
    title: str = "",
) -> Figure:
    """One block per example: the query text above, the target image on the left, then one
    row per model with its ``top`` best images (the target and its declared equivalents,
    if among them, framed in black) and the rank it gave the target.

    Each model's row is one picture (a montage), which keeps the figure cheap to draw.
    """
    models = list(examples[0].ranks) if examples else []
    rows = max(len(models), 1)
    row_in = 1.25  # inches per model row
    texts = [textwrap.fill(f'{ex.query_id}: "{ex.text}"', width=int(17 * top)) for ex in examples]
    # Each block: its text (0.15 inch a line), the column numbers, then the model rows.
    heads = [0.35 + 0.15 * (t.count("\n") + 1) for t in texts]
    height = 0.5 + sum(heads) + row_in * rows * len(examples)
    fig = plt.figure(figsize=(1.3 * top + 3.4, height))
    if title:
        fig.suptitle(title, fontsize=12, y=1 - 0.2 / height)
    cache: dict[str, np.ndarray] = {}

    def cell(image_id: str) -> np.ndarray:
        if image_id not in cache:
            cache[image_id] = thumbnail(images.get(image_id))
        return cache[image_id]

    top_in = 0.5  # inches from the figure's top to this block
    for ex, text, head in zip(examples, texts, heads, strict=True):
        y_top = 1 - top_in / height
        fig.text(0.01, y_top - 0.05 / height, text, fontsize=8.5, va="top")
        row_h = row_in / height
        first = y_top - head / height
        top_in += head + row_in * rows
        target_ax = fig.add_axes(
            (0.01, first - rows * row_h + 0.05 / height, 0.2, rows * row_h - 0.1 / height)
        )
        target_ax.imshow(cell(ex.target_id))
        _bare(target_ax)
        for spine in target_ax.spines.values():
            spine.set_visible(True)
            spine.set_edgecolor(TARGET_COLOR)
            spine.set_linewidth(3.5)
        target_ax.set_title("target", fontsize=8, color=TARGET_COLOR)
        for r, model in enumerate(models):
            found = ex.top_ids[model][:top]
            ax = fig.add_axes(
                (0.34, first - (r + 1) * row_h + 0.06 / height, 0.65, row_h - 0.12 / height)
            )
            ax.imshow(montage([cell(i) for i in found], top))
            _bare(ax)
            for c, image_id in enumerate(found):
                if image_id == ex.target_id or image_id in ex.equivalents:
                    _frame(ax, c)
            ax.set_ylabel(
                f"{model}\nrank {ex.ranks[model]}",
                fontsize=8,
                weight="bold",
                rotation=0,
                ha="right",
                va="center",
                color=colors.get(model, "black"),
            )
            if r == 0:
                ax.set_xticks(
                    [c * (CELL + GAP) + CELL / 2 for c in range(top)],
                    [f"#{c + 1}" for c in range(top)],
                    fontsize=7.5,
                )
                ax.xaxis.tick_top()
                ax.tick_params(length=0)
    return fig
