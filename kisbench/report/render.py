"""Every figure and the report of an experiment, from the evaluate and fusion outputs.

Figures (``plots/figures/``): ``cumulative.png`` (all graphs), and per collection and
labelset ``pairs/C-L.png`` (the N x N grid of the top N models) and ``examples/C-L.png``
(the qualitative figure). The report (``reports/report.md``) links them.
"""

from __future__ import annotations

import json
import multiprocessing as mp
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from kisbench import layout
from kisbench.config import Collection, Config
from kisbench.config.evaluation import Evaluate, Render
from kisbench.data.collections import list_images, read_labels
from kisbench.errors import InputError
from kisbench.evaluation.evaluate import RankSet, load_rank_sets
from kisbench.evaluation.layout import CURVES, FUSION, METRICS, curve_name, fusion_path
from kisbench.evaluation.metrics import value
from kisbench.evaluation.pairwise import top_models
from kisbench.report import figures, qualitative
from kisbench.report import markdown as report
from kisbench.report.layout import FIGURES, REPORT, figure_name

# Columns of the stages' tables that hold names: never parsed as numbers.
TEXT = {c: str for c in ("collection", "labelset", "model", "model_a", "model_b", "members")}
TEXT |= {"base": str, "method": str}


@dataclass(frozen=True)
class Settings:
    """What the render stage takes of params.yaml (`kisbench.config`: defaults and checks)."""

    models: list[str]  # the experiment's models (params run.models)
    collections: list[str]
    palette: list[str]  # every model of params.yaml `models`: fixes the colours
    xmax: dict[str, int]  # per collection; a collection without one: no cut
    headline: str
    n_boot: int
    top_n: int
    examples: int
    example_ids: list[str]
    top_images: int
    workers: int  # processes drawing figures

    @classmethod
    def from_params(cls, p: Config) -> Settings:
        ev: Evaluate = p.evaluate
        rn: Render = p.render
        entries = {c: p.collections.get(c) or Collection() for c in p.run.collections}
        return cls(
            models=list(p.run.models),
            collections=list(p.run.collections),
            palette=list(p.models),
            xmax={c: e.xmax for c, e in entries.items() if e.xmax is not None},
            headline=ev.headline,
            n_boot=ev.bootstrap,
            top_n=ev.top_models,
            examples=rn.examples,
            example_ids=list(rn.example_ids),
            top_images=rn.top_images,
            workers=_usable_cpus() if rn.workers is None else rn.workers,
        )


def _usable_cpus() -> int:
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


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


@dataclass(frozen=True)
class GraphJob:
    """Everything needed to draw one collection and labelset's figures."""

    collection: str
    labelset: str
    ranks: dict[str, np.ndarray]  # the top models, best first, aligned by query
    values: dict[str, float]
    n_images: int
    fused: dict[tuple[str, str], dict[str, np.ndarray]]
    examples: list[qualitative.Example]
    images: dict[str, Path]


def _jobs(
    graphs: dict[tuple[str, str], dict[str, RankSet]], settings: Settings, fusion: Path
) -> list[GraphJob]:
    """Read and choose what every graph's figures show (the quick part, in this process)."""
    jobs = []
    image_paths: dict[str, dict[str, Path]] = {}
    for (collection, labelset), by_model in graphs.items():
        values = {m: value(s.ranks, settings.headline) for m, s in by_model.items()}
        best = top_models(values, settings.top_n, settings.headline)
        frame = rank_frame(by_model, best, f"{collection}/{labelset}")
        pairs = [(a, b) for i, a in enumerate(best) for b in best[i + 1 :]]
        path = fusion_path(collection, labelset, fusion)
        fused = fused_ranks(path, pairs, frame.index) if pairs else {}
        examples = []
        chosen = choose_examples(frame, settings)
        if chosen:
            if collection not in image_paths:
                ids, paths = list_images(layout.images_dir(collection))
                image_paths[collection] = dict(zip(ids, paths, strict=True))
            labels = read_labels(layout.labels_path(collection))
            texts = dict(zip(labels.ids, labels.texts[labelset], strict=True))
            tops = {
                m: dict(zip(by_model[m].query_ids, by_model[m].top_ids, strict=True)) for m in best
            }
            examples = [
                qualitative.Example(
                    query_id=q,
                    text=texts.get(q, "(label not found)"),
                    target_id=q,
                    ranks={m: int(frame.at[q, m]) for m in best},
                    top_ids={m: tops[m][q].split() for m in best},
                )
                for q in chosen
            ]
        jobs.append(
            GraphJob(
                collection,
                labelset,
                {m: frame[m].to_numpy() for m in best},
                values,
                next(iter(by_model.values())).n_images,
                fused,
                examples,
                image_paths.get(collection, {}),
            )
        )
    return jobs


def draw(job: GraphJob, settings: Settings, out: Path) -> dict[str, Path]:
    """One graph's pairwise grid and qualitative figure."""
    colors = figures.model_colors(settings.palette)
    written = {}
    if len(job.ranks) >= 2:
        fig = figures.pairwise_grid(
            job.ranks,
            job.n_images,
            settings.xmax.get(job.collection, job.n_images),
            colors,
            fused=job.fused,
            values=job.values,
            title=f"{job.collection}, {job.labelset} labels: top {len(job.ranks)} models by "
            f"{report.name(settings.headline)}",
        )
        name = figure_name("pairs", job.collection, job.labelset)
        # A large figure already: 100 dpi keeps it readable and quicker to draw.
        written[name] = figures.save(fig, out / name, dpi=100)
    if job.examples:
        fig = qualitative.examples_figure(
            job.examples,
            job.images,
            colors,
            top=settings.top_images,
            title=f"{job.collection}, {job.labelset} labels",
        )
        name = figure_name("examples", job.collection, job.labelset)
        written[name] = figures.save(fig, out / name)
    return written


# Set just before worker processes fork, so that they inherit the jobs: nothing but an
# index and the written paths cross between processes.
_PENDING: tuple[list[GraphJob], Settings, Path] | None = None


def _draw_pending(index: int) -> dict[str, Path]:
    if _PENDING is None:
        raise RuntimeError("no pending figures: call draw_all")
    jobs, settings, out = _PENDING
    return draw(jobs[index], settings, out)


def draw_all(jobs: list[GraphJob], settings: Settings, out: Path) -> dict[str, Path]:
    """Draw every graph's figures, in ``settings.workers`` forked processes where the
    platform forks (matplotlib holds the GIL, so threads would not help)."""
    global _PENDING
    written: dict[str, Path] = {}
    bar = tqdm(total=len(jobs), desc="figures", unit="graph")
    workers = min(settings.workers, len(jobs))
    if workers <= 1 or "fork" not in mp.get_all_start_methods():
        for job in jobs:
            written |= draw(job, settings, out)
            bar.update()
    else:
        _PENDING = (jobs, settings, out)
        try:
            context = mp.get_context("fork")
            with ProcessPoolExecutor(workers, mp_context=context) as pool:
                for part in pool.map(_draw_pending, range(len(jobs))):
                    written |= part
                    bar.update()
        finally:
            _PENDING = None
    bar.close()
    return written


def render(
    settings: Settings,
    *,
    curves: Path = CURVES,
    metrics: Path = METRICS,
    fusion: Path = FUSION,
    out: Path = FIGURES,
    report_path: Path = REPORT,
) -> list[Path]:
    """Draw every figure into ``out`` and write the report; returns the files written."""
    sets = load_rank_sets(settings.models, settings.collections)
    graphs = _graphs(sets)
    for kind in ("pairs", "examples"):  # DVC outputs: present even when empty (one model)
        (out / kind).mkdir(parents=True, exist_ok=True)
    tables = {}
    for collection, labelset in graphs:
        path = curves / curve_name(collection, labelset)
        if not path.is_file():
            raise FileNotFoundError(f"{path} not found; run the evaluate stage first")
        tables[(collection, labelset)] = pd.read_csv(path)
    colors = figures.model_colors(settings.palette)
    fig = figures.cumulative_grid(tables, settings.xmax, colors)
    written = {"cumulative.png": figures.save(fig, out / "cumulative.png")}
    written |= draw_all(_jobs(graphs, settings, fusion), settings, out)

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
