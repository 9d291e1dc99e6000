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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from tqdm import tqdm

from kisbench import layout
from kisbench.config import Collection, Config
from kisbench.config.evaluation import Evaluate, Render
from kisbench.data.checks import report_path as check_report_path
from kisbench.data.collections import list_images, read_labels
from kisbench.data.duplicates import duplicate_partners
from kisbench.errors import InputError
from kisbench.evaluation.evaluate import CHANCE_COLUMN, RankSet, load_rank_sets
from kisbench.evaluation.evaluate import graphs as rank_graphs
from kisbench.evaluation.layout import (
    CURVES,
    FUSION,
    METRICS,
    RANKS_INFO,
    curve_name,
    fusion_path,
    ranks_dir,
)
from kisbench.evaluation.metrics import value
from kisbench.evaluation.pairwise import top_models
from kisbench.report import figures, qualitative, simulation
from kisbench.report import length as query_length
from kisbench.report import markdown as report
from kisbench.report import models as model_table
from kisbench.report import sentences as sentence_report
from kisbench.report.layout import FIGURES, MODELS, REPORT, figure_name

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
    entries: dict[str, dict[str, Any]] = field(default_factory=dict)  # params `models`
    licences: dict[str, str] = field(default_factory=dict)  # params `cards`, by model

    @classmethod
    def from_params(cls, p: Config) -> Settings:
        ev: Evaluate = p.evaluate
        rn: Render = p.render
        entries = {c: p.collections.get(c) or Collection() for c in p.run.collections}
        return cls(
            models=list(p.run.models),
            collections=list(p.run.collections),
            palette=list(p.models),
            entries={k: dict(v) for k, v in p.models.items()},
            licences=model_table.licences(p),
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


def collection_facts(models: list[str], collection: str) -> dict[str, Any]:
    """What the report states of a collection beside its metrics: the images the embed stage
    skipped and the queries whose target is one of them (the rank stages' info.json), the
    targets that have an exact or near duplicate (the check stage's report, when it ran)
    and the groups of equivalent images the rank stage was given."""
    skipped_images: dict[str, str] = {}
    skipped_targets: dict[str, str] = {}
    equivalents: list[list[str]] = []
    for model in models:
        path = ranks_dir(model, collection) / RANKS_INFO
        if path.is_file():
            info = json.loads(path.read_text(encoding="utf-8"))
            skipped_images |= info.get("skipped_images", {})
            skipped_targets |= info.get("skipped_targets", {})
            equivalents = info.get("equivalents", equivalents)
    check = check_report_path(collection)
    found = json.loads(check.read_text(encoding="utf-8")) if check.is_file() else None
    labels = read_labels(layout.labels_path(collection))
    duplicated: dict[str, list[str]] | None = None
    if found is not None:
        groups = [*found.get("exact_duplicates", []), *(found.get("near_duplicates") or [])]
        partners = duplicate_partners(groups)
        duplicated = {i: partners[i] for i in labels.ids if i in partners}
    same = duplicate_partners(equivalents)
    return {
        "skipped_images": dict(sorted(skipped_images.items())),
        "skipped_queries": {
            labelset: [i for i in labels.queries(labelset) if i in skipped_targets]
            for labelset in labels.labelsets
        },
        "duplicated_targets": duplicated,  # None: the check stage's report is not there
        "near_checked": found is not None and found.get("near_duplicates") is not None,
        "equivalent_targets": {i: same[i] for i in labels.ids if i in same},
    }


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
    graphs: dict[tuple[str, str], dict[str, RankSet]],
    settings: Settings,
    fusion: Path,
    facts: dict[str, dict[str, Any]],
) -> list[GraphJob]:
    """Read and choose what every graph's figures show (the quick part, in this process).
    A query whose target the embed stage skipped is never an example: it has no image."""
    jobs = []
    image_paths: dict[str, dict[str, Path]] = {}
    for (collection, labelset), by_model in graphs.items():
        values = {m: value(s.ranks, settings.headline, s.n_images) for m, s in by_model.items()}
        best = top_models(values, settings.top_n, settings.headline)
        frame = rank_frame(by_model, best, f"{collection}/{labelset}")
        pairs = [(a, b) for i, a in enumerate(best) for b in best[i + 1 :]]
        path = fusion_path(collection, labelset, fusion)
        fused = fused_ranks(path, pairs, frame.index) if pairs else {}
        examples = []
        unreadable = facts.get(collection, {}).get("skipped_queries", {}).get(labelset, [])
        same = facts.get(collection, {}).get("equivalent_targets", {})
        chosen = choose_examples(frame.drop(index=unreadable, errors="ignore"), settings)
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
                    equivalents=tuple(same.get(q, ())),
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
    styles = figures.model_styles(settings.palette)
    written = {}
    queries = len(next(iter(job.ranks.values())))
    if len(job.ranks) >= 2:
        fig = figures.pairwise_grid(
            job.ranks,
            job.n_images,
            settings.xmax.get(job.collection, job.n_images),
            styles,
            fused=job.fused,
            values=job.values,
            title=f"{job.collection}, {job.labelset} labels ({queries} queries): top "
            f"{len(job.ranks)} models by {report.name(settings.headline)}",
        )
        name = figure_name("pairs", job.collection, job.labelset)
        # A large figure already: 100 dpi keeps it readable and quicker to draw.
        written[name] = figures.save(fig, out / name, dpi=100)
    if job.examples:
        fig = qualitative.examples_figure(
            job.examples,
            job.images,
            {m: s.color for m, s in styles.items()},
            top=settings.top_images,
            title=f"{job.collection}, {job.labelset} labels: {len(job.examples)} of {queries} "
            "queries",
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
    models_file: Path = MODELS,
) -> list[Path]:
    """Draw every figure into ``out``, write the models file and the report; returns the
    files written."""
    sets = load_rank_sets(settings.models, settings.collections)
    graphs = rank_graphs(sets)
    for kind in ("pairs", "examples", "pareto"):  # DVC outputs: present even when empty
        (out / kind).mkdir(parents=True, exist_ok=True)
    tables = {}
    for collection, labelset in graphs:
        path = curves / curve_name(collection, labelset)
        if not path.is_file():
            raise FileNotFoundError(f"{path} not found; run the evaluate stage first")
        # Its chance column is no model; the figure draws chance from N below.
        tables[(collection, labelset)] = pd.read_csv(path).drop(
            columns=[CHANCE_COLUMN], errors="ignore"
        )
    # The chance line's N: the collection's image count of the ranks' info.json.
    n_images = {g: next(iter(by_model.values())).n_images for g, by_model in graphs.items()}
    styles = figures.model_styles(settings.palette)
    queries = {g: len(next(iter(by_model.values())).ranks) for g, by_model in graphs.items()}
    fig = figures.cumulative_grid(tables, settings.xmax, styles, n_images, queries)
    written = {"cumulative.png": figures.save(fig, out / "cumulative.png")}
    facts = {c: collection_facts(settings.models, c) for c in settings.collections}
    written |= draw_all(_jobs(graphs, settings, fusion, facts), settings, out)
    sim_summary = simulation.load(metrics)  # the simulate stage's, when it ran
    written |= simulation.draw(sim_summary, settings.palette, out)
    length_summary, length_queries = query_length.load(metrics)  # the length stage's
    written |= query_length.draw(length_summary, length_queries, settings.palette, out)
    sentence_summary = sentence_report.load(metrics)  # the sentences stage's
    written |= sentence_report.draw(sentence_summary, out)

    fusion_table = metrics / "fusion.csv"
    board = metrics / "leaderboard.json"
    details = json.loads((metrics / "kis_details.json").read_text(encoding="utf-8"))
    leaderboard = json.loads(board.read_text(encoding="utf-8")) if board.is_file() else {}
    # The experiment's models (kisbench.report.models): their file and Pareto figures.
    models = model_table.model_records(
        settings.models, settings.collections, settings.entries, settings.licences
    )
    models_path = model_table.write_records(models, models_file)
    written |= model_table.draw(leaderboard, details, models, out)
    inputs = report.Inputs(
        details=details,
        pairs=_read_table(metrics / "pairs.csv"),
        gains=_read_table(metrics / "gains.csv"),
        fusion=_read_table(fusion_table) if fusion_table.is_file() else pd.DataFrame(),
        headline=settings.headline,
        n_boot=settings.n_boot,
        top_n=settings.top_n,
        figures=written,
        leaderboard=leaderboard,
        collections=facts,
        simulation={"summary": sim_summary, "pairs": _read_table(metrics / simulation.PAIRS)}
        if sim_summary
        else {},
        length=length_summary,
        sentences=sentence_summary,
        models=models,
    )
    return [*written.values(), models_path, report.write(inputs, report_path)]


def _read_table(path: Path) -> pd.DataFrame:
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found; run the evaluate stage first")
    return pd.read_csv(path, dtype=TEXT)
