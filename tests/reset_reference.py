"""An independent re-implementation of the thesis' notebook for the tests: plain Python,
row by row, reading the CSV files with the csv module, as the thesis code looped over rows."""

from __future__ import annotations

import csv
from collections import defaultdict
from pathlib import Path

import numpy as np
from scipy import stats

from tests.reset_fixture import PAPER, ResetFixture


def read_rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def reference_distances(triplet: dict[str, str], vectors: dict[str, np.ndarray]) -> list:
    """Like the thesis' extend_reset_csv.py: 1 - dot of the (pooled, unit) vectors."""
    keys = [
        triplet[c].rsplit(".", 1)[0] for c in ("target_path", "candidate1_path", "candidate2_path")
    ]
    if any(k not in vectors for k in keys):
        return [None, None, None]
    q, c1, c2 = (vectors[k] for k in keys)
    return [1 - float(q @ c1), 1 - float(q @ c2), 1 - float(c1 @ c2)]


def thesis_reference(
    fx: ResetFixture, models: list[str], ties: str, min_judgements: int = 2
) -> dict:
    """Per extractor: variant-1 agreements ("v1", one per non-indifferent judgement) and
    tie count, variant-2 agreements ("v2", one per triplet) and tie count, and the Pearson
    and Spearman correlations; "_used" is the number of judgements kept.

    The notebook's rules: inner joins with participants and triplets; the thesis dropped
    judgements with its 1.11 placeholder, here any judgement with a missing distance;
    variant 1 "better_for = +1 if left > right else -1"; variant 2 over triplets with at
    least ``min_judgements`` judgements, sign of the share choosing c2 minus the share
    choosing c1, model "+1 if d2 < d1 else -1"; correlations over all judgements.
    """
    users = {r["user_id"] for r in read_rows(fx.participants)}
    triplets = {r["triplet_id"]: r for r in read_rows(fx.triplets)}
    pooled = {}
    for model in models:
        ids, vecs = fx.embeddings[model]
        table = {}
        for image_id, v in zip(ids, vecs, strict=True):
            v = np.asarray(v, dtype=np.float64)
            v = v.mean(axis=0) if v.ndim == 2 else v
            table[image_id] = v / np.linalg.norm(v)
        pooled[model] = table
    names = [*PAPER, *models]
    dist = {}
    for tid, t in triplets.items():
        dist[tid] = {
            x: [
                float(t[f"{x}_cosdist_{s}"])
                for s in ("query_candidate1", "query_candidate2", "candidates")
            ]
            for x in PAPER
        }
        for model in models:
            dist[tid][model] = reference_distances(t, pooled[model])
    rows = []
    for j in read_rows(fx.judgements):
        if j["user_id"] not in users or j["triplet_id"] not in triplets:
            continue
        t = triplets[j["triplet_id"]]
        d = dist[j["triplet_id"]]
        if any(v is None for x in names for v in d[x]):
            continue
        rows.append(
            {"j": j, "t": t, "d": d, "c1_left": j["option_one_path"] == t["candidate1_path"]}
        )

    out = {
        x: {"v1": [], "v1_ties": 0, "v2": [], "v2_ties": 0, "x": defaultdict(list)} for x in names
    }
    for row in rows:
        simple = int(row["j"]["simplified_choice"])
        for x in names:
            d1, d2, dc = row["d"][x]
            # correlations use every judgement, indifferent ones included
            diff = d2 - d1
            out[x]["x"]["raw"].append(diff)
            m = max(d1, d2)
            out[x]["x"]["max_norm"].append(0.0 if m == 0 and diff == 0 else diff / m)
            out[x]["x"]["c1c2_norm"].append(diff / (dc if dc != 0 else 1e-5))
            if simple == 0:
                continue
            left, right = (d1, d2) if row["c1_left"] else (d2, d1)
            better = 1 if left > right else -1
            agree = 1.0 if better == simple else 0.0
            if left == right:
                out[x]["v1_ties"] += 1
                if ties == "exclude":
                    continue
                if ties == "half":
                    agree = 0.5
            out[x]["v1"].append(agree)
    prefs = [(-1 if r["c1_left"] else 1) * int(r["j"]["choice"]) for r in rows]

    by_triplet = defaultdict(list)
    for row in rows:
        by_triplet[row["j"]["triplet_id"]].append(row)
    for tid, group in by_triplet.items():
        if len(group) < min_judgements:
            continue
        c1 = sum(int(r["j"]["simplified_choice"]) == (-1 if r["c1_left"] else 1) for r in group)
        c2 = sum(int(r["j"]["simplified_choice"]) == (1 if r["c1_left"] else -1) for r in group)
        if c1 == c2:
            continue
        humans = 1 if c2 > c1 else -1
        for x in names:
            d1, d2, _ = dist[tid][x]
            better = 1 if d2 < d1 else -1
            agree = 1.0 if better == humans else 0.0
            if d1 == d2:
                out[x]["v2_ties"] += 1
                if ties == "exclude":
                    continue
                if ties == "half":
                    agree = 0.5
            out[x]["v2"].append(agree)
    for x in names:
        out[x]["pearson"] = {k: stats.pearsonr(v, prefs)[0] for k, v in out[x]["x"].items()}
        out[x]["spearman"] = {k: stats.spearmanr(v, prefs)[0] for k, v in out[x]["x"].items()}
    out["_used"] = len(rows)
    return out
