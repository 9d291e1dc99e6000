"""Rank the target image of every query: one matrix product per chunk of images.

Tie policy (pessimistic): the rank of a target is 1 plus the number of *other* images
whose score is at least the target's score minus ``TIE_EPS``. An image that ties the
target, or beats it by float round-off only, counts as ranked ahead of it; a model never
gains from ties. The target is never compared with itself, nor with an image its collection
declares *equivalent* to it (``equivalents.csv``, docs/collections.md, "Duplicates and
equivalent images"): finding either is finding the target.

A target that is not in the collection gets rank ``n_images + 1`` and score NaN ("never
found"); the rank stage refuses such labels unless told otherwise.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from kisbench.data.store import VectorLayout, legacy_layout

# float32 cosine scores of unit vectors carry round-off of a few 1e-7; differences below
# this are not a model's preference.
TIE_EPS = 1e-6
MISSING = -1


@dataclass(frozen=True)
class RankResult:
    ranks: np.ndarray  # (M,) int64, 1 = best
    scores: np.ndarray  # (M,) float32, the target's score
    top: np.ndarray  # (M, k) int64 image indices of the k best images, best first


def check_layout(shape: tuple[int, ...], layout: VectorLayout | None) -> VectorLayout:
    """The images' layout: ``layout`` as their embedding set declares it (checked against
    the array's ``shape``), or, for bare arrays, the one the shape implies (the legacy rule).
    The scoring below follows the array's shape, so the two must agree."""
    if layout is None:
        return legacy_layout(len(shape), "images")
    layout.check(shape, "images")
    return layout


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


def _chunk_rows(m: int, shape: tuple[int, ...], chunk_bytes: int) -> int:
    """Images per chunk so that one chunk's working memory stays within ``chunk_bytes``:
    its float32 rows, the (M, chunk x P) score block, the comparison mask, the max over P."""
    p = shape[1] if len(shape) == 3 else 1
    per_image = 4 * p * shape[-1] + 4 * m * p + m + (4 * m if p > 1 else 0)
    return max(1, min(shape[0], chunk_bytes // per_image))


def _block(
    images: np.ndarray | torch.Tensor, start: int, stop: int, dev: torch.device
) -> torch.Tensor:
    """Rows ``start:stop`` as float32 on ``dev``: a view when already there, else one copy
    (through pinned memory to a GPU, so the transfer runs at full bus speed)."""
    if isinstance(images, torch.Tensor):
        return images[start:stop].to(dev, torch.float32)
    rows = torch.from_numpy(np.array(images[start:stop], dtype=np.float32))
    if dev.type == "cuda":
        return rows.pin_memory().to(dev, non_blocking=True)
    return rows


def on_device(images: np.ndarray, device: str, budget: float = 0.5) -> np.ndarray | torch.Tensor:
    """The images as a float32 tensor on ``device`` when it is a GPU with room for them (at
    most ``budget`` of its free memory), so that ranking several labelsets reads them from
    disk and over the bus once; otherwise ``images`` itself, read chunk by chunk per call."""
    dev = torch.device(device)
    if dev.type != "cuda":
        return images
    need = int(np.prod(images.shape)) * 4
    free, _ = torch.cuda.mem_get_info(dev)
    if need > budget * free:
        return images
    out = torch.empty(images.shape, dtype=torch.float32, device=dev)
    step = _chunk_rows(1, images.shape, 256 * 2**20)
    for start in range(0, len(images), step):
        out[start : start + step] = _block(images, start, start + step, dev)
    return out


def rank_targets(
    queries: np.ndarray,
    images: np.ndarray | torch.Tensor,
    targets: np.ndarray,
    *,
    top_k: int = 10,
    device: str = "cpu",
    chunk_bytes: int = 256 * 2**20,
    layout: VectorLayout | None = None,
    equivalents: np.ndarray | None = None,
) -> RankResult:
    """Rank ``images[targets[m]]`` for every query ``m``.

    ``queries``: (M, D); ``images``: (N, D) or (N, P, D), may be a memory map (read chunk by
    chunk) or a tensor already on the device (:func:`on_device`); ``targets``: (M,) row
    indices into ``images``, ``MISSING`` (-1) if absent; ``layout``: the images' declared
    layout, when the caller has their embedding set (see :func:`check_layout`);
    ``equivalents``: (E, 2) pairs ``(m, j)``: image ``j`` is equivalent to query ``m``'s
    target and is not counted ahead of it (``j`` != the target). Per chunk of images: one
    matrix product, then counts (no sort) and a top-k of the chunk merged into the running
    top-k. Memory stays within about ``chunk_bytes`` per chunk, whatever N is.
    """
    n = len(images)
    m = len(queries)
    shape = tuple(images.shape)
    if queries.ndim != 2 or len(shape) not in (2, 3) or shape[-1] != queries.shape[1]:
        raise ValueError(f"shape mismatch: queries {queries.shape}, images {shape}")
    check_layout(shape, layout)
    dev = torch.device(device)
    q = _tensor(queries, dev)
    t = torch.as_tensor(np.asarray(targets, dtype=np.int64), device=dev)
    if ((t < MISSING) | (t >= n)).any():
        raise ValueError("target index out of range")
    chunk = _chunk_rows(m, shape, chunk_bytes)
    pairs = np.zeros((0, 2), np.int64) if equivalents is None else np.asarray(equivalents)
    pairs = np.unique(pairs.astype(np.int64).reshape(-1, 2), axis=0)
    if len(pairs):
        in_range = (pairs[:, 0] >= 0) & (pairs[:, 0] < m) & (pairs[:, 1] >= 0) & (pairs[:, 1] < n)
        if not in_range.all():
            raise ValueError("equivalent pair out of range")
        if (pairs[:, 1] == np.asarray(targets)[pairs[:, 0]]).any():
            raise ValueError("an image is declared equivalent to itself")
    eq_q = torch.as_tensor(pairs[:, 0], device=dev)
    eq_i = torch.as_tensor(pairs[:, 1], device=dev)

    # Target scores first, from the M target rows alone (not the N images).
    rows = np.asarray(targets, dtype=np.int64).clip(min=0)
    if isinstance(images, torch.Tensor):
        target_vecs = images[torch.as_tensor(rows, device=images.device)].to(dev, torch.float32)
    else:
        target_vecs = _tensor(images[rows], dev)
    s_t = _target_scores(q, target_vecs, t)
    threshold = (s_t - TIE_EPS).unsqueeze(1)  # NaN for a missing target: never counted
    ahead = torch.zeros(m, dtype=torch.int64, device=dev)
    k = min(top_k, n)
    best_s = torch.empty((m, 0), device=dev)
    best_i = torch.empty((m, 0), dtype=torch.int64, device=dev)
    for start in range(0, n, chunk):
        stop = min(n, start + chunk)
        s = _scores(q, _block(images, start, stop, dev))
        ahead += (s >= threshold).sum(dim=1)
        # The target is not ahead of itself: take back its own count, judged on the same
        # score value as every other image of the chunk.
        inside = ((t >= start) & (t < stop)).nonzero().squeeze(1)
        if len(inside):
            own = s[inside, t[inside] - start]
            ahead[inside] -= (own >= threshold[inside, 0]).long()
        # Likewise an equivalent image of the target, judged on its score in this chunk.
        here = ((eq_i >= start) & (eq_i < stop)).nonzero().squeeze(1)
        if len(here):
            qs, js = eq_q[here], eq_i[here] - start
            counted = (s[qs, js] >= threshold[qs, 0]).long()
            ahead.index_add_(0, qs, -counted)
        if k:
            chunk_s, chunk_i = s.topk(min(k, stop - start), dim=1)
            cand_s = torch.cat([best_s, chunk_s], dim=1)
            cand_i = torch.cat([best_i, chunk_i + start], dim=1)
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
    images: np.ndarray | torch.Tensor,
    image_ids: list[str],
    queries: np.ndarray,
    target_ids: list[str],
    labelset: str,
    *,
    top_k: int = 10,
    device: str = "cpu",
    layout: VectorLayout | None = None,
    equivalents: Iterable[Iterable[str]] = (),
) -> pd.DataFrame:
    """Rank every query's target and return the ranks table (one row per query).

    The query id is the target id: the thesis' labels have one query per image and set.
    ``top_ids`` lists the ``top_k`` best image ids, space-separated, best first.
    ``layout``: the images' declared layout (``EmbeddingSet.layout``), checked;
    ``equivalents``: groups of image ids that are interchangeable answers: an image of the
    target's group is not counted ahead of it (ids not among ``image_ids`` are ignored: an
    image the embed stage skipped cannot be ahead of anything).
    """
    index = {image_id: i for i, image_id in enumerate(image_ids)}
    targets = np.array([index.get(t, MISSING) for t in target_ids], dtype=np.int64)
    pairs = equivalent_pairs(target_ids, index, equivalents)
    result = rank_targets(
        queries, images, targets, top_k=top_k, device=device, layout=layout, equivalents=pairs
    )
    return ranks_frame(image_ids, target_ids, labelset, result.ranks, result.scores, result.top)


def ranks_frame(
    image_ids: Sequence[str],
    target_ids: Sequence[str],
    labelset: str,
    ranks: np.ndarray,
    scores: np.ndarray,
    top: np.ndarray,
) -> pd.DataFrame:
    """The ranks table (``RANK_COLUMNS``, one row per query; the query id is the target id)
    from each query's target rank and score and its best images' positions ``top``."""
    ids = np.asarray(image_ids, dtype=object)
    return pd.DataFrame(
        {
            "query_id": list(target_ids),
            "target_id": list(target_ids),
            "labelset": labelset,
            "rank": ranks,
            "score": scores,
            "top_ids": [" ".join(ids[row]) for row in top],
        },
        columns=RANK_COLUMNS,
    )


def equivalent_pairs(
    target_ids: Sequence[str], index: Mapping[str, int], groups: Iterable[Iterable[str]]
) -> np.ndarray:
    """(E, 2) pairs ``(query, image index)``: each query's target's equivalent images."""
    partners: dict[str, set[str]] = {}
    for group in groups:
        members = set(group)
        for i in members:
            partners.setdefault(i, set()).update(members - {i})
    pairs = [
        (m, index[j])
        for m, t in enumerate(target_ids)
        for j in sorted(partners.get(t, ()))
        if j in index
    ]
    return np.array(pairs, dtype=np.int64).reshape(-1, 2)


def score_matrix(
    queries: np.ndarray,
    images: np.ndarray,
    *,
    device: str = "cpu",
    chunk_bytes: int = 256 * 2**20,
    out: np.ndarray | None = None,
    layout: VectorLayout | None = None,
) -> np.ndarray:
    """Every query's score for every image, (M, N) float32, images read chunk by chunk.

    The same scoring as ``rank_targets`` (a multi-vector image scores its best vector), for
    callers that need whole score rows (score fusion) rather than the target's rank alone.
    ``out`` (e.g. a memory map) receives the scores instead of a new array; ``layout`` is
    the images' declared layout, checked (:func:`check_layout`).
    """
    if queries.ndim != 2 or images.ndim not in (2, 3) or images.shape[-1] != queries.shape[1]:
        raise ValueError(f"shape mismatch: queries {queries.shape}, images {images.shape}")
    check_layout(tuple(images.shape), layout)
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
    scores: np.ndarray,
    targets: np.ndarray,
    tolerance: float | np.ndarray = TIE_EPS,
    equivalents: np.ndarray | None = None,
) -> np.ndarray:
    """The module's tie policy on whole score rows: rank of column ``targets[m]`` in row m.

    1 plus the number of other columns scoring at least the target's score minus
    ``tolerance`` (a scalar, or one value per row for scores on another scale than cosine
    similarity), not counting the columns ``j`` of the pairs ``(m, j)`` in ``equivalents``
    (the images equivalent to row m's target); ``MISSING`` targets get ``n + 1``.
    """
    scores = np.asarray(scores)
    targets = np.asarray(targets, dtype=np.int64)
    m, n = scores.shape
    present = targets >= 0
    own = scores[np.arange(m), targets.clip(min=0)]
    threshold = own - np.asarray(tolerance, dtype=scores.dtype)
    # The target itself always passes (own >= own - tolerance), so the count is the rank.
    counted = (scores >= threshold[:, None]).sum(axis=1)
    if equivalents is not None and len(equivalents):
        q, j = np.asarray(equivalents, dtype=np.int64).reshape(-1, 2).T
        np.subtract.at(counted, q, (scores[q, j] >= threshold[q]).astype(counted.dtype))
    return np.where(present, counted, n + 1).astype(np.int64)
