"""The experiment report: one Markdown file a user reads instead of digging in JSON.

Only formatting: every number comes from the evaluate and fusion stages' tables.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from kisbench import files
from kisbench.evaluation.metrics import LOWER_IS_BETTER, RECALL_KS, chance_levels
from kisbench.report.layout import figure_name

NAMES = {"mrr": "MRR", "median_rank": "median rank", "mean_rank": "mean rank"}
NAMES |= {f"r@{k}": f"R@{k}" for k in RECALL_KS}
COLUMNS = ["mrr", *[f"r@{k}" for k in RECALL_KS], "median_rank", "mean_rank"]


def name(metric: str) -> str:
    return NAMES.get(metric, metric)


def num(value: float, metric: str = "mrr") -> str:
    if pd.isna(value):
        return "n/a"
    return f"{value:.1f}" if metric in LOWER_IS_BETTER else f"{value:.3f}"


def pval(p: float) -> str:
    return "< 0.001" if p < 0.001 else f"{p:.3f}"


def ci(value: float, low: float, high: float, metric: str) -> str:
    return f"{num(value, metric)} [{num(low, metric)}, {num(high, metric)}]"


def table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


@dataclass
class Inputs:
    """Everything the report shows; tables as the stages wrote them."""

    details: dict[str, Any]  # metrics/kis_details.json
    pairs: pd.DataFrame  # metrics/pairs.csv
    gains: pd.DataFrame  # metrics/gains.csv
    fusion: pd.DataFrame  # metrics/fusion.csv (may be empty)
    headline: str = "mrr"
    n_boot: int = 1000
    top_n: int = 5
    figures: dict[str, Path] = field(default_factory=dict)  # file name -> path


def _figure(inputs: Inputs, key: str, caption: str, where: Path) -> str:
    path = inputs.figures.get(key)
    if path is None:
        return ""
    return f"![{caption}]({Path(os.path.relpath(path, where)).as_posix()})\n\n"


def _ranking(entries: dict[str, Any], headline: str, chance: float) -> tuple[str, list[str]]:
    lower = headline in LOWER_IS_BETTER
    order = sorted(entries, key=lambda m: entries[m][headline]["value"] * (1 if lower else -1))
    rows = []
    for i, model in enumerate(order, 1):
        e = entries[model]
        h = e[headline]
        # Not better than chance: the interval reaches the chance value (or beyond it).
        flag = " (chance level)" if (h["high"] >= chance if lower else h["low"] <= chance) else ""
        rows.append(
            [str(i), f"{model}{flag}", ci(h["value"], h["low"], h["high"], headline)]
            + [num(e[m]["value"], m) for m in COLUMNS if m != headline]
            + [str(e.get("truncated_queries") or 0)]
        )
    header = ["#", "model", f"{name(headline)} [95% CI]"]
    header += [name(m) for m in COLUMNS if m != headline] + ["truncated queries"]
    return table(header, rows), order


def _pairs(pairs: pd.DataFrame, headline: str) -> str:
    rows = [
        [
            r.model_a,
            r.model_b,
            num(r.value_a, headline),
            num(r.value_b, headline),
            ci(r.diff, r.diff_low, r.diff_high, headline),
            pval(r.p_bootstrap),
            pval(r.q_bootstrap),
            f"{r.a_better} / {r.b_better} / {r.same_rank}",
            pval(r.p_wilcoxon),
            pval(r.q_wilcoxon),
            num(r.oracle, headline),
        ]
        for r in pairs.itertuples(index=False)
    ]
    h = name(headline)
    header = [
        "A",
        "B",
        f"{h} A",
        f"{h} B",
        "A - B [95% CI]",
        "p (paired bootstrap)",
        "q",
        "A better / B better / same",
        "p (Wilcoxon)",
        "q",
        f"oracle {h}",
    ]
    return table(header, rows)


def _fusion(fusion: pd.DataFrame, top: list[str], headline: str) -> str:
    single = fusion[fusion["method"] == "single"].set_index("members")[headline]
    methods = [m for m in dict.fromkeys(fusion["method"]) if m not in ("single", "oracle")]
    groups = [g for g in dict.fromkeys(fusion["members"]) if g not in single.index]
    everyone = len(single)
    lower = headline in LOWER_IS_BETTER
    rows = []
    for group in groups:
        members = group.split("+")
        if len(members) < everyone and not all(m in top for m in members):
            continue
        part = fusion[fusion["members"] == group].set_index("method")
        best = single[members].min() if lower else single[members].max()
        label = f"all {everyone} models" if len(members) == everyone > 2 else " + ".join(members)
        row = [label, num(best, headline), num(part.at["oracle", headline], headline)]
        for method in methods:
            r = part.loc[method]
            row.append(ci(r[headline], r[f"{headline}_low"], r[f"{headline}_high"], headline))
        rows.append(row)
    h = name(headline)
    header = ["models", f"best alone {h}", f"oracle {h}"]
    header += [f"{m} fusion {h} [95% CI]" for m in methods]
    return table(header, rows)


def _gains(gains: pd.DataFrame, headline: str) -> str:
    rows = [
        [
            r.model,
            num(r.value_base, headline),
            num(r.value, headline),
            ci(r.gain, r.gain_low, r.gain_high, headline),
            pval(r.p_bootstrap),
        ]
        for r in gains.itertuples(index=False)
    ]
    first = gains.iloc[0]
    h = name(headline)
    header = ["model", f"{h} {first.base}", f"{h} {first.labelset}", "gain [95% CI]", "p"]
    return table(header, rows)


def build(inputs: Inputs, where: Path) -> str:
    """The report's Markdown; figure links are relative to the folder ``where``."""
    h = name(inputs.headline)
    out = [
        "# Known-item search report\n\n",
        "Generated by the pipeline's `render` stage from `metrics/` and `data/fusion/`; "
        "do not edit. ",
        f"Headline metric: **{h}**. Intervals are 95% percentile bootstrap intervals over "
        f"queries ({inputs.n_boot} resamples, seeded). Paired tests resample the same "
        "queries for both sides; q-values are Benjamini-Hochberg adjusted over the pairs of "
        "one graph. The Wilcoxon signed-rank test compares per-query ranks (deep ranks "
        f"weigh in), the bootstrap compares {h} (dominated by the top ranks). A target tied "
        "with other images counts as ranked behind them.\n\n",
        "The *oracle* (complementary) result takes, per query, the best rank among the "
        "models: an upper bound no system reaches. The *fusion* results are real "
        "retrievers over the whole collection: reciprocal rank fusion (rrf) and the sum of "
        "each model's per-query z-scored (zscore) or min-max rescaled (minmax) scores.\n\n",
        _figure(inputs, "cumulative.png", "cumulative curves", where),
    ]
    for collection, by_labelset in inputs.details.items():
        first = next(iter(next(iter(by_labelset.values())).values()))
        n = int(first["images"])
        chance = chance_levels(n)
        out.append(f"## Collection `{collection}`: {n} images\n\n")
        out.append(
            f"Chance level (a random ranking of {n} images): MRR {chance['mrr']:.3g}, "
            + ", ".join(f"R@{k} {chance[f'r@{k}']:.3g}" for k in RECALL_KS)
            + f", median rank {chance['median_rank']:.1f}. "
            f"Models marked (chance level) are not better than that: their {h} interval "
            "reaches the chance value.\n\n"
        )
        for labelset, entries in by_labelset.items():
            queries = next(iter(entries.values()))["queries"]
            out.append(f"### `{collection}`, {labelset} labels ({queries} queries)\n\n")
            text, order = _ranking(entries, inputs.headline, chance[inputs.headline])
            out.append(text + "\n")
            top = order[: inputs.top_n]
            pairs = inputs.pairs
            pairs = pairs[(pairs["collection"] == collection) & (pairs["labelset"] == labelset)]
            if len(pairs):
                out.append(f"#### Pairs of the top {len(top)} models\n\n")
                out.append(_pairs(pairs, inputs.headline) + "\n")
                out.append(
                    "Above the diagonal: per-query ranks of two models (log-log; on the "
                    "diagonal both give the same rank). Below: their cumulative curves, the "
                    "oracle and the fused retrievers.\n\n"
                )
                name_ = figure_name("pairs", collection, labelset)
                out.append(_figure(inputs, name_, "pairwise grid", where))
            fusion = inputs.fusion
            if len(fusion):
                fusion = fusion[
                    (fusion["collection"] == collection) & (fusion["labelset"] == labelset)
                ]
            if len(fusion) and (fusion["method"] != "single").any() and len(entries) > 1:
                out.append("#### Fusion\n\n")
                out.append(_fusion(fusion, top, inputs.headline) + "\n")
                out.append("Every pair of the experiment's models is in `metrics/fusion.csv`.\n\n")
            name_ = figure_name("examples", collection, labelset)
            if name_ in inputs.figures:
                out.append("#### Examples: queries where two models disagree most\n\n")
                out.append(_figure(inputs, name_, "examples", where))
        gains = inputs.gains
        gains = gains[gains["collection"] == collection] if len(gains) else gains
        for labelset, part in gains.groupby("labelset", sort=False) if len(gains) else []:
            base = part.iloc[0].base
            out.append(f"### `{collection}`: {labelset} over {base} labels\n\n")
            out.append(
                f"Paired by target image (the same image described two ways): gain = {h} "
                f"with {labelset} labels minus {h} with {base} labels.\n\n"
            )
            out.append(_gains(part, inputs.headline) + "\n")
    return "".join(out)


def write(inputs: Inputs, path: Path) -> Path:
    """Write the report atomically (temp file + rename)."""
    files.write_text(path, build(inputs, path.parent))
    return path
