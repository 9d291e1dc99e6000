"""RESET: how well an embedding's image-image similarity agrees with human judgements.

Each RESET triplet is a query keyframe q and two candidates c1, c2; a participant saw the
candidates side by side (``option_one_path`` on the left) and said which one is more similar
to the query: ``choice`` from -2 (left, strongly) to +2 (right, strongly),
``simplified_choice`` -1 (left), 0 (indifferent), +1 (right). An extractor "prefers" the
candidate with the smaller cosine distance to the query. Everything here follows the
thesis' notebook (M3RT, ``overallJudgementConsistency.ipynb``):

- Variant 1: every non-indifferent judgement counts once; consistency is the share where the
  extractor's preferred side equals the participant's.
- Variant 2: triplets with at least ``min_judgements`` judgements (indifferent ones count);
  the humans' verdict is the sign of (share choosing c2 - share choosing c1); triplets with
  no majority are dropped; consistency is the share of triplets where the extractor agrees.
- Correlations (Pearson and Spearman, all judgements, indifferent included) of the
  participant's 5-point preference for c1 with d(q,c2) - d(q,c1), that difference divided
  by max(d(q,c1), d(q,c2)) (0/0 taken as 0), and divided by d(c1,c2) (0 replaced by 1e-5).

Ties in distance, ``ties`` policy: "left" is the thesis (its strict ``>`` gives a tie to the
left-hand option in variant 1 and to candidate1 in variant 2, where a triplet has no display
side); "exclude" drops tied judgements/triplets for that extractor; "half" counts a tie as
half an agreement (a fair coin's expectation). Ties are counted either way.

All extractors are scored on one common set of judgements: a judgement whose triplet lacks
a distance for any extractor (a keyframe without an embedding, an empty cell) is excluded
for every extractor and counted, as the thesis dropped its 16 sentinel rows for all.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from kisbench.data.store import VectorLayout, legacy_layout
from kisbench.reset.data import DISTANCE_SUFFIXES, PATH_COLUMNS, distance_columns, keyframe_id

# The thesis replaced d(c1,c2) = 0 by this before dividing by it.
ZERO_DISTANCE = 1e-5
NORMALISATIONS = ("raw", "max_norm", "c1c2_norm")


def unit_vectors(vectors: np.ndarray, layout: VectorLayout | None = None) -> np.ndarray:
    """(N, D) or multi-vector (N, Q, D) embeddings -> (N, D) float64 unit vectors.

    A multi-vector image (BLIP-2's Q-Former queries) becomes the mean of its Q vectors,
    re-normalised: one vector per image, so that image-image similarity is one cosine, as
    for every other model. Rows are re-normalised in float64 in any case (float16 storage
    leaves norms a little off 1). ``layout`` is the images' declared layout (their
    ``EmbeddingSet.layout``), checked against the array; without it, the shape implies it
    (the legacy rule).
    """
    v = np.asarray(vectors, dtype=np.float64)
    if v.ndim not in (2, 3):
        raise ValueError(f"embeddings must be (N, D) or (N, Q, D), got shape {v.shape}")
    if layout is None:
        layout = legacy_layout(v.ndim, "images")
    layout.check(v.shape, "images")
    if layout.several:
        v = v.mean(axis=1)
    norms = np.linalg.norm(v, axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(norms > 0, v / norms, np.nan)


def model_distances(
    triplets: pd.DataFrame,
    ids: Sequence[str],
    vectors: np.ndarray,
    layout: VectorLayout | None = None,
) -> tuple[pd.DataFrame, list[str]]:
    """Cosine distances (1 - cosine similarity) of every triplet under one model
    (``layout``: its images' declared layout, see :func:`unit_vectors`).

    Keyframes are matched by id (``keyframe_id`` of the triplet paths). A distance whose two
    keyframes both have an embedding is computed even if the triplet's third keyframe has
    none; the others are NaN, never a placeholder value. Returns the distances (index
    ``triplet_id``, columns DISTANCE_SUFFIXES) and the sorted keyframe paths without an
    embedding.
    """
    index = {image_id: row for row, image_id in enumerate(ids)}
    paths = pd.unique(triplets[list(PATH_COLUMNS)].to_numpy().ravel())
    missing = sorted(p for p in paths if keyframe_id(p) not in index)
    present = [p for p in paths if keyframe_id(p) in index]
    rows = np.array([index[keyframe_id(p)] for p in present], dtype=np.int64)
    # Only the RESET keyframes are read (in file order, for memory-mapped sets).
    order = np.argsort(rows)
    unit = np.empty((len(rows), np.asarray(vectors[:1]).shape[-1]))
    if len(rows):
        unit[order] = unit_vectors(vectors[rows[order]], layout)
    position = {p: i for i, p in enumerate(present)}

    def lookup(col: str) -> np.ndarray:
        return np.array([position.get(p, -1) for p in triplets[col]], dtype=np.int64)

    q, c1, c2 = (lookup(c) for c in PATH_COLUMNS)

    def cosine_distance(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        ok = (a >= 0) & (b >= 0)
        out = np.full(len(a), np.nan)
        out[ok] = 1.0 - np.einsum("nd,nd->n", unit[a[ok]], unit[b[ok]])
        return out

    pairs = ((q, c1), (q, c2), (c1, c2))  # the order of DISTANCE_SUFFIXES
    table = pd.DataFrame(
        {s: cosine_distance(a, b) for s, (a, b) in zip(DISTANCE_SUFFIXES, pairs, strict=True)},
        index=triplets.index,
    )
    return table, missing


def extend_triplets(triplets: pd.DataFrame, distances: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """The triplets table plus ``<model>_cosdist_*`` columns for every model (NaN where a
    keyframe has no embedding), the thesis' extended-file layout."""
    added = {}
    for model, table in distances.items():
        aligned = table.reindex(triplets.index)
        for suffix, col in zip(DISTANCE_SUFFIXES, distance_columns(model), strict=True):
            added[col] = aligned[suffix].to_numpy()
    return pd.concat([triplets, pd.DataFrame(added, index=triplets.index)], axis=1)


@dataclass
class ResetResult:
    """Everything the reset stage writes: counts, per-extractor scores, the consistency table."""

    counts: dict[str, Any]
    scores: dict[str, dict[str, Any]]  # extractor -> metrics
    table: pd.DataFrame  # one row per extractor, best variant-1 consistency first
    classes: list[str] = field(default_factory=list)

    def headline(self, **extra: Any) -> dict[str, Any]:
        """Small enough for `dvc exp show`: variant-1 consistency per extractor, the number
        of judgements it is over, and ``extra`` counts."""
        return {
            "judgements": self.counts["variant1_judgements"],
            **extra,
            "consistency_v1": {
                row.extractor: _num(row.consistency_v1) for row in self.table.itertuples()
            },
        }


def judgement_frame(
    judgements: pd.DataFrame,
    participants: pd.DataFrame,
    triplets: pd.DataFrame,
    extractors: Sequence[str],
    project: Sequence[str] = (),
) -> tuple[pd.DataFrame, dict[str, int]]:
    """Judgements joined with their triplet's class, display order and distances.

    Like the thesis' inner joins, judgements of users missing from participants.csv or of
    unknown triplets are dropped; unlike it, every drop is counted. A judgement whose left
    option is neither candidate is dropped (its display order is unknown), and one whose
    triplet lacks any extractor's distance is dropped for all extractors: counted as
    ``missing_keyframe`` when a ``project`` model lacks it (a keyframe without an
    embedding), else as ``missing_distance`` (an empty cell in the triplets file).
    """
    counts = {"judgements": len(judgements)}
    j = judgements[judgements["user_id"].isin(participants.index)]
    counts["unknown_user"] = counts["judgements"] - len(j)
    known = j["triplet_id"].isin(triplets.index)
    counts["unknown_triplet"] = int((~known).sum())
    j = j[known]
    cols = ["class", "candidate1_path", "candidate2_path"]
    dist_cols = [c for x in extractors for c in distance_columns(x)]
    frame = j.join(triplets[cols + dist_cols], on="triplet_id")
    one, two = frame["option_one_path"], frame["option_two_path"]
    c1, c2 = frame["candidate1_path"], frame["candidate2_path"]
    shown = ((one == c1) & (two == c2)) | ((one == c2) & (two == c1))
    counts["display_mismatch"] = int((~shown).sum())
    frame = frame[shown]
    model_cols = [c for x in extractors if x in project for c in distance_columns(x)]
    has_keyframes = frame[model_cols].notna().all(axis=1)
    counts["missing_keyframe"] = int((~has_keyframes).sum())
    complete = has_keyframes & frame[dist_cols].notna().all(axis=1)
    counts["missing_distance"] = int((has_keyframes & ~complete).sum())
    frame = frame[complete].copy()
    frame["candidate1_left"] = frame["option_one_path"] == frame["candidate1_path"]
    # Positive: the participant found candidate1 more similar (choice < 0 means left).
    frame["candidate1_preference"] = np.where(
        frame["candidate1_left"], -frame["choice"], frame["choice"]
    )
    counts["used"] = len(frame)
    counts["indifferent"] = int((frame["simplified_choice"] == 0).sum())
    counts["variant1_judgements"] = counts["used"] - counts["indifferent"]
    counts["choice_sign_mismatch"] = int(
        (np.sign(frame["choice"]) != frame["simplified_choice"]).sum()
    )
    return frame, counts


def agreement(
    first: np.ndarray, second: np.ndarray, human: np.ndarray, ties: str
) -> tuple[np.ndarray, int]:
    """Per item 1.0 if the extractor agrees with ``human`` (-1: first option, +1: second),
    0.0 if not; a tie in distance follows ``ties``. Returns the values kept and the tie count.

    The extractor picks the option with the smaller distance; on a tie, "left" picks the
    first option (the thesis: ``first > second`` decides for the second, else the first).
    """
    tie = first == second
    pick = np.where(first > second, 1, -1)
    agree = (pick == human).astype(np.float64)
    if ties == "half":
        agree[tie] = 0.5
    elif ties == "exclude":
        agree = agree[~tie]
    elif ties != "left":
        raise ValueError(f"unknown tie policy {ties!r}")
    return agree, int(tie.sum())


def variant1(frame: pd.DataFrame, extractor: str, ties: str) -> tuple[np.ndarray, int]:
    """Agreement per non-indifferent judgement, in display order (left/right)."""
    human = frame["simplified_choice"].to_numpy()
    keep = human != 0
    d1, d2, _ = (frame[c].to_numpy()[keep] for c in distance_columns(extractor))
    left_is_c1 = frame["candidate1_left"].to_numpy()[keep]
    left = np.where(left_is_c1, d1, d2)
    right = np.where(left_is_c1, d2, d1)
    return agreement(left, right, human[keep], ties)


def triplet_verdicts(frame: pd.DataFrame, min_judgements: int) -> pd.DataFrame:
    """Variant 2's human verdict per triplet: +1 (candidate2) or -1 (candidate1).

    Triplets with fewer than ``min_judgements`` judgements (indifferent ones count) and
    those where as many chose c1 as c2 are dropped, as in the thesis.
    """
    side_of_c1 = np.where(frame["candidate1_left"], -1, 1)
    chose_c1 = (frame["simplified_choice"] == side_of_c1).astype(int)
    chose_c2 = (frame["simplified_choice"] == -side_of_c1).astype(int)
    g = pd.DataFrame({"triplet_id": frame["triplet_id"], "c1": chose_c1, "c2": chose_c2}).groupby(
        "triplet_id"
    )
    per = g.agg(n=("c1", "size"), c1=("c1", "mean"), c2=("c2", "mean"))
    per = per[per["n"] >= min_judgements]
    verdict = np.sign(per["c2"] - per["c1"])
    return pd.DataFrame({"verdict": verdict[verdict != 0].astype(int)})


def variant2(
    verdicts: pd.DataFrame, triplets: pd.DataFrame, extractor: str, ties: str
) -> tuple[np.ndarray, int]:
    """Agreement per judged triplet, in candidate order (a tie under "left" goes to c1)."""
    d1, d2, _ = (triplets.loc[verdicts.index, c].to_numpy() for c in distance_columns(extractor))
    return agreement(d1, d2, verdicts["verdict"].to_numpy(), ties)


def distance_differences(frame: pd.DataFrame, extractor: str) -> dict[str, np.ndarray]:
    """The thesis' three distance differences; positive: candidate1 is nearer the query."""
    d1, d2, dc = (frame[c].to_numpy(dtype=np.float64) for c in distance_columns(extractor))
    diff = d2 - d1
    with np.errstate(invalid="ignore", divide="ignore"):
        max_norm = diff / np.maximum(d1, d2)
        c1c2_norm = diff / np.where(dc == 0, ZERO_DISTANCE, dc)
    # The thesis' fillna(0): 0/0 (both distances 0) counts as no difference.
    return {
        "raw": diff,
        "max_norm": np.nan_to_num(max_norm, nan=0.0, posinf=np.inf, neginf=-np.inf),
        "c1c2_norm": np.nan_to_num(c1c2_norm, nan=0.0, posinf=np.inf, neginf=-np.inf),
    }


def correlations(frame: pd.DataFrame, extractor: str) -> dict[str, dict[str, float]]:
    """Pearson and Spearman correlation of each distance difference with the 5-point
    preference for candidate1, over every judgement (indifferent ones included)."""
    pref = frame["candidate1_preference"].to_numpy(dtype=np.float64)
    out: dict[str, dict[str, float]] = {"pearson": {}, "spearman": {}}
    for name, x in distance_differences(frame, extractor).items():
        out["pearson"][name] = _corr(stats.pearsonr, x, pref)
        out["spearman"][name] = _corr(stats.spearmanr, x, pref)
    return out


def _corr(func: Any, x: np.ndarray, y: np.ndarray) -> float:
    """NaN where the correlation is undefined (fewer than 3 values, a constant input)."""
    if len(x) < 3 or not np.isfinite(x).all():
        return float("nan")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", stats.ConstantInputWarning)
        return float(func(x, y).statistic)


def mean_ci(values: np.ndarray, n_boot: int, seed: int, confidence: float = 0.95) -> dict:
    """Mean with a percentile bootstrap CI (seeded: the same data gives the same interval;
    every extractor with as many items is resampled with the same indices)."""
    values = np.asarray(values, dtype=np.float64)
    n = len(values)
    out = {"value": float(values.mean()) if n else float("nan"), "n": n}
    if n < 2 or n_boot < 1:
        return {**out, "low": float("nan"), "high": float("nan")}
    res = stats.bootstrap(
        (values,),
        np.mean,
        n_resamples=n_boot,
        confidence_level=confidence,
        method="percentile",
        rng=np.random.default_rng(seed),
        batch=max(1, min(n_boot, 2**24 // n)),
    )
    return {
        **out,
        "low": float(res.confidence_interval.low),
        "high": float(res.confidence_interval.high),
    }


def evaluate(
    judgements: pd.DataFrame,
    participants: pd.DataFrame,
    triplets: pd.DataFrame,
    extractors: Sequence[str],
    *,
    project: Sequence[str] = (),
    ties: str = "left",
    min_judgements: int = 2,
    n_boot: int = 1000,
    seed: int = 0,
) -> ResetResult:
    """Score every extractor (its ``<X>_cosdist_*`` columns in ``triplets``) against the
    judgements: both consistency variants with bootstrap CIs, per class, and correlations.
    ``project`` names the extractors that are this project's models (for the table)."""
    frame, counts = judgement_frame(judgements, participants, triplets, extractors, project)
    verdicts = triplet_verdicts(frame, min_judgements)
    counts["variant2_triplets"] = len(verdicts)
    triplet_class = triplets["class"]
    classes = sorted(frame["class"].dropna().unique())
    scores: dict[str, dict[str, Any]] = {}
    # Per-class subsets once, not once per extractor.
    by_class = {
        cls: (frame[frame["class"] == cls], verdicts[triplet_class.loc[verdicts.index] == cls])
        for cls in classes
    }
    for x in extractors:
        a1, ties1 = variant1(frame, x, ties)
        a2, ties2 = variant2(verdicts, triplets, x, ties)
        s: dict[str, Any] = {
            "source": "project" if x in project else "paper",
            "variant1": {**mean_ci(a1, n_boot, seed), "ties": ties1},
            "variant2": {**mean_ci(a2, n_boot, seed), "ties": ties2},
            **correlations(frame, x),
            "classes": {},
        }
        for cls, (fc, vc) in by_class.items():
            c1, t1 = variant1(fc, x, ties)
            c2, t2 = variant2(vc, triplets, x, ties)
            s["classes"][cls] = {
                "variant1": {**mean_ci(c1, n_boot, seed), "ties": t1},
                "variant2": {**mean_ci(c2, n_boot, seed), "ties": t2},
                **correlations(fc, x),
            }
        scores[x] = s
    return ResetResult(counts, scores, consistency_table(scores, classes), classes)


def consistency_table(scores: dict[str, dict[str, Any]], classes: Sequence[str]) -> pd.DataFrame:
    """One row per extractor, best variant-1 consistency first."""
    rows = []
    for x, s in scores.items():
        row: dict[str, Any] = {"extractor": x, "source": s["source"]}
        for v in ("variant1", "variant2"):
            tag = "v1" if v == "variant1" else "v2"
            m = s[v]
            row |= {
                f"consistency_{tag}": m["value"],
                f"{tag}_low": m["low"],
                f"{tag}_high": m["high"],
                f"{tag}_n": m["n"],
                f"{tag}_ties": m["ties"],
            }
        for cls in classes:
            for v, tag in (("variant1", "v1"), ("variant2", "v2")):
                row[f"{tag}_{cls}"] = s["classes"][cls][v]["value"]
        for corr in ("pearson", "spearman"):
            for name in NORMALISATIONS:
                row[f"{corr}_{name}"] = s[corr][name]
        rows.append(row)
    table = pd.DataFrame(rows)
    return table.sort_values("consistency_v1", ascending=False, kind="stable").reset_index(
        drop=True
    )


def _num(value: Any) -> Any:
    """JSON-safe number: floats to 6 significant digits (not decimals: a correlation of
    -3.54299e-05 keeps its digits), NaN as null."""
    if isinstance(value, float | np.floating):
        return None if np.isnan(value) else float(f"{float(value):.6g}")
    if isinstance(value, np.integer):
        return int(value)
    return value


def json_safe(data: Any) -> Any:
    if isinstance(data, dict):
        return {str(k): json_safe(v) for k, v in data.items()}
    if isinstance(data, list | tuple):
        return [json_safe(v) for v in data]
    return _num(data)
