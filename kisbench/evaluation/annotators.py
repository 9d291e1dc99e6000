"""Known-item search metrics split by who wrote the queries.

The labels file's optional ``annotator`` column says who labelled each image; a ranks table
(``query_id,target_id,labelset,rank,...``) is split by the annotator of its query and each
part gets the usual metrics with their intervals (``kisbench.evaluation.metrics.summarize``).
Rows without an annotator (the thesis' files have no such column) form their own group.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from kisbench.data.collections import read_labels
from kisbench.errors import InputError
from kisbench.evaluation.layout import RANKS_INFO, ranks_dir
from kisbench.evaluation.metrics import summarize

ANNOTATOR = "annotator"
UNATTRIBUTED = "(none)"
EVERYONE = "(all)"


def read_annotators(labels_path: Path) -> dict[str, str]:
    """Labelled image id -> annotator (``UNATTRIBUTED`` where the row names none)."""
    labels = read_labels(labels_path)  # validates the file, with its own clear errors
    table = pd.read_csv(labels_path, dtype=str, keep_default_na=False, encoding="utf-8-sig")
    table.columns = [c.strip() for c in table.columns]
    table = table[table["ID"].str.strip() != ""]
    names = table[ANNOTATOR] if ANNOTATOR in table else pd.Series("", index=table.index)
    found = dict(zip(table["ID"].str.strip(), names.str.strip(), strict=True))
    return {i: found.get(i) or UNATTRIBUTED for i in labels.ids}


def metrics_by_annotator(
    ranks: pd.DataFrame,
    annotators: dict[str, str],
    *,
    n_images: int,
    source: str = "ranks",
    n_boot: int = 1000,
    seed: int = 0,
) -> pd.DataFrame:
    """Metrics of all queries and of each annotator's: a long table with columns
    ``annotator, queries, metric, value, low, high`` (``EVERYONE`` first). ``n_images``:
    the collection size (a rank above it is a target never found)."""
    query_ids = ranks["query_id"].astype(str)
    unknown = sorted(set(query_ids) - set(annotators))
    if unknown:
        shown = ", ".join(repr(u) for u in unknown[:5])
        raise InputError(
            f"{source}: {len(unknown)} query id(s) are not in the labels file ({shown}); "
            "the ranks are older than the labels: run `dvc repro` first"
        )
    who = query_ids.map(annotators)
    groups = [(EVERYONE, ranks["rank"])]
    groups += [(name, ranks["rank"][who == name]) for name in sorted(who.unique())]
    rows = []
    for name, part in groups:
        summary = summarize(part.to_numpy(), n_images, n_boot=n_boot, seed=seed)
        for metric, m in summary.items():
            rows.append({ANNOTATOR: name, "queries": len(part), "metric": metric, **m})
    return pd.DataFrame(rows, columns=[ANNOTATOR, "queries", "metric", "value", "low", "high"])


def annotator_report(
    models: list[str],
    collection: str,
    labels_path: Path,
    *,
    n_boot: int = 1000,
    seed: int = 0,
) -> pd.DataFrame:
    """``metrics_by_annotator`` of every labelset's ranks of each model on one collection,
    with ``model, collection, labelset`` columns in front."""
    annotators = read_annotators(labels_path)
    parts = []
    for model in models:
        folder = ranks_dir(model, collection)
        tables = sorted(folder.glob("*.csv")) if folder.is_dir() else []
        if not tables:
            raise InputError(f"no ranks tables in {folder}: run its rank stage (dvc repro) first")
        n_images = int(json.loads((folder / RANKS_INFO).read_text(encoding="utf-8"))["images"])
        for path in tables:
            ranks = pd.read_csv(path, dtype={"query_id": str, "target_id": str})
            part = metrics_by_annotator(
                ranks, annotators, n_images=n_images, source=str(path), n_boot=n_boot, seed=seed
            )
            part.insert(0, "labelset", path.stem)
            part.insert(0, "collection", collection)
            part.insert(0, "model", model)
            parts.append(part)
    return pd.concat(parts, ignore_index=True)
