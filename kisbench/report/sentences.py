"""Multi-sentence strategies and temporal aggregations in the figures and the report
(docs/evaluation.md, "Multi-sentence and temporal queries").

Figures ``plots/figures/sentences/C-L.png``: per collection and labelset, one row per model
and strategy, the paired difference of the headline metric, strategy minus truncate (the
label embedded whole), with its 95 % interval; right of zero the strategy is better for MRR
and R@k. The report's section: how to read it, then a table per graph.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from kisbench.evaluation.layout import METRICS  # noqa: E402
from kisbench.evaluation.metrics import LOWER_IS_BETTER, chance_levels  # noqa: E402
from kisbench.evaluation.sentences_compare import PAIRS, SUMMARY  # noqa: E402
from kisbench.report import figures  # noqa: E402
from kisbench.report.layout import figure_name  # noqa: E402

KIND = "sentences"
# one colour per strategy, the same in every figure (colour-blind safe: Okabe-Ito)
COLOURS = {
    "mean": "#0072B2",
    "score_mean": "#009E73",
    "score_min": "#D55E00",
    "score_product": "#CC79A7",
    "viret": "#E69F00",
    "somhunter": "#56B4E9",
}
WHAT = {
    "mean": "mean of the sentences' unit vectors",
    "score_mean": "mean of per-sentence cos",
    "score_min": "min of per-sentence cos",
    "score_product": "product of per-sentence (1 + cos)",
    "viret": "ViretTool segments",
    "somhunter": "somhunter apply_temporals",
}


def load(metrics: Path = METRICS) -> dict[str, Any]:
    """``metrics/sentences.json``, or nothing when the sentences stage has not run."""
    path = Path(metrics) / SUMMARY
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}


def _rows(by_model: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [(m, s, e) for m, by_s in by_model.items() for s, e in by_s.items()]


def draw(summary: dict[str, Any], out: Path) -> dict[str, Path]:
    """One figure per collection and labelset; returns {figure name: path}."""
    written: dict[str, Path] = {}
    (Path(out) / KIND).mkdir(parents=True, exist_ok=True)
    if not summary:
        return written
    metric = summary["metric"]
    for collection, by_labelset in summary.get("results", {}).items():
        for labelset, by_model in by_labelset.items():
            rows = _rows(by_model)
            fig, ax = plt.subplots(figsize=(7.5, 1.2 + 0.36 * len(rows)))
            for y, (_, strategy, e) in enumerate(rows):
                colour = COLOURS.get(strategy, "#000000")
                ax.errorbar(
                    e["diff"],
                    y,
                    xerr=[[e["diff"] - e["diff_low"]], [e["diff_high"] - e["diff"]]],
                    fmt="o",
                    color=colour,
                    capsize=3,
                    ms=5,
                )
                star = " *" if e["q_paired"] < 0.05 else ""
                ax.annotate(
                    f"n={e['queries']}{star}",
                    (1.0, y),
                    xycoords=("axes fraction", "data"),
                    xytext=(4, 0),
                    textcoords="offset points",
                    va="center",
                    fontsize=8,
                )
            ax.axvline(0, color="0.3", lw=1)
            ax.set_yticks(range(len(rows)))
            ax.set_yticklabels([f"{m} ~ {s}" for m, s, _ in rows], fontsize=8)
            ax.invert_yaxis()
            better = "left" if metric in LOWER_IS_BETTER else "right"
            ax.set_xlabel(
                f"{figures_metric(metric)}: strategy minus truncate, 95 % paired interval "
                f"({better} of 0: the strategy is better)",
                fontsize=8,
            )
            ax.set_title(
                f"{collection}, {labelset} labels: multi-sentence and temporal strategies "
                "against truncate",
                fontsize=9,
            )
            ax.grid(axis="x", alpha=0.3)
            fig.tight_layout()
            name = figure_name(KIND, collection, labelset)
            written[name] = figures.save(fig, Path(out) / name)
    return written


def figures_metric(metric: str) -> str:
    return metric.upper() if metric == "mrr" else metric.replace("_", " ")


def section(summary: dict[str, Any], figures_: dict[str, Path], where: Path) -> str:
    """The report's section; empty when the stage did not run or compared nothing."""
    if not summary or not summary.get("results"):
        return ""
    metric = summary["metric"]
    h = figures_metric(metric)
    out = [
        "## Multi-sentence and temporal queries\n\n",
        "Each strategy is ranked like a model and compared with *truncate*, the label "
        "embedded whole (cut at the model's context), on the same queries "
        "(docs/evaluation.md). Multi-sentence strategies rank the labels that are not "
        "temporal, split into sentences (a one-sentence label gets exactly truncate's rank; a"
        " labelset with no label of two sentences is left out): *mean* embeds each sentence "
        "and averages the unit vectors; *score_mean*, *score_min*, *score_product* combine "
        "the per-sentence scores (the product of 1 + cos); *mean* and *score_mean* rank alike"
        " for models with one vector per image. Temporal aggregations rank the temporal "
        "labels (`a >> b`) on a collection with a frames.csv: *viret* (ViretTool's segments "
        "of `temporal.window` frames) and *somhunter* (`apply_temporals`, a look-ahead of "
        "`temporal.lookahead` frames); truncate embeds such a label whole, `>>` and all. "
        f"*diff*: {h} of the strategy minus truncate's, paired bootstrap 95 % interval; "
        "*q*: Benjamini-Hochberg over every comparison of the experiment "
        f"(`metrics/{PAIRS}`); *better*: queries where the strategy / truncate ranks the "
        "target higher.\n\n",
    ]
    for collection, by_labelset in summary["results"].items():
        for labelset, by_model in by_labelset.items():
            out.append(f"### `{collection}`, {labelset} labels: strategies against truncate\n\n")
            n_images = next(iter(_rows(by_model)))[2]["images"]
            out.append(
                f"A random ranking of the {n_images} images has {h} "
                f"{chance_levels(n_images)[metric]:.3f}: values near it are chance level.\n\n"
            )
            header = ["model", "strategy", "queries", f"truncate {h}", f"strategy {h}"]
            header += ["diff [95 % CI]", "q", "better (strategy / truncate)"]
            lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
            for model, strategy, e in _rows(by_model):
                v = e[metric]
                cells = [
                    model,
                    f"{strategy} ({WHAT.get(strategy, strategy)})",
                    str(e["queries"]),
                    f"{e['truncate']:.3f}",
                    f"{v['value']:.3f} [{v['low']:.3f}, {v['high']:.3f}]",
                    f"{e['diff']:+.3f} [{e['diff_low']:+.3f}, {e['diff_high']:+.3f}]",
                    f"{e['q_paired']:.3g}",
                    f"{e['strategy_better']} / {e['truncate_better']}",
                ]
                lines.append("| " + " | ".join(cells) + " |")
            out.append("\n".join(lines) + "\n\n")
            name = figure_name(KIND, collection, labelset)
            path = figures_.get(name)
            if path is not None:
                rel = Path(os.path.relpath(path, where)).as_posix()
                out.append(f"![strategies against truncate]({rel})\n\n")
    return "".join(out)
