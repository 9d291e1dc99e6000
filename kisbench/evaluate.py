"""From ranks tables to metrics files and cumulative-curve tables."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from kisbench import layout
from kisbench.collections import InputError
from kisbench.metrics import cumulative_curve, summarize


@dataclass(frozen=True)
class RankSet:
    model: str
    collection: str
    labelset: str
    ranks: np.ndarray
    n_images: int
    truncated: int | None


def load_rank_sets(models: list[str], collections: list[str]) -> list[RankSet]:
    """Every (model, collection, labelset) ranks table of the experiment; all must exist."""
    out: list[RankSet] = []
    missing: list[str] = []
    for collection in collections:
        for model in models:
            folder = layout.ranks_dir(model, collection)
            tables = sorted(folder.glob("*.csv")) if folder.is_dir() else []
            if not tables:
                missing.append(str(folder))
                continue
            info = json.loads((folder / layout.RANKS_INFO).read_text(encoding="utf-8"))
            for path in tables:
                df = pd.read_csv(path, dtype={"query_id": str, "target_id": str})
                labelset = path.stem
                out.append(
                    RankSet(
                        model,
                        collection,
                        labelset,
                        df["rank"].to_numpy(),
                        int(info["images"]),
                        info["truncated"].get(labelset),
                    )
                )
    if missing:
        raise InputError(f"no ranks for: {', '.join(missing)}; run their rank stages first")
    return out


def evaluate(
    sets: list[RankSet], *, headline: str = "mrr", n_boot: int = 1000, seed: int = 0
) -> tuple[dict[str, Any], dict[str, Any], dict[tuple[str, str], pd.DataFrame]]:
    """Headline metrics, detailed metrics and cumulative curves of every rank set.

    Headline: ``{headline: {collection: {labelset: {model: value}}}}``, one number per
    model, collection and labelset, so that ``dvc exp show`` stays readable. Details hold
    every metric with its bootstrap CI. Curves: one wide table per (collection, labelset),
    column ``k`` plus one column per model.
    """
    head: dict[str, Any] = {}
    details: dict[str, Any] = {}
    curves: dict[tuple[str, str], dict[str, np.ndarray]] = {}
    for s in sets:
        summary = summarize(s.ranks, n_boot=n_boot, seed=seed)
        if headline not in summary:
            raise InputError(f"unknown headline metric {headline!r}; known: {', '.join(summary)}")
        head.setdefault(s.collection, {}).setdefault(s.labelset, {})[s.model] = round(
            summary[headline]["value"], 6
        )
        details.setdefault(s.collection, {}).setdefault(s.labelset, {})[s.model] = {
            "queries": len(s.ranks),
            "images": s.n_images,
            "truncated_queries": s.truncated,
            **{name: {k: round(v, 6) for k, v in m.items()} for name, m in summary.items()},
        }
        curves.setdefault((s.collection, s.labelset), {})[s.model] = cumulative_curve(
            s.ranks, s.n_images
        )
    tables = {}
    for key, by_model in curves.items():
        n = max(len(c) for c in by_model.values())
        table = pd.DataFrame({"k": np.arange(1, n + 1)})
        for model, curve in by_model.items():
            table[model] = np.round(curve, 6)
        tables[key] = table
    return {headline: head}, details, tables


def write_curves(tables: dict[tuple[str, str], pd.DataFrame], folder: Path) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for (collection, labelset), table in tables.items():
        path = folder / layout.curve_name(collection, labelset)
        table.to_csv(path, index=False)
        written.append(path)
    return written
