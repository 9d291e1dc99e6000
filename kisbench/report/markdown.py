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
from kisbench.report import length as query_length
from kisbench.report import models as model_table
from kisbench.report import sentences as sentence_report
from kisbench.report import simulation
from kisbench.report.layout import figure_name

# The level of the chance marks, each way; the MRR interval's raise to chance uses the same
# one-sided test at 1 - its confidence (metrics.intervals), 0.05 for 95 % intervals.
ALPHA = 0.05

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
    n_boot: int = 10000
    top_n: int = 5
    figures: dict[str, Path] = field(default_factory=dict)  # file name -> path
    leaderboard: dict[str, Any] = field(default_factory=dict)  # metrics/leaderboard.json
    # per collection: skipped images and queries, duplicated and equivalent targets
    # (kisbench.report.render.collection_facts)
    collections: dict[str, Any] = field(default_factory=dict)
    # the simulate stage's summary and pairs (kisbench.report.simulation); empty: no section
    simulation: dict[str, Any] = field(default_factory=dict)
    # the length stage's summary (kisbench.report.length); empty: no section
    length: dict[str, Any] = field(default_factory=dict)
    # the sentences stage's summary (kisbench.report.sentences); empty: no section
    sentences: dict[str, Any] = field(default_factory=dict)
    # metrics/models.json's records (kisbench.report.models); empty: no section
    models: dict[str, Any] = field(default_factory=dict)


def _figure(inputs: Inputs, key: str, caption: str, where: Path) -> str:
    path = inputs.figures.get(key)
    if path is None:
        return ""
    return f"![{caption}]({Path(os.path.relpath(path, where)).as_posix()})\n\n"


def _chance_flag(entry: dict[str, Any], h: dict[str, float], chance: float, lower: bool) -> str:
    """ " (chance level)" or " (below chance)" by the exact test against random ranks where
    the evaluate stage wrote it (one-sided 5 % each way: "worse" is the condition under
    which the MRR interval is left below the chance level, so such an interval always comes
    with the mark); else by the interval reaching chance."""
    test = entry.get("vs_chance")
    if test is not None:
        if test["p_worse"] <= ALPHA:
            return " (below chance)"
        return " (chance level)" if test["p_better"] > ALPHA else ""
    below = h["low"] > chance if lower else h["high"] < chance
    level = h["high"] >= chance if lower else h["low"] <= chance
    return " (below chance)" if below else " (chance level)" if level else ""


def _ranking(entries: dict[str, Any], headline: str, chance: float) -> tuple[str, list[str]]:
    lower = headline in LOWER_IS_BETTER
    order = sorted(entries, key=lambda m: entries[m][headline]["value"] * (1 if lower else -1))
    rows = []
    for i, model in enumerate(order, 1):
        e = entries[model]
        h = e[headline]
        flag = _chance_flag(e, h, chance, lower)
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
            pval(r.p_paired),
            pval(r.q_paired),
            f"{r.a_better} / {r.b_better} / {r.same_rank}",
            pval(r.p_wilcoxon),
            pval(r.q_wilcoxon),
            f"{r.rank_biserial:+.2f}" + (" (disagrees)" if r.directions_disagree else ""),
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
        "p (paired test)",
        "q",
        "A better / B better / same",
        "p (Wilcoxon)",
        "q",
        "rank-biserial r (+: A)",
        f"per-query best of A, B: {h}",
    ]
    return table(header, rows)


def _fusion(fusion: pd.DataFrame, top: list[str], headline: str) -> tuple[str, int, int]:
    """The fusion table, and how many of its fused results beat the per-query best of their
    models (of how many)."""
    single = fusion[fusion["method"] == "single"].set_index("members")[headline]
    methods = [m for m in dict.fromkeys(fusion["method"]) if m not in ("single", "oracle")]
    groups = [g for g in dict.fromkeys(fusion["members"]) if g not in single.index]
    everyone = len(single)
    lower = headline in LOWER_IS_BETTER
    rows = []
    beaten = total = 0
    for group in groups:
        members = group.split("+")
        if len(members) < everyone and not all(m in top for m in members):
            continue
        part = fusion[fusion["members"] == group].set_index("method")
        best = single[members].min() if lower else single[members].max()
        label = f"all {everyone} models" if len(members) == everyone > 2 else " + ".join(members)
        oracle = part.at["oracle", headline]
        row = [label, num(best, headline), num(oracle, headline)]
        for method in methods:
            r = part.loc[method]
            above = r[headline] < oracle if lower else r[headline] > oracle
            beaten, total = beaten + bool(above), total + 1
            cell = ci(r[headline], r[f"{headline}_low"], r[f"{headline}_high"], headline)
            row.append(cell + (" (beats the per-query best)" if above else ""))
        rows.append(row)
    h = name(headline)
    header = ["models", f"best alone {h}", f"per-query best of the models {h}"]
    header += [f"{m} fusion {h} [95% CI]" for m in methods]
    return table(header, rows), beaten, total


def _leaderboard(board: dict[str, Any]) -> str:
    """One graph's leaderboard (``metrics/leaderboard.json``) as a table and a sentence."""
    metric = board["metric"]
    h = name(metric)
    rows = []
    for model, r in board["models"].items():
        detect = r.get("detectable_gap")
        need = r.get("queries_to_detect_gap")
        rows.append(
            [
                str(r["rank"]),
                f"{r['rank_low']}-{r['rank_high']}",
                model,
                num(r[metric], metric),
                num(r["gap_to_first"], metric) if "gap_to_first" in r else "",
                pval(r["q_vs_first"]) if "q_vs_first" in r else "",
                "yes" if r["tied_with_first"] else "no",
                num(detect, metric) if detect is not None else "",
                f"{need:,}" if need is not None else "",
            ]
        )
    header = ["rank", "rank 95% interval", "model", h, "gap to #1", "q vs #1", "tied with #1"]
    header += ["gap detectable (80% power)", "queries to detect this gap"]
    text = table(header, rows)
    detect = board.get("detectable_difference")
    n = board["queries"]
    sentence = (
        f"Rank interval: 2.5-97.5 % of each model's rank when the {n} queries are resampled "
        "and the whole ordering recomputed. *Tied with #1*: the paired test against "
        "#1 is not significant at 5 % after Benjamini-Hochberg over this graph's comparisons "
        "with #1. "
    )
    if detect is not None:
        sentence += (
            f"With these {n} queries, a difference in {h} between #1 and #2 below "
            f"{num(detect, metric)} is detected with less than 80 % power (simulated from "
            "their per-query differences). "
        )
    sentence += (
        f"Halving the intervals takes about {board['queries_to_halve_interval']:,} queries "
        "(they narrow as one over the square root of the queries)."
    )
    return text + "\n" + sentence + "\n\n"


def _gains(gains: pd.DataFrame, headline: str) -> str:
    rows = [
        [
            r.model,
            num(r.value_base, headline),
            num(r.value, headline),
            ci(r.gain, r.gain_low, r.gain_high, headline),
            pval(r.p_paired),
            pval(r.q_paired),
        ]
        for r in gains.itertuples(index=False)
    ]
    first = gains.iloc[0]
    h = name(headline)
    header = ["model", f"{h} {first.base}", f"{h} {first.labelset}", "gain [95% CI]", "p", "q"]
    return table(header, rows)


def _listing(items: list[str], limit: int = 30) -> str:
    more = f", ... and {len(items) - limit} more" if len(items) > limit else ""
    return ", ".join(items[:limit]) + more


def _facts(facts: dict[str, Any]) -> str:
    """The collection's skipped images and queries, duplicated and equivalent targets."""
    out = []
    skipped = facts.get("skipped_images") or {}
    if skipped:
        out.append(
            f"**Skipped images** ({len(skipped)}; `embed.on_unreadable: skip`): "
            + _listing([f"`{i}` ({reason})" for i, reason in skipped.items()])
            + ".\n\n"
        )
    lost = {ls: ids for ls, ids in (facts.get("skipped_queries") or {}).items() if ids}
    if lost:
        out.append(
            "**Queries whose target was skipped** (rank images + 1, never found; never "
            "shown as examples): "
            + "; ".join(f"{ls}: {_listing([f'`{i}`' for i in ids])}" for ls, ids in lost.items())
            + ".\n\n"
        )
    duplicated = facts.get("duplicated_targets")
    same = facts.get("equivalent_targets") or {}
    if duplicated is None:
        out.append("Duplicates: not known (the check stage's report is missing).\n\n")
    elif duplicated:
        kind = "exact or near" if facts.get("near_checked") else "exact"
        rows = []
        for i, partners in duplicated.items():
            declared = [p for p in partners if p in same.get(i, [])]
            note = "declared equivalent: not counted ahead" if declared else "counted ahead"
            if declared and len(declared) < len(partners):
                note = f"equivalent: {', '.join(declared)}; the others counted ahead"
            rows.append(f"`{i}` ({_listing(partners, 5)}; {note})")
        out.append(
            f"**Targets with a duplicate** ({len(duplicated)}, {kind}; under the pessimistic "
            "tie policy a duplicate the collection does not declare equivalent counts as "
            "ranked ahead of the target): " + _listing(rows) + ".\n\n"
        )
    else:
        kind = "exact or near" if facts.get("near_checked") else "exact"
        out.append(f"No target has a duplicate ({kind}) in the collection.\n\n")
    undeclared = {i: p for i, p in same.items() if not duplicated or i not in duplicated}
    if undeclared:
        out.append(
            f"**Targets with declared equivalents** ({len(undeclared)}, not counted ahead): "
            + _listing([f"`{i}` ({', '.join(p)})" for i, p in undeclared.items()])
            + ".\n\n"
        )
    return "".join(out)


def build(inputs: Inputs, where: Path) -> str:
    """The report's Markdown; figure links are relative to the folder ``where``."""
    h = name(inputs.headline)
    out = [
        "# Known-item search report\n\n",
        "Generated by the pipeline's `render` stage from `metrics/` and `data/fusion/`; "
        "do not edit. ",
        f"Headline metric: **{h}**. Intervals are 95 % intervals over queries: exact "
        "(Clopper-Pearson) for R@k; studentized bootstrap for MRR and mean rank "
        f"({inputs.n_boot:,} resamples, seeded), the MRR's upper end raised to the chance "
        "level unless the exact test against random rankings finds the model worse; order "
        "statistics for the median rank. Their coverage is measured in docs/evaluation.md "
        "(a model that finds a few targets at the very top and the rest at chance is "
        "covered less often than 95 %). A target tied with other images counts as ranked "
        "behind them; a target not in the ranking is never found: it adds 0 to MRR and is "
        "outside the top k for every k.\n\n",
        "Paired tests keep each query's two ranks together. The paired test of "
        f"{h} (dominated by the top ranks; for MRR and mean rank a sign-flip test, its "
        "interval a bootstrap-t widened to 0 where that test cannot reject, for R@k the "
        "Agresti-Min interval; docs/evaluation.md) compares the models, the Wilcoxon "
        "signed-rank test the per-query ranks (deep ranks weigh in); its rank-biserial r "
        "is its effect size and direction (+1: A ranks every differing query better, "
        f"-1: B does), and rows where it and the {h} difference favour different models "
        "say *disagrees*. q-values are "
        "Benjamini-Hochberg adjusted with one family per test: every pair of this "
        "experiment, over all collections and labelsets; the labelset gains form one more "
        "family.\n\n",
        "The *per-query best of the models* (the thesis' complementary or oracle result) "
        "takes, per query, the best rank among them: a bound for choosing one model per "
        "query, not for fusion, which can place a target above both models' ranks. The "
        "*fusion* results are real retrievers over the whole collection: reciprocal rank "
        "fusion (rrf) and the sum of each model's per-query z-scored (zscore) or min-max "
        "rescaled (minmax) scores.\n\n",
        _figure(inputs, "cumulative.png", "cumulative curves", where),
        model_table.section(inputs.models, list(inputs.details)),
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
            f"Models marked (chance level) are not distinguishable from a random ranking: "
            f"the {h}s of random ranks for as many queries (an exact test, simulated) are "
            f"as good in more than 5 % of cases and as bad in more than 5 %; (below chance): "
            "significantly worse than random (one-sided p <= 0.05). An MRR interval reaches "
            "up to the chance MRR unless the model is below chance (docs/evaluation.md).\n\n"
        )
        out.append(_facts(inputs.collections.get(collection, {})))
        for labelset, entries in by_labelset.items():
            queries = next(iter(entries.values()))["queries"]
            out.append(f"### `{collection}`, {labelset} labels ({queries} queries)\n\n")
            text, order = _ranking(entries, inputs.headline, chance[inputs.headline])
            out.append(text + "\n")
            board = inputs.leaderboard.get(collection, {}).get(labelset)
            if board is not None and len(board["models"]) > 1:
                out.append("#### Leaderboard: which ranks are real\n\n")
                out.append(_leaderboard(board))
            out.append(model_table.pareto_text(inputs.figures, collection, labelset, where))
            top = order[: inputs.top_n]
            pairs = inputs.pairs
            pairs = pairs[(pairs["collection"] == collection) & (pairs["labelset"] == labelset)]
            if len(pairs):
                out.append(f"#### Pairs of the top {len(top)} models\n\n")
                out.append(_pairs(pairs, inputs.headline) + "\n")
                out.append(
                    "Above the diagonal: per-query ranks of two models (log-log; on the "
                    "diagonal both give the same rank). Below: their cumulative curves, the "
                    "per-query best of the two and the fused retrievers.\n\n"
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
                text, beaten, total = _fusion(fusion, top, inputs.headline)
                out.append(text + "\n")
                if beaten:
                    out.append(
                        f"Fusion beats the per-query best of its models in {beaten} of the "
                        f"{total} results above: that best bounds choosing one model per "
                        "query, not combining them.\n\n"
                    )
                out.append("Every pair of the experiment's models is in `metrics/fusion.csv`.\n\n")
            name_ = figure_name("examples", collection, labelset)
            if name_ in inputs.figures:
                out.append("#### Examples: queries where two models disagree most\n\n")
                out.append(_figure(inputs, name_, "examples", where))
        gains = inputs.gains
        gains = gains[gains["collection"] == collection] if len(gains) else gains
        for labelset, part in gains.groupby("labelset", sort=False) if len(gains) else []:
            base = part.iloc[0].base
            paired = int(part.iloc[0].queries)
            out.append(f"### `{collection}`: {labelset} over {base} labels ({paired} queries)\n\n")
            out.append(
                f"Paired by target image (the same image described two ways): gain = {h} "
                f"with {labelset} labels minus {h} with {base} labels, over the {paired} "
                "targets that have a query of both.\n\n"
            )
            out.append(_gains(part, inputs.headline) + "\n")
    if inputs.simulation:
        sim = inputs.simulation
        out.append(simulation.section(sim["summary"], inputs.figures, where, sim["pairs"]))
    out.append(query_length.section(inputs.length, inputs.figures, where))
    out.append(sentence_report.section(inputs.sentences, inputs.figures, where))
    return "".join(out)


def write(inputs: Inputs, path: Path) -> Path:
    """Write the report atomically (temp file + rename)."""
    files.write_text(path, build(inputs, path.parent))
    return path
