"""Every figure and the report of an experiment, from the evaluate and fusion outputs.

Figures (``plots/figures/``): ``cumulative.png`` (all graphs), and per collection and
labelset ``pairs/C-L.png`` (the N x N grid of the top N models) and ``examples/C-L.png``
(the qualitative figure). The report (``reports/report.md``) links them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from tqdm import tqdm

from kisbench import figures, layout, qualitative, report
from kisbench.collections import InputError, list_images, read_labels
from kisbench.evaluate import RankSet, load_rank_sets
from kisbench.metrics import value
from kisbench.pairwise import top_models

# Columns of the stages' tables that hold names: never parsed as numbers.
TEXT = {c: str for c in ("collection", "labelset", "model", "model_a", "model_b", "members")}
TEXT |= {"base": str, "method": str}


@dataclass(frozen=True)
class Settings:
    models: list[str]  # the experiment's models (params run.models)
    collections: list[str]
    palette: list[str]  # every model of params.yaml `models`: fixes the colours
    xmax: dict[str, int] = field(default_factory=dict)
    headline: str = "mrr"
    n_boot: int = 1000
    top_n: int = 5
    examples: int = 3
    example_ids: list[str] = field(default_factory=list)
    top_images: int = 5

    @classmethod
    def from_params(cls, p: dict[str, Any]) -> Settings:
        run, ev, rn = p["run"], p.get("evaluate") or {}, p.get("render") or {}
        return cls(
            models=list(run["models"]),
            collections=list(run["collections"]),
            palette=list(p["models"]),
            xmax={
                c: int((p["collections"].get(c) or {}).get("xmax", 500)) for c in run["collections"]
            },
            headline=ev.get("headline", "mrr"),
            n_boot=int(ev.get("bootstrap", 1000)),
            top_n=int(ev.get("top_models", 5)),
            examples=int(rn.get("examples", 3)),
            example_ids=[str(i) for i in rn.get("example_ids") or []],
            top_images=int(rn.get("top_images", 5)),
        )


def _graphs(sets: list[RankSet]) -> dict[tuple[str, str], dict[str, RankSet]]:
    graphs: dict[tuple[str, str], dict[str, RankSet]] = {}
    for s in sets:
        graphs.setdefault((s.collection, s.labelset), {})[s.model] = s
    return graphs


def rank_frame(by_model: dict[str, RankSet], models: list[str], where: str) -> pd.DataFrame:
    """Per-query ranks, one column per model, rows in the first model's query order."""
    frame = pd.concat([by_model[m].by_query for m in models], axis=1)
    if frame.isna().any().any():
        raise InputError(f"{where}: the models' rank tables hold different queries; re-rank")
    return frame.astype("int64")


def fused_ranks(
    path: Path, pairs: list[tuple[str, str]], query_ids: pd.Index
) -> dict[tuple[str, str], dict[str, np.ndarray]]:
    """Per pair, each fusion method's per-query ranks from the fusion stage's table
    (whose ``members`` column is ``a+b``, in the experiment's model order)."""
    if not path.is_file():
        return {}
    table = pd.read_csv(path, dtype=TEXT | {"query_id": str})
    table = table[~table["method"].isin(["single", "oracle"])]
    out: dict[tuple[str, str], dict[str, pd.Series]] = {}
    for a, b in pairs:
        part = table[table["members"].isin([f"{a}+{b}", f"{b}+{a}"])]
        found = {}
        for method, g in part.groupby("method", sort=False):
            ranks = g.set_index("query_id")["rank"].reindex(query_ids)
            if ranks.isna().any():
                raise InputError(f"{path}: {method} fusion lacks queries of the rank tables")
            found[method] = ranks.to_numpy(dtype="int64")
        out[(a, b)] = found
    return out


def choose_examples(frame: pd.DataFrame, settings: Settings) -> list[str]:
    """The query ids to show: ``example_ids`` from params where this graph has them, else
    where two models disagree most (with one model: the queries it ranks worst)."""
    if settings.example_ids:
        return [q for q in settings.example_ids if q in frame.index]
    if frame.shape[1] >= 2:
        return list(qualitative.disagreements(frame, settings.examples)["query_id"])
    worst = frame.iloc[:, 0].sort_values(ascending=False, kind="stable")
    return list(worst.index[: settings.examples])


def render(
    settings: Settings,
    *,
    curves: Path = layout.CURVES,
    metrics: Path = layout.METRICS,
    fusion: Path = layout.FUSION,
    out: Path = layout.FIGURES,
    report_path: Path = layout.REPORT,
) -> list[Path]:
    """Draw every figure into ``out`` and write the report; returns the files written."""
    sets = load_rank_sets(settings.models, settings.collections)
    graphs = _graphs(sets)
    for kind in ("pairs", "examples"):  # DVC outputs: present even when empty (one model)
        (out / kind).mkdir(parents=True, exist_ok=True)
    colors = figures.model_colors(settings.palette)
    written: dict[str, Path] = {}

    tables = {}
    for collection, labelset in graphs:
        path = curves / layout.curve_name(collection, labelset)
        if not path.is_file():
            raise FileNotFoundError(f"{path} not found; run the evaluate stage first")
        tables[(collection, labelset)] = pd.read_csv(path)
    fig = figures.cumulative_grid(tables, settings.xmax, colors)
    written["cumulative.png"] = figures.save(fig, out / "cumulative.png")

    image_paths: dict[str, dict[str, Path]] = {}
    for (collection, labelset), by_model in tqdm(graphs.items(), desc="figures", unit="graph"):
        where = f"{collection}/{labelset}"
        values = {m: value(s.ranks, settings.headline) for m, s in by_model.items()}
        best = top_models(values, settings.top_n, settings.headline)
        frame = rank_frame(by_model, best, where)
        n_images = next(iter(by_model.values())).n_images
        if len(best) >= 2:
            pairs = [(a, b) for i, a in enumerate(best) for b in best[i + 1 :]]
            fused = fused_ranks(
                layout.fusion_path(collection, labelset, fusion),
                pairs,
                frame.index,
            )
            fig = figures.pairwise_grid(
                {m: frame[m].to_numpy() for m in best},
                n_images,
                settings.xmax.get(collection, 500),
                colors,
                fused=fused,
                values=values,
                title=f"{collection}, {labelset} labels: top {len(best)} models by "
                f"{report.name(settings.headline)}",
            )
            name = layout.figure_name("pairs", collection, labelset)
            # A large figure already: 100 dpi keeps it readable and quicker to draw.
            written[name] = figures.save(fig, out / name, dpi=100)
        chosen = choose_examples(frame, settings)
        if chosen:
            if collection not in image_paths:
                ids, paths = list_images(layout.images_dir(collection))
                image_paths[collection] = dict(zip(ids, paths, strict=True))
            labels = read_labels(layout.labels_path(collection))
            texts = dict(zip(labels.ids, labels.texts[labelset], strict=True))
            rows = {
                m: dict(zip(by_model[m].query_ids, by_model[m].top_ids, strict=True)) for m in best
            }
            examples = [
                qualitative.Example(
                    query_id=q,
                    text=texts.get(q, "(label not found)"),
                    target_id=q,
                    ranks={m: int(frame.at[q, m]) for m in best},
                    top_ids={m: rows[m][q].split() for m in best},
                )
                for q in chosen
            ]
            fig = qualitative.examples_figure(
                examples,
                image_paths[collection],
                colors,
                top=settings.top_images,
                title=f"{collection}, {labelset} labels",
            )
            name = layout.figure_name("examples", collection, labelset)
            written[name] = figures.save(fig, out / name)

    fusion_table = metrics / "fusion.csv"
    inputs = report.Inputs(
        details=json.loads((metrics / "kis_details.json").read_text(encoding="utf-8")),
        pairs=_read_table(metrics / "pairs.csv"),
        gains=_read_table(metrics / "gains.csv"),
        fusion=_read_table(fusion_table) if fusion_table.is_file() else pd.DataFrame(),
        headline=settings.headline,
        n_boot=settings.n_boot,
        top_n=settings.top_n,
        figures=written,
    )
    return [*written.values(), report.write(inputs, report_path)]


def _read_table(path: Path) -> pd.DataFrame:
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found; run the evaluate stage first")
    return pd.read_csv(path, dtype=TEXT)
