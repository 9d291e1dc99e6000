"""The query-length study (docs/evaluation.md#query-length): what truncation costs.

Two analyses per model, collection and labelset:

- the truncation audit: the queries' token counts (the model's own tokenizer, special tokens
  included, uncut; the embed-queries stage records them) against the model's text context,
  and every metric of the plain ranks split into the queries the model truncated and those
  it did not, each part with its count and 95 % intervals;
- the effective length: the queries cut to each token budget (the embed-budgets stage),
  ranked again against the same image embeddings; MRR with its interval per budget, and the
  smallest budget whose MRR is not below the lower end of the full-length MRR's interval
  (the full length is the budget equal to the context, so it always qualifies).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from tqdm import tqdm

from kisbench import layout
from kisbench.config.length import model_budgets
from kisbench.data import store
from kisbench.data.collections import read_labels
from kisbench.data.duplicates import load_equivalents
from kisbench.errors import InputError
from kisbench.evaluation.evaluate import load_rank_sets
from kisbench.evaluation.metrics import interval, summarize, value
from kisbench.evaluation.ranking import on_device, rank_table

QUERY_COLUMNS = [
    "collection",
    "labelset",
    "model",
    "query_id",
    "tokens",
    "context",
    "truncated",
    "rank",
]
PARTS = ("truncated", "untruncated")


def split_metrics(
    ranks: np.ndarray, truncated: np.ndarray, n_images: int, *, n_boot: int, seed: int
) -> dict[str, Any]:
    """Every metric of all queries, of the truncated and of the untruncated ones, with
    their intervals (``metrics.summarize``) and counts; an empty part has ``metrics`` None."""
    ranks = np.asarray(ranks)
    truncated = np.asarray(truncated, dtype=bool)
    if ranks.shape != truncated.shape:
        raise ValueError("one truncation flag per rank")
    out: dict[str, Any] = {}
    for part, mask in (
        ("all", np.ones_like(truncated)),
        ("truncated", truncated),
        ("untruncated", ~truncated),
    ):
        n = int(mask.sum())
        metrics = summarize(ranks[mask], n_images, n_boot=n_boot, seed=seed) if n else None
        out[part] = {"queries": n, "metrics": metrics}
    return out


def effective_budget(points: Sequence[dict[str, Any]]) -> int:
    """The smallest budget whose MRR is at least the lower end of the full-length MRR's
    interval; ``points`` ascending by budget, the full length (the context) last. A budget
    above the interval has lost nothing either, so it counts as within."""
    if not points:
        raise ValueError("no budgets")
    budgets = [p["budget"] for p in points]
    if budgets != sorted(budgets):
        raise ValueError("points must be in ascending budget order")
    floor = points[-1]["low"]
    return next(p["budget"] for p in points if p["mrr"] >= floor)


def token_summary(tokens: np.ndarray) -> dict[str, float]:
    t = np.asarray(tokens, dtype=np.float64)
    return {
        "min": float(t.min()),
        "median": float(np.median(t)),
        "p90": float(np.quantile(t, 0.9)),
        "max": float(t.max()),
    }


def _query_side(model: str, collection: str, labelset: str) -> tuple[dict[str, Any], Path]:
    where = layout.queries_dir(model, collection) / labelset
    meta = store.load(where).meta
    if "token_counts" not in meta or "context_tokens" not in meta:
        raise InputError(
            f"{where}/meta.json has no token counts: it is older than the length study; "
            "run `dvc repro` (embed-queries) first"
        )
    return meta, where


def study(
    models: list[str],
    collections: list[str],
    budgets: Sequence[int],
    *,
    n_boot: int,
    seed: int,
    device: str = "cpu",
    budgets_root: Any = layout.budgets_dir,
) -> tuple[dict[str, Any], pd.DataFrame]:
    """Both analyses of every (collection, labelset, model): the summary (``length.json``)
    and the per-query table (``length_queries.csv``). ``budgets_root(model, collection)``:
    where the embed-budgets stage wrote that pair's sets."""
    sets = {(s.model, s.collection, s.labelset): s for s in load_rank_sets(models, collections)}
    summary: dict[str, Any] = {"budgets": list(budgets), "collections": {}}
    rows: list[pd.DataFrame] = []
    bar = tqdm(total=len(models) * len(collections), desc="length study")
    for collection in collections:
        labelsets = read_labels(layout.labels_path(collection)).labelsets
        equivalents, _ = load_equivalents(collection)
        per_labelset: dict[str, Any] = {ls: {} for ls in labelsets}
        n_images = None
        for model in models:
            images = store.load(layout.features_dir(model, collection))
            n_images = len(images.ids)
            vectors = on_device(images.vectors, device)
            for labelset in labelsets:
                plain = sets.get((model, collection, labelset))
                if plain is None:  # a labelset without queries has no ranks table
                    continue
                meta, where = _query_side(model, collection, labelset)
                context = int(meta["context_tokens"])
                ids = list(plain.query_ids)
                missing = [i for i in ids if i not in meta["token_counts"]]
                if missing:
                    raise InputError(
                        f"{where}: no token count for {len(missing)} ranked queries; the "
                        "ranks are older than the queries: run `dvc repro` first"
                    )
                tokens = np.array([meta["token_counts"][i] for i in ids], dtype=np.int64)
                cut_ids = set(meta.get("truncated_ids", []))
                truncated = np.array([i in cut_ids for i in ids], dtype=bool)
                entry: dict[str, Any] = {
                    "context": context,
                    "queries": len(ids),
                    "truncated": int(truncated.sum()),
                    "tokens": token_summary(tokens),
                    "split": split_metrics(
                        plain.ranks, truncated, plain.n_images, n_boot=n_boot, seed=seed
                    ),
                }
                points = []
                for budget in model_budgets(budgets, context):
                    cut = store.load(budgets_root(model, collection) / labelset / str(budget))
                    table = rank_table(
                        vectors,
                        images.ids,
                        cut.vectors,
                        list(cut.ids),
                        labelset,
                        top_k=0,
                        device=device,
                        layout=images.layout,
                        equivalents=equivalents,
                    )
                    ranks = table["rank"].to_numpy()
                    low, high = interval(ranks, "mrr", n_images, n_boot=n_boot, seed=seed)
                    points.append(
                        {
                            "budget": budget,
                            "cut": int(np.sum(tokens > budget)),
                            "mrr": value(ranks, "mrr", n_images),
                            "low": low,
                            "high": high,
                        }
                    )
                entry["budgets"] = points
                entry["effective"] = effective_budget(points)
                per_labelset[labelset][model] = entry
                rows.append(
                    pd.DataFrame(
                        {
                            "collection": collection,
                            "labelset": labelset,
                            "model": model,
                            "query_id": ids,
                            "tokens": tokens,
                            "context": context,
                            "truncated": truncated,
                            "rank": plain.ranks,
                        },
                        columns=QUERY_COLUMNS,
                    )
                )
            bar.update()
        per_labelset = {ls: entries for ls, entries in per_labelset.items() if entries}
        summary["collections"][collection] = {"images": n_images, "labelsets": per_labelset}
    bar.close()
    table = pd.concat(rows, ignore_index=True) if rows else pd.DataFrame(columns=QUERY_COLUMNS)
    return summary, table
