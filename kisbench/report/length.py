"""The query-length study in the figures and the report (docs/evaluation.md#query-length).

Figures, per collection and labelset: ``length/tokens-C-L.png``, one panel per model, the
histogram of the queries' token counts by that model's tokenizer with its context marked
(bars past it are the truncated queries); ``length/budgets-C-L.png``, MRR against the
token budget per model with 95 % intervals, the effective budget circled. The report's
section: how to read them, the metrics of truncated and untruncated queries, and MRR per
budget.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.ticker import FixedLocator, NullLocator  # noqa: E402

from kisbench.evaluation.layout import LENGTH_QUERIES as QUERIES  # noqa: E402
from kisbench.evaluation.layout import LENGTH_SUMMARY as SUMMARY  # noqa: E402
from kisbench.evaluation.layout import METRICS  # noqa: E402
from kisbench.evaluation.metrics import LOWER_IS_BETTER, chance_levels  # noqa: E402
from kisbench.report import figures  # noqa: E402

KIND = "length"
PANEL_COLUMNS = 3


def tokens_name(collection: str, labelset: str) -> str:
    return f"{KIND}/tokens-{collection}-{labelset}.png"


def budgets_name(collection: str, labelset: str) -> str:
    return f"{KIND}/budgets-{collection}-{labelset}.png"


def load(metrics: Path = METRICS) -> tuple[dict[str, Any], pd.DataFrame]:
    """``metrics/length.json`` and ``metrics/length_queries.csv``, as the length stage
    wrote them; nothing when it has not run (the render stage of the pipeline always has
    them: they are its deps)."""
    summary = Path(metrics) / SUMMARY
    table = Path(metrics) / QUERIES
    if not summary.is_file():
        return {}, pd.DataFrame()
    if not table.is_file():
        raise FileNotFoundError(f"{table} not found; run the length stage first")
    frame = pd.read_csv(table, dtype={"collection": str, "labelset": str, "model": str})
    frame["query_id"] = frame["query_id"].astype(str)
    return json.loads(summary.read_text(encoding="utf-8")), frame


def _style(styles: dict[str, figures.Style], model: str) -> figures.Style:
    return styles.get(model) or figures.Style("#000000", "solid", "-")


def tokens_figure(
    frame: pd.DataFrame, by_model: dict[str, Any], styles: dict[str, figures.Style], title: str
) -> plt.Figure:
    """One panel per model: how many queries have each token count; the dashed line is
    the context, bars right of it (hatched) are cut."""
    models = list(by_model)
    cols = min(PANEL_COLUMNS, len(models))
    rows = math.ceil(len(models) / cols)
    fig, axes = plt.subplots(
        rows, cols, figsize=(4.4 * cols, 3.3 * rows + 0.6), squeeze=False, constrained_layout=True
    )
    for ax in axes.flat[len(models) :]:
        ax.set_axis_off()
    for ax, model in zip(axes.flat, models, strict=False):
        entry = by_model[model]
        tokens = frame.loc[frame["model"] == model, "tokens"].to_numpy()
        context = int(entry["context"])
        top = int(tokens.max())
        # A context far beyond every query (ALIGN's 512) would squash the bars: the axis
        # then ends after the longest query and says where the context is.
        shown = context <= 2 * top
        right = max(top, context) + 2 if shown else top + 2
        bins = np.arange(0.5, right + 1.5, max(1, math.ceil(right / 60)))
        color = _style(styles, model).color
        kept = tokens[tokens <= context]
        cut = tokens[tokens > context]
        ax.hist(kept, bins=bins, color=color, alpha=0.85, label="within the context")
        if len(cut):
            ax.hist(
                cut,
                bins=bins,
                color="white",
                edgecolor=color,
                hatch="///",
                label="truncated (past the context)",
            )
        if shown:
            ax.axvline(context + 0.5, color="black", ls="--", lw=1.2)
            ax.annotate(
                f"context {context}",
                xy=(context + 0.5, 1),
                xycoords=("data", "axes fraction"),
                xytext=(-3, -3),
                textcoords="offset points",
                ha="right",
                va="top",
                fontsize=8,
            )
        else:
            ax.annotate(
                f"context {context} (off the axis, right)",
                xy=(1, 1),
                xycoords="axes fraction",
                xytext=(-3, -3),
                textcoords="offset points",
                ha="right",
                va="top",
                fontsize=8,
            )
        ax.set_xlim(0, right)
        ax.set_title(f"{model}: {entry['truncated']} of {entry['queries']} truncated", fontsize=10)
        ax.set_xlabel("tokens per query (its tokenizer, special tokens included)")
        ax.set_ylabel("queries")
        ax.grid(alpha=0.3)
        if len(cut):
            ax.legend(fontsize=7, loc="best")
    fig.suptitle(title)
    return fig


def budgets_figure(
    by_model: dict[str, Any],
    styles: dict[str, figures.Style],
    chance: float,
    title: str,
) -> plt.Figure:
    """MRR at each budget per model, with its 95 % interval; the last point of a model is
    its full length (its context), the circled point its effective budget."""
    fig, ax = plt.subplots(figsize=(7.5, 4.8), constrained_layout=True)
    ticks = sorted({p["budget"] for e in by_model.values() for p in e["budgets"]})
    n = len(by_model)
    for i, (model, entry) in enumerate(by_model.items()):
        style = _style(styles, model)
        points = entry["budgets"]
        # a small multiplicative offset per model, so that the intervals do not overlap
        shift = 1.0 + 0.025 * (i - (n - 1) / 2)
        x = np.array([p["budget"] for p in points], dtype=float) * shift
        y = np.array([p["mrr"] for p in points])
        err = np.array(
            [[p["mrr"] - p["low"] for p in points], [p["high"] - p["mrr"] for p in points]]
        )
        ax.errorbar(
            x,
            y,
            yerr=err.clip(min=0),
            color=style.color,
            ls=style.linestyle,
            marker="o",
            ms=4,
            lw=1.6,
            capsize=3,
            label=f"{model} (context {entry['context']}, effective {entry['effective']})",
        )
        eff = next(j for j, p in enumerate(points) if p["budget"] == entry["effective"])
        ax.plot(x[eff], y[eff], "o", ms=12, mfc="none", mec=style.color, mew=1.6)
    ax.axhline(chance, label="chance (random ranking)", **figures.CHANCE_STYLE)
    ax.set_xscale("log")
    ax.xaxis.set_major_locator(FixedLocator(ticks))
    ax.xaxis.set_minor_locator(NullLocator())
    # Budgets close on the log axis (32 and BLIP-2's 35) would print over each other:
    # such a tick keeps its line, and the legend gives every context.
    labels, last = [], None
    for t in ticks:
        crowded = last is not None and t / last < 1.2
        labels.append("" if crowded else str(t))
        last = last if crowded else t
    ax.set_xticks(ticks, labels)
    ax.set_xlabel("token budget (each model's tokenizer; its last point: its full context)")
    ax.set_ylabel("MRR (95 % interval)")
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncols=1)
    ax.set_title(
        title + "\nringed: the smallest budget within the full-length interval", fontsize=10
    )
    return fig


def draw(
    summary: dict[str, Any], frame: pd.DataFrame, palette: list[str], out: Path
) -> dict[str, Path]:
    """Both figures of every collection and labelset; returns {figure name: path}."""
    styles = figures.model_styles(palette)
    written: dict[str, Path] = {}
    (Path(out) / KIND).mkdir(parents=True, exist_ok=True)
    for collection, entry in summary.get("collections", {}).items():
        n_images = int(entry["images"])
        for labelset, by_model in entry["labelsets"].items():
            part = frame[(frame["collection"] == collection) & (frame["labelset"] == labelset)]
            queries = next(iter(by_model.values()))["queries"]
            where = f"{collection}, {labelset} labels ({queries} queries, {n_images} images)"
            fig = tokens_figure(part, by_model, styles, f"{where}: query length in tokens")
            name = tokens_name(collection, labelset)
            written[name] = figures.save(fig, Path(out) / name)
            chance = chance_levels(n_images)["mrr"]
            fig = budgets_figure(by_model, styles, chance, f"{where}: MRR by token budget")
            name = budgets_name(collection, labelset)
            written[name] = figures.save(fig, Path(out) / name)
    return written


def _ci(m: dict[str, float] | None, metric: str) -> str:
    if m is None:
        return "–"
    digits = 1 if metric in LOWER_IS_BETTER else 3
    return f"{m['value']:.{digits}f} [{m['low']:.{digits}f}, {m['high']:.{digits}f}]"


def _table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def _link(figures_: dict[str, Path], name: str, caption: str, where: Path) -> str:
    path = figures_.get(name)
    if path is None:
        return ""
    return f"![{caption}]({Path(os.path.relpath(path, where)).as_posix()})\n\n"


def _metric_name(metric: str) -> str:
    names = {"mrr": "MRR", "median_rank": "median rank", "mean_rank": "mean rank"}
    return names.get(metric, metric.upper())


def section(summary: dict[str, Any], figures_: dict[str, Path], where: Path) -> str:
    """The report's section: how to read it, then per collection and labelset the split
    metrics, MRR per budget, and both figures."""
    if not summary.get("collections"):
        return ""
    out = [
        "## Query length: what truncation costs\n\n",
        "Text encoders read a fixed number of tokens (the *context*: CLIP 77, SigLIP 64, "
        "BLIP-2 35); the rest of a longer query is cut off. Tokens are counted by each "
        "model's own tokenizer, special tokens included. *Split*: every metric of the "
        "queries the model truncated and of those it did not, each with its count and "
        "95 % interval; the two parts hold different queries (the long ones are also the "
        "detailed ones), so their difference is not the cost of the cut alone. *Budgets*: "
        "the same queries cut to each token budget by the model's tokenizer (the end token "
        "kept last) and ranked again against the same image embeddings; a model's last "
        "budget is its context, the full-length queries. *Effective*: the smallest budget "
        "whose MRR is not below the lower end of the full-length MRR's interval: the tokens "
        "beyond it add nothing the queries can show. All metrics of both analyses are in "
        f"`metrics/{SUMMARY}`, the per-query token counts in `metrics/{QUERIES}`.\n\n",
    ]
    for collection, entry in summary["collections"].items():
        for labelset, by_model in entry["labelsets"].items():
            out.append(f"### `{collection}`, {labelset} labels: query length\n\n")
            rows = []
            metrics: list[str] = []
            for model, e in by_model.items():
                split = e["split"]
                metrics = metrics or list(split["all"]["metrics"])
                for part in ("truncated", "untruncated"):
                    got = split[part]
                    cells = [_ci((got["metrics"] or {}).get(m), m) for m in metrics]
                    t = e["tokens"]
                    rows.append(
                        [
                            model,
                            str(e["context"]),
                            f"{t['median']:.0f} / {t['max']:.0f}",
                            part,
                            str(got["queries"]),
                            *cells,
                        ]
                    )
            header = ["model", "context", "tokens median / max", "queries", "count"]
            out.append(_table(header + [_metric_name(m) for m in metrics], rows) + "\n")
            out.append(_link(figures_, tokens_name(collection, labelset), "query length", where))
            budgets = sorted({p["budget"] for e in by_model.values() for p in e["budgets"]})
            rows = []
            for model, e in by_model.items():
                at = {p["budget"]: p for p in e["budgets"]}
                cells = [
                    _ci({"value": at[b]["mrr"], "low": at[b]["low"], "high": at[b]["high"]}, "mrr")
                    if b in at
                    else "–"
                    for b in budgets
                ]
                rows.append([model, str(e["context"]), *cells, str(e["effective"])])
            header = ["model", "context", *[f"MRR @ {b}" for b in budgets], "effective"]
            out.append(_table(header, rows) + "\n")
            out.append(_link(figures_, budgets_name(collection, labelset), "MRR by budget", where))
    return "".join(out)
