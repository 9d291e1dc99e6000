"""The experiment's models side by side: ``metrics/models.json``, the report's model table
and, per collection and labelset, the Pareto figure of the headline metric against the
image encoder's cost (GFLOPs) and its measured speed (images/s).

Each model's record is what the model itself said when it was embedded (the embedding
set's ``meta.json`` ``metadata``, kisbench/models/metadata.py; passed on by the rank stage
in ``data/ranks/<model>/<collection>/info.json``), the images/s measured by the embed stage
on each collection (with the device and precision it ran on), and the licence of the
model's card (params ``cards``; "unknown" when there is none). Only formatting and the
Pareto front: every number comes from those files.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

from kisbench import files
from kisbench.config import Config
from kisbench.config.cards import Card
from kisbench.evaluation.layout import RANKS_INFO, ranks_dir
from kisbench.report import figures
from kisbench.report.figures import plt
from kisbench.report.layout import figure_name

UNKNOWN = "unknown"
FRONT_COLOR = "#d55e00"
OTHER_COLOR = "#0072b2"


def model_records(
    models: Sequence[str],
    collections: Sequence[str],
    entries: Mapping[str, Mapping[str, Any]],
    licences: Mapping[str, str],
    ranks_root: Path | None = None,
) -> dict[str, dict[str, Any]]:
    """One record per model of the experiment, in the experiment's order: key, family,
    weights (the params entry's ``model``, ``source``, ``local_dir`` or LAVIS'
    ``model_type``), licence, the metadata, and per
    collection the measured images/s and where it was measured. A model whose rank stage
    wrote no metadata (an embedding set from before it was recorded) keeps its key,
    family and licence, with ``metadata`` None: re-embed it to fill them."""
    out: dict[str, dict[str, Any]] = {}
    for model in models:
        entry = dict(entries.get(model, {}))
        metadata = None
        speed: dict[str, dict[str, Any]] = {}
        for collection in collections:
            folder = ranks_dir(model, collection)
            if ranks_root is not None:
                folder = Path(ranks_root) / model / collection
            path = folder / RANKS_INFO
            if not path.is_file():
                continue
            facts = json.loads(path.read_text(encoding="utf-8")).get("embedding") or {}
            metadata = metadata or facts.get("metadata")
            speed[collection] = {
                "images_per_s": facts.get("images_per_s"),
                "device": facts.get("device"),
                "dtype": facts.get("dtype"),
                "decode": facts.get("decode"),
            }
        out[model] = {
            "key": model,
            "family": entry.get("family"),
            "weights": next(
                (entry[k] for k in ("model", "source", "local_dir", "model_type") if entry.get(k)),
                None,
            ),
            "licence": licences.get(model) or UNKNOWN,
            "metadata": metadata,
            "speed": speed,
        }
    return out


def licences(config: Config) -> dict[str, str]:
    """Each model's licence as its card (params ``cards``) states it; a model without a
    card has none here (the table says "unknown")."""
    cards: dict[str, Card] = getattr(config, "cards", {}) or {}
    return {key: card.licence for key, card in cards.items()}


def write_records(records: dict[str, dict[str, Any]], path: Path) -> Path:
    """``metrics/models.json``: ``{"models": {key: record}}``, atomically."""
    files.write_json(path, {"models": records})
    return path


def pareto_front(cost: Sequence[float], value: Sequence[float]) -> list[bool]:
    """For each point, whether it is on the Pareto front of low ``cost`` and high
    ``value``: no other point has a cost at most as high and a value at least as high,
    with one of the two strictly better. A point with a missing (NaN) coordinate is never
    on the front and dominates nothing. (For a quantity where more is better, such as
    images/s, pass its negative as the cost.)"""
    c = np.asarray(cost, dtype=np.float64)
    v = np.asarray(value, dtype=np.float64)
    ok = ~(np.isnan(c) | np.isnan(v))
    on = np.zeros(len(c), dtype=bool)
    # Cheapest first, best value first among equal costs: a point is on the front when its
    # value beats every cheaper point's, or ties the best and has that point's cost (equal
    # points do not dominate each other).
    order = sorted(np.flatnonzero(ok), key=lambda i: (c[i], -v[i]))
    best_value, best_cost = -math.inf, math.nan
    for i in order:
        if v[i] > best_value:
            on[i] = True
            best_value, best_cost = v[i], c[i]
        elif v[i] == best_value and c[i] == best_cost:
            on[i] = True
    return on.tolist()


@dataclass(frozen=True)
class Point:
    """One model of one graph: its headline value with its interval, and its costs."""

    model: str
    value: float
    low: float
    high: float
    gflops: float | None
    images_per_s: float | None


def graph_points(
    board: Mapping[str, Any],
    details: Mapping[str, Any],
    records: Mapping[str, Mapping[str, Any]],
    collection: str,
) -> list[Point]:
    """The points of one graph: its leaderboard's models (``metrics/leaderboard.json``),
    their headline value and interval (``metrics/kis_details.json``), their image GFLOPs
    and the images/s measured on ``collection`` (the records)."""
    metric = board["metric"]
    points = []
    for model, row in board["models"].items():
        interval = details.get(model, {}).get(metric, {})
        record = records.get(model, {})
        meta = record.get("metadata") or {}
        speed = (record.get("speed") or {}).get(collection, {})
        value = float(row[metric])
        points.append(
            Point(
                model,
                value,
                float(interval.get("low", value)),
                float(interval.get("high", value)),
                meta.get("image_gflops"),
                speed.get("images_per_s"),
            )
        )
    return points


def _label_positions(ys: np.ndarray, gap: float, low: float = 0.0, high: float = 1.0) -> np.ndarray:
    """Label heights (axes fraction) near ``ys`` but at least ``gap`` apart, in the same
    order: pushed up from the lowest, then down from ``high``; the column outgrows
    [low, high] only when there are too many labels for it."""
    order = np.argsort(ys, kind="stable")
    pos = np.asarray(ys, dtype=np.float64)[order].copy()
    for i in range(len(pos)):
        pos[i] = max(pos[i], low if i == 0 else pos[i - 1] + gap)
    if len(pos) and pos[-1] > high:
        pos[-1] = max(high, low + gap * (len(pos) - 1))
        for i in range(len(pos) - 2, -1, -1):
            pos[i] = min(pos[i], pos[i + 1] - gap)
    out = np.empty_like(pos)
    out[order] = pos
    return out


def _panel(
    ax: Any,
    points: list[Point],
    x: list[float],
    front: list[bool],
    metric: str,
    height_in: float,
    more: bool,
) -> None:
    """One panel: every model with its interval, the front's models joined by its steps
    and named in bold, every name in a column to the right with a line to its point."""
    y = np.array([p.value for p in points])
    err = np.array([[p.value - p.low for p in points], [p.high - p.value for p in points]])
    xs = np.array(x)
    for i in range(len(points)):
        color = FRONT_COLOR if front[i] else OTHER_COLOR
        ax.errorbar(
            xs[i],
            y[i],
            yerr=err[:, i : i + 1],
            fmt="o",
            ms=7 if front[i] else 5,
            mfc=color if front[i] else "white",
            mec=color,
            ecolor=color,
            elinewidth=1,
            capsize=2,
            alpha=1.0 if front[i] else 0.8,
            zorder=3 if front[i] else 2,
        )
    on = [i for i in range(len(points)) if front[i]]
    if len(on) > 1:
        order = sorted(on, key=lambda i: xs[i])
        # the best value within a cost (or at least a speed): steps towards the cheap side
        step = "pre" if more else "post"
        ax.step(xs[order], y[order], where=step, color=FRONT_COLOR, lw=1.2, alpha=0.6)
    ax.set_xscale("log")
    ax.grid(True, which="both", alpha=0.25)
    ax.set_ylabel(metric)
    low = min(float(np.min(y - err[0])), float(np.min(y)))
    high = max(float(np.max(y + err[1])), float(np.max(y)))
    pad = (high - low) * 0.05 or 0.01
    ax.set_ylim(low - pad, high + pad)
    ax.set_xlim(float(xs.min()) / 1.6, float(xs.max()) * 1.6)
    # Plain numbers at 1, 2, 5 x 10^k on a narrow axis, at powers of ten on a wide one
    # (matplotlib's own minor labels, 2 x 10^-3 ..., run into each other).
    decades = math.log10(float(xs.max()) / float(xs.min()) * 1.6**2)
    ax.xaxis.set_major_locator(
        LogLocator(base=10, subs=(1.0, 2.0, 5.0) if decades < 2.5 else (1.0,))
    )
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.xaxis.set_minor_formatter(NullFormatter())
    # Names in a column right of the axes, in the points' vertical order, 10.5 pt apart.
    bottom, top = ax.get_ylim()
    where = _label_positions((y - bottom) / (top - bottom), 10.5 / (height_in * 72))
    for i, p in enumerate(points):
        ax.annotate(
            p.model,
            xy=(xs[i], y[i]),
            xytext=(1.03, where[i]),
            textcoords="axes fraction",
            va="center",
            fontsize=8,
            fontweight="bold" if front[i] else "normal",
            color=FRONT_COLOR if front[i] else "0.15",
            arrowprops={"arrowstyle": "-", "color": "0.6", "lw": 0.5, "shrinkB": 3},
            annotation_clip=False,
        )


def pareto_figure(points: list[Point], metric: str, title: str) -> Figure | None:
    """The headline value (with its interval) against image-encoder GFLOPs (left) and
    measured images/s (right), each on a log axis, the Pareto front of each in orange.
    Models without a cost are left out of that panel (named below it); None when no
    model has either cost."""
    panels = [
        ("image encoder GFLOPs per image (multiply-adds), log scale", "gflops", False),
        ("measured images/s (embed stage), log scale", "images_per_s", True),
    ]
    usable = [
        (label, attr, more)
        for label, attr, more in panels
        if any(_positive(getattr(p, attr)) for p in points)
    ]
    if not usable:
        return None
    # Inches: each panel is a 7.6-wide block, the axes 4.6 of it and the names' column
    # right of them; the height grows with the models so that names stay 10.5 pt apart.
    block, left, width, bottom, top = 7.6, 0.8, 4.6, 1.15, 0.65
    height = max(4.4, 10.5 / 72 * len(points) * 1.08 + bottom + top)
    axes_h = height - bottom - top
    fig = plt.figure(figsize=(block * len(usable), height))
    for k, (label, attr, more) in enumerate(usable):
        ax = fig.add_axes(
            (
                (k * block + left) / (block * len(usable)),
                bottom / height,
                width / (block * len(usable)),
                axes_h / height,
            )
        )
        kept = [p for p in points if _positive(getattr(p, attr))]
        x = [float(getattr(p, attr)) for p in kept]
        front = pareto_front([-v if more else v for v in x], [p.value for p in kept])
        _panel(ax, kept, x, front, metric, axes_h, more)
        ax.set_xlabel(label)
        missing = [p.model for p in points if not _positive(getattr(p, attr))]
        if missing:
            ax.text(
                0,
                -0.75 / axes_h,
                "not shown (no value): " + ", ".join(missing),
                transform=ax.transAxes,
                fontsize=7,
                color="0.35",
                va="top",
            )
    fig.suptitle(title, fontsize=11)
    return fig


def _positive(x: float | None) -> bool:
    return x is not None and not (isinstance(x, float) and math.isnan(x)) and x > 0


def draw(
    leaderboard: Mapping[str, Any],
    details: Mapping[str, Any],
    records: Mapping[str, Mapping[str, Any]],
    out: Path,
) -> dict[str, Path]:
    """Every graph's Pareto figure (``pareto/C-L.png``) with two or more models."""
    written = {}
    for collection, by_labelset in leaderboard.items():
        for labelset, board in by_labelset.items():
            if len(board["models"]) < 2:
                continue
            points = graph_points(
                board, details.get(collection, {}).get(labelset, {}), records, collection
            )
            metric = board["metric"].upper() if board["metric"] == "mrr" else board["metric"]
            title = (
                f"{collection}, {labelset} labels ({board['queries']} queries): {metric} "
                "(95 % interval) against cost; Pareto front in orange"
            )
            fig = pareto_figure(points, metric, title)
            if fig is not None:
                name = figure_name("pareto", collection, labelset)
                written[name] = figures.save(fig, out / name, dpi=100)
    return written


def _millions(n: int | None) -> str:
    return "" if n is None else f"{n / 1e6:,.1f}" if n >= 1e5 else f"{n / 1e6:.3f}"


def table(records: Mapping[str, Mapping[str, Any]], collections: Sequence[str]) -> str:
    """The report's model table: one row per model."""
    header = [
        "model",
        "family",
        "licence",
        "params M (image / text / total)",
        "image GFLOPs",
        "input",
        "embedding",
        "text tokens",
        "tokenizer",
    ]
    header += [f"images/s `{c}`" for c in collections]
    rows = []
    for model, r in records.items():
        m = r.get("metadata") or {}
        params = m.get("parameters") or {}
        size = m.get("image_size")
        dims = m.get("embedding_dim")
        vectors = m.get("vectors_per_image", 1)
        row = [
            f"`{model}`",
            str(r.get("family") or ""),
            str(r.get("licence") or UNKNOWN),
            " / ".join(_millions(params.get(k)) for k in ("image", "text", "total"))
            if params
            else "",
            f"{m['image_gflops']:.4g}" if m.get("image_gflops") is not None else "",
            f"{size[0]}x{size[1]} {m.get('resize', '')}, {m.get('interpolation') or ''}".strip(", ")
            if size
            else "",
            (f"{vectors} x {dims}" if vectors and vectors > 1 else str(dims)) if dims else "",
            str(m.get("context_length") or "") if m else "",
            str(m.get("tokenizer") or ""),
        ]
        for c in collections:
            s = (r.get("speed") or {}).get(c) or {}
            ips = s.get("images_per_s")
            row.append(f"{ips:g} ({s.get('device')}, {s.get('dtype')})" if ips else "")
        rows.append(row)
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def section(records: Mapping[str, Mapping[str, Any]], collections: Sequence[str]) -> str:
    """The report's "Models" section (empty without records)."""
    if not records:
        return ""
    missing = [k for k, r in records.items() if not r.get("metadata")]
    text = [
        "## Models\n\n",
        "Measured from each loaded model when it was embedded (docs/models.md#model-metadata): "
        "parameters in millions (BLIP-2's Q-Former belongs to both towers, so image + text "
        "exceeds the total), the image encoder's GFLOPs for one image at its input size "
        "(one multiply-add = one FLOP; matrix products, convolutions and attention), the "
        "input size and resize (shortest: shortest side to the size, then centre crop; "
        "squash: both sides to the size), the embedding (vectors per image x dimensions), "
        "the text encoder's token limit. images/s: the embed stage's own measurement, end "
        "to end, on the device and precision named (not comparable across machines). "
        "Licence: params `cards` (unknown: no card). All in `metrics/models.json`.\n\n",
        table(records, collections),
        "\n",
    ]
    if missing:
        text.append(
            "No metadata for " + ", ".join(f"`{k}`" for k in missing) + ": their "
            "embeddings predate it (re-embed them).\n\n"
        )
    return "".join(text)


def pareto_text(figures_: Mapping[str, Path], collection: str, labelset: str, where: Path) -> str:
    """The Pareto figure of one graph with its heading, when it was drawn."""
    path = figures_.get(figure_name("pareto", collection, labelset))
    if path is None:
        return ""
    link = Path(os.path.relpath(path, where)).as_posix()
    return (
        "#### Cost and speed: the Pareto front\n\n"
        "A model is on the front (orange, joined by the steps) when no other model is at "
        "least as good and at most as costly (left: GFLOPs) or at least as fast (right: "
        "images/s), and better in one. Bars: 95 % intervals; the front uses the point "
        "values, so a front model whose interval overlaps a cheaper one's is not shown "
        "to be better.\n\n"
        f"![Pareto front]({link})\n\n"
    )
