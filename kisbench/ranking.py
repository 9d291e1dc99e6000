"""Rank the target image of every query: one matrix product per chunk of images.

Tie policy (pessimistic): the rank of a target is 1 plus the number of *other* images
whose score is at least the target's score minus ``TIE_EPS``. An image that ties the
target, or beats it by float round-off only, counts as ranked ahead of it; a model never
gains from ties. The target is never compared with itself.

A target that is not in the collection gets rank ``n_images + 1`` and score NaN ("never
found"); the rank stage refuses such labels unless told otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

# float32 cosine scores of unit vectors carry round-off of a few 1e-7; differences below
# this are not a model's preference.
TIE_EPS = 1e-6
MISSING = -1


@dataclass(frozen=True)
class RankResult:
    ranks: np.ndarray  # (M,) int64, 1 = best
    scores: np.ndarray  # (M,) float32, the target's score
    top: np.ndarray  # (M, k) int64 image indices of the k best images, best first


def _tensor(a: np.ndarray, device: torch.device) -> torch.Tensor:
    """A float32 copy on ``device``; copying also detaches it from read-only memory maps."""
    return torch.from_numpy(np.array(a, dtype=np.float32)).to(device)


def _scores(queries: torch.Tensor, images: torch.Tensor) -> torch.Tensor:
    """(M, D) x (C, D) or (C, P, D) -> (M, C); a multi-vector image scores its best vector."""
    if images.ndim == 2:
        return queries @ images.T
    c, p, d = images.shape
    return (queries @ images.reshape(c * p, d).T).reshape(len(queries), c, p).amax(dim=2)


def _target_scores(
    queries: torch.Tensor, vecs: torch.Tensor, targets: torch.Tensor
) -> torch.Tensor:
    """Score of query m against its own target's vectors ``vecs[m]``; NaN where absent."""
    present = targets >= 0
    if vecs.ndim == 2:
        s = (queries * vecs).sum(-1)
    else:
        s = torch.einsum("md,mpd->mp", queries, vecs).amax(-1)
    return torch.where(present, s, torch.full_like(s, float("nan")))


def rank_targets(
    queries: np.ndarray,
    images: np.ndarray,
    targets: np.ndarray,
    *,
    top_k: int = 10,
    device: str = "cpu",
    chunk_bytes: int = 256 * 2**20,
) -> RankResult:
    """Rank ``images[targets[m]]`` for every query ``m``.

    ``queries``: (M, D); ``images``: (N, D) or (N, P, D), may be a memory map (read chunk by
    chunk); ``targets``: (M,) row indices into ``images``, ``MISSING`` (-1) if absent.
    Memory stays bounded by ``chunk_bytes`` for the score block, whatever N is.
    """
    n = len(images)
    m = len(queries)
    if queries.ndim != 2 or images.ndim not in (2, 3) or images.shape[-1] != queries.shape[1]:
        raise ValueError(f"shape mismatch: queries {queries.shape}, images {images.shape}")
    dev = torch.device(device)
    q = _tensor(queries, dev)
    t = torch.as_tensor(np.asarray(targets, dtype=np.int64), device=dev)
    if ((t < MISSING) | (t >= n)).any():
        raise ValueError("target index out of range")
    per_image = m * (images.shape[1] if images.ndim == 3 else 1) * 4
    chunk = max(1, min(n, chunk_bytes // max(per_image, 1)))

    # Target scores first, from the M target rows alone (not the N images).
    rows = np.asarray(targets, dtype=np.int64).clip(min=0)
    target_vecs = _tensor(images[rows], dev)
    s_t = _target_scores(q, target_vecs, t)
    ahead = torch.zeros(m, dtype=torch.int64, device=dev)
    k = min(top_k, n)
    best_s = torch.full((m, 0), -float("inf"), device=dev)
    best_i = torch.zeros((m, 0), dtype=torch.int64, device=dev)
    threshold = (s_t - TIE_EPS).unsqueeze(1)
    for start in range(0, n, chunk):
        block = _tensor(images[start : start + chunk], dev)
        s = _scores(q, block)
        cols = torch.arange(start, start + len(block), device=dev)
        not_target = cols.unsqueeze(0) != t.unsqueeze(1)
        ahead += ((s >= threshold) & not_target).sum(dim=1)
        if k:
            cand_s = torch.cat([best_s, s], dim=1)
            cand_i = torch.cat([best_i, cols.expand(m, -1)], dim=1)
            best_s, pos = cand_s.topk(min(k, cand_s.shape[1]), dim=1)
            best_i = cand_i.gather(1, pos)
    ranks = torch.where(t >= 0, ahead + 1, torch.full_like(ahead, n + 1))
    return RankResult(
        ranks=ranks.cpu().numpy(),
        scores=s_t.cpu().numpy().astype(np.float32),
        top=best_i.cpu().numpy(),
    )


RANK_COLUMNS = ["query_id", "target_id", "labelset", "rank", "score", "top_ids"]


def rank_table(
    images: np.ndarray,
    image_ids: list[str],
    queries: np.ndarray,
    target_ids: list[str],
    labelset: str,
    *,
    top_k: int = 10,
    device: str = "cpu",
) -> pd.DataFrame:
    """Rank every query's target and return the ranks table (one row per query).

    The query id is the target id: the thesis' labels have one query per image and set.
    ``top_ids`` lists the ``top_k`` best image ids, space-separated, best first.
    """
    index = {image_id: i for i, image_id in enumerate(image_ids)}
    targets = np.array([index.get(t, MISSING) for t in target_ids], dtype=np.int64)
    result = rank_targets(queries, images, targets, top_k=top_k, device=device)
    ids = np.asarray(image_ids, dtype=object)
    return pd.DataFrame(
        {
            "query_id": target_ids,
            "target_id": target_ids,
            "labelset": labelset,
            "rank": result.ranks,
            "score": result.scores,
            "top_ids": [" ".join(ids[row]) for row in result.top],
        },
        columns=RANK_COLUMNS,
    )


def score_matrix(
    queries: np.ndarray,
    images: np.ndarray,
    *,
    device: str = "cpu",
    chunk_bytes: int = 256 * 2**20,
    out: np.ndarray | None = None,
) -> np.ndarray:
    """Every query's score for every image, (M, N) float32, images read chunk by chunk.

    The same scoring as ``rank_targets`` (a multi-vector image scores its best vector), for
    callers that need whole score rows (score fusion) rather than the target's rank alone.
    ``out`` (e.g. a memory map) receives the scores instead of a new array.
    """
    if queries.ndim != 2 or images.ndim not in (2, 3) or images.shape[-1] != queries.shape[1]:
        raise ValueError(f"shape mismatch: queries {queries.shape}, images {images.shape}")
    dev = torch.device(device)
    q = _tensor(queries, dev)
    n, m = len(images), len(queries)
    per_image = m * (images.shape[1] if images.ndim == 3 else 1) * 4
    chunk = max(1, min(n, chunk_bytes // max(per_image, 1)))
    if out is None:
        out = np.empty((m, n), dtype=np.float32)
    for start in range(0, n, chunk):
        block = _tensor(images[start : start + chunk], dev)
        out[:, start : start + len(block)] = _scores(q, block).cpu().numpy()
    return out


def target_ranks(
    scores: np.ndarray, targets: np.ndarray, tolerance: float | np.ndarray = TIE_EPS
) -> np.ndarray:
    """The module's tie policy on whole score rows: rank of column ``targets[m]`` in row m.

    1 plus the number of other columns scoring at least the target's score minus
    ``tolerance`` (a scalar, or one value per row for scores on another scale than cosine
    similarity); ``MISSING`` targets get ``n + 1``.
    """
    scores = np.asarray(scores)
    targets = np.asarray(targets, dtype=np.int64)
    m, n = scores.shape
    present = targets >= 0
    own = scores[np.arange(m), targets.clip(min=0)]
    threshold = own - np.asarray(tolerance, dtype=scores.dtype)
    # The target itself always passes (own >= own - tolerance), so the count is the rank.
    counted = (scores >= threshold[:, None]).sum(axis=1)
    return np.where(present, counted, n + 1).astype(np.int64)
