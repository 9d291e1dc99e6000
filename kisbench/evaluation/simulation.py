"""Interactive known-item search with simulated users (docs/simulation.md).

The protocol of Peška et al. (MTAP 2023) and of their public code (somhunter-simulator,
somhunter-core): the text query gives every image a start score, a display shows the
``n`` best images, a simulated user marks ``k`` of them as "like the target" in a feedback
space, and a PicHunter-style Bayesian update re-scores every image, until the target is
on a display or ``N`` feedback rounds have passed.

How it is computed:

- Runs (one per query and simulated user) are vectorised: a block of runs holds its
  score rows ``(R, N)`` float32; the block's size is a fixed function of the collection
  size (:data:`SCORE_BYTES`), so memory stays bounded for 1,000,000 images.
- The feedback kernel ``e(i, x) = exp(-(1 - cos(F_i, F_x)) / sigma)`` is computed for the
  displayed images against chunks of the collection, or, for collections of up to
  :data:`KERNEL_CACHE_BYTES` of kernel, once for all image pairs and read from there.
- Randomness is one input: every stochastic pick uses a uniform number from
  :func:`draws` (a numpy PCG64 generator from the seed), drawn for every run and round up
  front, so the result does not depend on how runs are blocked, and a plain
  re-implementation can be given the same numbers (``tests/test_simulation.py``).
- Displays are ordered by image index and break score ties towards the lower index, so a
  display is a set, fixed by the scores.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from scipy import stats
from tqdm import tqdm

from kisbench.config.simulation import Simulate, split_pair
from kisbench.data.store import EmbeddingSet, VectorLayout, legacy_layout
from kisbench.errors import InputError
from kisbench.evaluation.metrics import clopper_pearson, studentized
from kisbench.evaluation.pairwise import paired_difference, wilcoxon_ranks

USERS = ("ideal", "ransam", "random")
TEMPERATURES = ("model", "constant", "anchor")
# somhunter-simulator's start, exp(-50 (1 - cos) / 2) = exp(-25) exp(25 cos): after the
# division by the maximum it is the scale 25.
ANCHOR_SCALE = 25.0
FLOOR = 1e-12  # somhunter's MIN_SCORE: no score falls below it after a normalisation
NEVER = -1  # found_at of a target not found on displays 0..N

SCORE_BYTES = 256 * 2**20  # score rows of one block of runs
KERNEL_CACHE_BYTES = 512 * 2**20  # the all-pairs kernel is kept when it fits in this
GATHER_BYTES = 128 * 2**20  # the gathered kernel rows of one chunk of images


@dataclass(frozen=True)
class Protocol:
    """The protocol's numbers (params ``simulate``; defaults as in the issue and the code)."""

    display: int = 64  # images per display
    rounds: int = 10  # N: displays 0 (text only) .. N, i.e. N rounds of feedback
    likes: int = 1  # k: images the user marks per display
    p: float = 13.0  # ransam's sharpness
    sigma: float = 0.1  # the Bayesian update's kernel width
    exclude_shown: bool = False  # somhunter-core shows the top n whether seen or not


def start_scale(meta: dict, mode: str, constant: float) -> float:
    """The temperature c of the start scores exp(c cos): the model's learned
    ``logit_scale`` (its meta.json) in mode ``model``, ``constant`` where it has none (or in
    mode ``constant``), :data:`ANCHOR_SCALE` in mode ``anchor``."""
    if mode == "anchor":
        return ANCHOR_SCALE
    if mode == "model" and meta.get("logit_scale") is not None:
        return float(meta["logit_scale"])
    if mode not in TEMPERATURES:
        raise ValueError(f"unknown temperature mode {mode!r}; known: {', '.join(TEMPERATURES)}")
    return float(constant)


def feedback_vectors(vectors: np.ndarray, layout: VectorLayout | None = None) -> np.ndarray:
    """The feedback space's one unit vector per image, float32: a multi-vector image is the
    mean of its vectors, renormalised (as RESET's image-image distances are,
    `kisbench.reset.consistency.unit_vectors`)."""
    v = np.asarray(vectors, dtype=np.float32)
    layout = layout or legacy_layout(v.ndim, "images")
    layout.check(v.shape, "images")
    if layout.several:
        v = v.mean(axis=1)
    v = v.astype(np.float64)
    norms = np.linalg.norm(v, axis=1, keepdims=True)
    return (v / np.where(norms > 0, norms, 1.0)).astype(np.float32)


def text_cosines(
    queries: np.ndarray, images: np.ndarray, layout: VectorLayout | None, device: torch.device
) -> torch.Tensor:
    """(M, N) float32 cosines of the queries with every image (a multi-vector image: its
    best vector, as the rank stage scores it), images read in chunks."""
    layout = layout or legacy_layout(images.ndim, "images")
    layout.check(tuple(images.shape), "images")
    q = torch.from_numpy(np.array(queries, dtype=np.float32)).to(device)
    n = len(images)
    per_image = 4 * (images.shape[1] if images.ndim == 3 else 1) * (images.shape[-1] + len(q))
    step = max(1, min(n, SCORE_BYTES // per_image))
    out = torch.empty((len(q), n), dtype=torch.float32, device=device)
    for a in range(0, n, step):
        block = torch.from_numpy(np.array(images[a : a + step], dtype=np.float32)).to(device)
        if block.ndim == 2:
            out[:, a : a + len(block)] = q @ block.T
        else:
            c, v, d = block.shape
            s = (q @ block.reshape(c * v, d).T).reshape(len(q), c, v)
            out[:, a : a + c] = s.amax(dim=2)
    return out


def start_scores(cosines: torch.Tensor, scale: float) -> torch.Tensor:
    """log s_i for s_i = exp(c cos_i) / max_j exp(c cos_j).

    Scores are kept as logarithms: exp(c cos) with c = 100 spans more than float32 holds
    (exp(-200) is 0 there, and zeros would tie), while every step of the protocol is a
    product, a division by the maximum or a floor, which logarithms carry exactly. The
    division by the maximum changes nothing (the update is invariant to a factor); the
    start is not floored, as in somhunter-simulator: display 0 is the text ranking."""
    return scale * (cosines - cosines.amax(dim=1, keepdim=True))


def order_rank(scores: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """The target's position in each row's display order (score descending, ties by lower
    index), 1-based: display 0 holds it exactly when this is at most n."""
    own = scores.gather(1, targets[:, None])
    n = scores.shape[1]
    idx = torch.arange(n, device=scores.device)[None, :]
    ahead = (scores > own) | ((scores == own) & (idx < targets[:, None]))
    return ahead.sum(dim=1) + 1


def top_display(scores: torch.Tensor, n: int) -> torch.Tensor:
    """(R, n) indices of each row's n best images, ties towards the lower index, in index
    order (a display is a set)."""
    values, _ = scores.topk(n, dim=1)
    cut = values[:, -1:]
    above = scores > cut
    room = n - above.sum(dim=1, keepdim=True)
    at = scores == cut
    chosen = above | (at & (at.cumsum(dim=1, dtype=torch.int32) <= room))
    # Each row holds exactly n; nonzero lists them row-major, in index order.
    return chosen.nonzero()[:, 1].reshape(len(scores), n)


def draws(runs: int, rounds: int, likes: int, seed: int) -> np.ndarray:
    """(runs, rounds, likes) uniform numbers in [0, 1): run r's j-th pick after display t
    uses ``draws[r, t, j]``. numpy's PCG64 from ``seed``: the same on every machine."""
    return np.random.Generator(np.random.PCG64(seed)).random((runs, max(rounds, 1), likes))


def pick(user: str, cos_to_target: torch.Tensor, k: int, p: float, u: torch.Tensor) -> torch.Tensor:
    """(R, k) positions in the display of the liked images.

    ``cos_to_target``: (R, n) cos(F_d, F_t) of the displayed images; ``u``: (R, k) uniform
    numbers. ``ideal``: the k closest (ties: lower position); ``ransam``: k draws without
    replacement, P(d) proportional to ((1 + cos) / 2)^p (weights in float64, divided by
    the largest in the log domain so that a large p does not underflow); ``random``:
    uniform draws without replacement. A draw is the first position whose cumulative
    weight exceeds u times the total.
    """
    c = cos_to_target.double()
    r, n = c.shape
    if user == "ideal":
        order = torch.sort(-c, dim=1, stable=True).indices
        return order[:, :k]
    if user == "ransam":
        logw = p * torch.log((1 + c).clamp_min(1e-300) / 2)
    elif user == "random":
        logw = torch.zeros_like(c)
    else:
        raise ValueError(f"unknown user {user!r}; known: {', '.join(USERS)}")
    out = torch.empty((r, k), dtype=torch.int64, device=c.device)
    for j in range(k):
        # Renormalised in the log domain after each pick, so that with a large p the next
        # best is still drawn, never an underflowed zero.
        w = torch.exp(logw - logw.amax(dim=1, keepdim=True))
        cum = w.cumsum(dim=1)
        want = u[:, j : j + 1].double() * cum[:, -1:]
        pos = torch.searchsorted(cum, want, right=True).clamp_max(n - 1)
        # u close to 1 can round past the total: take the last position still weighted.
        last = n - 1 - (w > 0).flip(1).long().argmax(dim=1, keepdim=True)
        pos = torch.where(w.gather(1, pos) > 0, pos, last)
        out[:, j] = pos[:, 0]
        logw = logw.scatter(1, pos, float("-inf"))
    return out


class Kernel:
    """e(i, x) = exp(-(1 - cos(F_i, F_x)) / sigma) of the feedback space, by blocks."""

    def __init__(self, feedback: torch.Tensor, sigma: float) -> None:
        self.f = feedback
        self.sigma = sigma
        n = len(feedback)
        self.cache: torch.Tensor | None = None
        if 4 * n * n <= KERNEL_CACHE_BYTES:
            self.cache = torch.empty((n, n), dtype=torch.float32, device=feedback.device)
            step = max(1, (64 * 2**20) // (4 * n))
            for a in range(0, n, step):
                self.cache[a : a + step] = self._compute(feedback[a : a + step], 0, n)

    def _compute(self, rows: torch.Tensor, a: int, b: int) -> torch.Tensor:
        return (rows @ self.f[a:b].T).sub_(1.0).div_(self.sigma).exp_()

    def block(self, images: torch.Tensor, a: int, b: int) -> torch.Tensor:
        """(len(images), b - a): the kernel of ``images`` (indices) with images a..b-1."""
        if self.cache is not None:
            return self.cache[images, a:b]
        return self._compute(self.f[images], a, b)


def _sum_matrix(columns: torch.Tensor, width: int) -> torch.Tensor:
    """(R, width) sparse CSR matrix with a 1 at (r, columns[r, j]): times a kernel block it
    sums, per run, the kernel rows of its displayed images (4x faster than a gather on 2
    cores, and without the (R, n, C) temporary)."""
    r, m = columns.shape
    crow = torch.arange(0, r * m + 1, m, device=columns.device)
    ones = torch.ones(r * m, dtype=torch.float32, device=columns.device)
    with warnings.catch_warnings():  # "beta state": the product used here is long stable
        warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
        return torch.sparse_csr_tensor(
            crow, columns.reshape(-1), ones, size=(r, width), check_invariants=False
        )


def update(
    scores: torch.Tensor,
    kernel: Kernel,
    display: torch.Tensor,
    liked: torch.Tensor,
) -> torch.Tensor:
    """The Bayesian update of every row of log scores, in place, and the normalisation.

    For each liked image l, with D' the displayed images not liked:
    s_i <- s_i e(i, l) / (e(i, l) + sum_{d in D'} e(i, d)); then s <- s / max(s, FLOOR),
    floored at FLOOR (on logarithms: sums and a clamp). ``display``: (R, n) image indices;
    ``liked``: (R, k) positions in it. e >= exp(-2 / sigma) fits float32 for any sigma
    of at least 0.025 (the params minimum), so the factor itself is computed directly.
    """
    r, n = display.shape
    k = liked.shape[1]
    dev = scores.device
    total = scores.shape[1]
    is_liked = torch.zeros((r, n), dtype=torch.bool, device=dev)
    is_liked.scatter_(1, liked, True)
    others = display[~is_liked].reshape(r, n - k)
    like_ids = display.gather(1, liked)
    if kernel.cache is not None:
        # The whole kernel is at hand: one sparse product for every image at once.
        rest = _sum_matrix(others, total) @ kernel.cache
        for j in range(k):
            e_l = kernel.cache[like_ids[:, j]]
            scores += torch.log(e_l / (e_l + rest))
    else:
        needed, inverse = torch.unique(torch.cat([others, like_ids], dim=1), return_inverse=True)
        sums = _sum_matrix(inverse[:, : n - k], len(needed))
        pos_likes = inverse[:, n - k :]
        step = max(1, min(total, GATHER_BYTES // (4 * (len(needed) + (k + 1) * r))))
        for a in range(0, total, step):
            b = min(total, a + step)
            block = kernel.block(needed, a, b)  # (U, C)
            rest = sums @ block
            for j in range(k):
                e_l = block[pos_likes[:, j]]
                scores[:, a:b] += torch.log(e_l / (e_l + rest))
    floor = math.log(FLOOR)
    scores -= scores.amax(dim=1, keepdim=True).clamp_min(floor)
    return scores.clamp_min_(floor)


@dataclass(frozen=True)
class Runs:
    """Who searches: run r is query ``query[r]`` with user ``user[r]``, repeat ``repeat[r]``."""

    query: np.ndarray
    user: list[str]
    repeat: np.ndarray


def plan_runs(queries: int, users: Sequence[str], repeats: int) -> Runs:
    """Query-major runs: per query, one ``ideal`` run (it is deterministic) and ``repeats``
    runs of each random user."""
    q, u, rep = [], [], []
    for i in range(queries):
        for user in users:
            for j in range(1 if user == "ideal" else repeats):
                q.append(i)
                u.append(user)
                rep.append(j)
    return Runs(np.array(q, dtype=np.int64), u, np.array(rep, dtype=np.int64))


def simulate(
    cosines: torch.Tensor,
    feedback: torch.Tensor,
    targets: np.ndarray,
    runs: Runs,
    protocol: Protocol,
    scale: float,
    uniforms: np.ndarray,
    *,
    progress: str | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """found_at per run (the display 0..N holding the target, :data:`NEVER` if none) and
    the text-only rank of each query's target (its position in display-0 order).

    ``cosines``: (M, N) text cosines (:func:`text_cosines`); ``feedback``: (N, D) unit
    vectors of the feedback space on the same device; ``targets``: (M,) image indices;
    ``uniforms``: :func:`draws` for the runs. Runs go in blocks of whole score rows.
    """
    dev = cosines.device
    m, n_img = cosines.shape
    n = min(protocol.display, n_img)
    if protocol.likes >= n:
        raise ValueError(f"likes ({protocol.likes}) must be fewer than the display ({n})")
    t_all = torch.as_tensor(np.asarray(targets, dtype=np.int64), device=dev)
    text_rank = np.empty(m, dtype=np.int64)
    per_block = max(1, SCORE_BYTES // (4 * n_img))
    for a in range(0, m, per_block):
        s0 = start_scores(cosines[a : a + per_block], scale)
        text_rank[a : a + per_block] = order_rank(s0, t_all[a : a + per_block]).cpu().numpy()
    kernel = Kernel(feedback, protocol.sigma)
    found = np.full(len(runs.query), NEVER, dtype=np.int64)
    bar = tqdm(total=len(found), desc=progress, disable=progress is None, unit="run")
    for a in range(0, len(found), per_block):
        ids = np.arange(a, min(len(found), a + per_block))
        found[ids] = _block(cosines, feedback, t_all, runs, ids, protocol, scale, uniforms, kernel)
        bar.update(len(ids))
    bar.close()
    return found, text_rank


def _block(
    cosines: torch.Tensor,
    feedback: torch.Tensor,
    targets: torch.Tensor,
    runs: Runs,
    ids: np.ndarray,
    protocol: Protocol,
    scale: float,
    uniforms: np.ndarray,
    kernel: Kernel,
) -> np.ndarray:
    dev = cosines.device
    n_img = cosines.shape[1]
    n = min(protocol.display, n_img)
    q = torch.as_tensor(runs.query[ids], device=dev)
    scores = start_scores(cosines[q], scale)
    target = targets[q]
    users = np.asarray(runs.user, dtype=object)[ids]
    u = torch.as_tensor(uniforms[ids], device=dev)
    alive = torch.arange(len(ids), device=dev)  # rows of this block still searching
    shown = torch.zeros_like(scores, dtype=torch.bool) if protocol.exclude_shown else None
    out = np.full(len(ids), NEVER, dtype=np.int64)
    for t in range(protocol.rounds + 1):
        if not len(alive):
            break
        view = scores if shown is None else scores.masked_fill(shown, float("-inf"))
        # Every run of a block has seen as many images: the last display may be smaller.
        n_t = n if shown is None else min(n, int((~shown[0]).sum()))
        if n_t == 0:
            break  # every image has been shown
        display = top_display(view, n_t)
        hit = (display == target[:, None]).any(dim=1)
        done = alive[hit].cpu().numpy()
        out[done] = t
        if t == protocol.rounds or n_t <= protocol.likes:
            break  # (a display of k or fewer leaves nothing to compare the likes with)
        keep = ~hit
        alive, scores, display, target, u = (x[keep] for x in (alive, scores, display, target, u))
        if not len(alive):
            break
        if shown is not None:
            shown = shown[keep]
            shown.scatter_(1, display, True)
        users_alive = users[alive.cpu().numpy()]
        cos_t = torch.einsum("rnd,rd->rn", feedback[display], feedback[target])
        liked = torch.empty((len(alive), protocol.likes), dtype=torch.int64, device=dev)
        for name in USERS:
            rows = torch.as_tensor(np.flatnonzero(users_alive == name), device=dev)
            if len(rows):
                liked[rows] = pick(name, cos_t[rows], protocol.likes, protocol.p, u[rows, t])
        update(scores, kernel, display, liked)
    return out


def run_table(
    found: np.ndarray,
    text_rank: np.ndarray,
    runs: Runs,
    query_ids: Sequence[str],
    *,
    model: str,
    text_model: str,
    feedback_model: str,
    scale: float,
) -> pd.DataFrame:
    """One row per run: the CSV of ``data/simulation/C/L.csv``."""
    qid = np.asarray(query_ids, dtype=object)
    return pd.DataFrame(
        {
            "model": model,
            "text_model": text_model,
            "feedback_model": feedback_model,
            "scale": scale,
            "query_id": qid[runs.query],
            "user": runs.user,
            "repeat": runs.repeat,
            "text_rank": text_rank[runs.query],
            "found_at": found,
        }
    )


RUN_COLUMNS = [
    "model",
    "text_model",
    "feedback_model",
    "scale",
    "query_id",
    "user",
    "repeat",
    "text_rank",
    "found_at",
]


def entry_key(text_model: str, feedback_model: str) -> str:
    """A run's name: the model, or ``TEXT+FEEDBACK`` for a pair of two models."""
    return text_model if text_model == feedback_model else f"{text_model}+{feedback_model}"


def per_query(table: pd.DataFrame, rounds: int) -> pd.DataFrame:
    """Per (model, user, query): the share of its simulated users that found the target
    within n displays (columns ``within_0`` .. ``within_N``), the mean displays needed
    (``displays``: found_at + 1 when found, N + 2 when never: every display shown and one
    more, a lower bound) and the text rank."""
    f = table["found_at"].to_numpy()
    cols = {f"within_{n}": ((f >= 0) & (f <= n)).astype(np.float64) for n in range(rounds + 1)}
    frame = table[["model", "user", "query_id", "text_rank"]].assign(
        displays=np.where(f >= 0, f + 1, rounds + 2).astype(np.float64), **cols
    )
    return frame.groupby(["model", "user", "query_id"], sort=False).mean().reset_index()


def _mean_ci(
    values: np.ndarray, n_boot: int, seed: int, bounds: tuple[float, float]
) -> dict[str, float]:
    """The mean over queries with the project's 95 % interval
    (`kisbench.evaluation.metrics`): exact binomial (Clopper-Pearson) when every value is 0
    or 1 (one deterministic user per query), else the studentized bootstrap of a mean,
    clipped to ``bounds``."""
    x = np.asarray(values, dtype=np.float64)
    if np.isin(x, (0.0, 1.0)).all():
        low, high = clopper_pearson(np.sum(x), len(x))
    else:
        low, high = studentized(x, n_boot=n_boot, seed=seed, bounds=bounds)
    v = float(x.mean())
    return {"value": v, "low": min(float(low), v), "high": max(float(high), v)}


def summary(
    table: pd.DataFrame, rounds: int, display: int, *, n_boot: int, seed: int
) -> dict[str, dict[str, object]]:
    """``{model: {user: {...}}}`` for one collection and labelset: per n the share found
    within n displays, the mean displays (found at d: d + 1; never: N + 2) and the
    text-only R@((n+1) display), each with its 95 % interval over queries."""
    pq = per_query(table, rounds)
    out: dict[str, dict[str, object]] = {}
    for (model, user), g in pq.groupby(["model", "user"], sort=False):
        entry: dict[str, object] = {"queries": len(g)}
        for n in range(rounds + 1):
            share = g[f"within_{n}"].to_numpy()
            entry[f"within_{n}"] = _mean_ci(share, n_boot, seed, (0.0, 1.0))
        bounds = (1.0, rounds + 2.0)
        entry["displays"] = _mean_ci(g["displays"].to_numpy(), n_boot, seed, bounds)
        ranks = g["text_rank"].to_numpy()
        entry["text_only"] = {
            f"r@{(n + 1) * display}": float(np.mean(ranks <= (n + 1) * display))
            for n in range(rounds + 1)
        }
        out.setdefault(str(model), {})[str(user)] = entry
    return out


def curve(table: pd.DataFrame, rounds: int, display: int, user: str) -> pd.DataFrame:
    """The plot table of one user: n, per model the share found within n displays, and per
    model ``MODEL@text`` the text-only R@((n+1) display)."""
    pq = per_query(table, rounds)
    pq = pq[pq["user"] == user]
    frame = pd.DataFrame({"n": np.arange(rounds + 1)})
    for model, g in pq.groupby("model", sort=False):
        frame[str(model)] = [g[f"within_{n}"].mean() for n in range(rounds + 1)]
    for model, g in pq.groupby("model", sort=False):
        r = g["text_rank"].to_numpy()
        frame[f"{model}@text"] = [np.mean(r <= (n + 1) * display) for n in range(rounds + 1)]
    return frame


PAIR_COLUMNS = [
    "collection",
    "labelset",
    "user",
    "model_a",
    "model_b",
    "queries",
    "displays_a",
    "displays_b",
    "diff",
    "diff_low",
    "diff_high",
    "p_paired",
    "p_wilcoxon",
    "q_paired",
    "q_wilcoxon",
]


def pairs(
    table: pd.DataFrame,
    rounds: int,
    *,
    n_boot: int,
    seed: int,
    collection: str = "",
    labelset: str = "",
) -> pd.DataFrame:
    """Paired comparisons of the mean displays needed, per user and pair of models, as for
    ranks (`kisbench.evaluation.pairwise`): a bootstrap over queries of the difference
    (a - b; negative: a needs fewer displays) and the Wilcoxon signed-rank test on the
    per-query means; q-values Benjamini-Hochberg adjusted over the table."""
    pq = per_query(table, rounds)
    rows = []
    for user, g in pq.groupby("user", sort=False):
        by_model = {m: s.set_index("query_id")["displays"] for m, s in g.groupby("model")}
        models = list(dict.fromkeys(g["model"]))
        for i, a in enumerate(models):
            for b in models[i + 1 :]:
                x = by_model[a].to_numpy()
                y = by_model[b].reindex(by_model[a].index).to_numpy()
                # displays are 1..N+2, "ranks" whose mean the bootstrap compares; with
                # n_images = N + 2 none is capped
                test = paired_difference(
                    x, y, n_images=rounds + 2, metric="mean_rank", n_boot=n_boot, seed=seed
                )
                rows.append(
                    {
                        "collection": collection,
                        "labelset": labelset,
                        "user": user,
                        "model_a": a,
                        "model_b": b,
                        "queries": len(x),
                        "displays_a": float(x.mean()),
                        "displays_b": float(y.mean()),
                        "diff": test.diff,
                        "diff_low": test.low,
                        "diff_high": test.high,
                        "p_paired": test.p,
                        "p_wilcoxon": wilcoxon_ranks(x, y),
                    }
                )
    frame = pd.DataFrame(rows, columns=PAIR_COLUMNS[:-2])
    for name in ("paired", "wilcoxon"):
        p = frame[f"p_{name}"].to_numpy()
        frame[f"q_{name}"] = stats.false_discovery_control(p) if len(p) else p
    return frame[PAIR_COLUMNS]


def finite(value: float) -> float | None:
    """JSON has no NaN."""
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else value


def protocol_of(opts: Simulate) -> Protocol:
    """The protocol's numbers from params ``simulate``."""
    if opts.likes >= opts.display:
        raise InputError(
            f"simulate.likes ({opts.likes}) must be fewer than simulate.display ({opts.display})"
        )
    return Protocol(
        display=opts.display,
        rounds=opts.displays,
        likes=opts.likes,
        p=opts.p,
        sigma=opts.sigma,
        exclude_shown=opts.exclude_shown,
    )


def entries(models: Sequence[str], pairs_: Sequence[str]) -> list[tuple[str, str]]:
    """(text model, feedback model): every model with itself, then params ``simulate.pairs``
    (``TEXT:FEEDBACK``)."""
    out = [(m, m) for m in models]
    for pair in pairs_:
        text, fb = split_pair(pair)
        missing = [m for m in (text, fb) if m not in models]
        if missing:
            raise InputError(
                f"simulate.pairs: {pair!r} names {', '.join(missing)}, not in run.models: only "
                "the experiment's models are embedded"
            )
        if (text, fb) not in out:
            out.append((text, fb))
    return out


def simulate_labelset(
    images: dict[str, EmbeddingSet],
    queries: dict[str, EmbeddingSet],
    pairs_: list[tuple[str, str]],
    opts: Simulate,
    device: torch.device,
    *,
    where: str = "",
) -> pd.DataFrame:
    """The runs table of one collection and labelset for every (text, feedback) entry.

    ``images``/``queries``: per model its image set and this labelset's query set (query
    id = target id). A target the image set lacks (skipped as unreadable) is never found.
    The same uniform draws serve every entry (common random numbers: a paired comparison
    of two models is not blurred by different luck).
    """
    protocol = protocol_of(opts)
    tables = []
    for text, fb in pairs_:
        img, qs = images[text], queries[text]
        index = {image_id: i for i, image_id in enumerate(img.ids)}
        targets = np.array([index.get(t, -1) for t in qs.ids], dtype=np.int64)
        present = np.flatnonzero(targets >= 0)
        fvec = images[fb]
        if set(fvec.ids) != set(img.ids):
            raise InputError(
                f"{where}: {text} and {fb} embedded different images; re-run their "
                "embed-images stages on the same collection"
            )
        order = np.array([{i: j for j, i in enumerate(fvec.ids)}[i] for i in img.ids])
        fb_np = feedback_vectors(fvec.vectors, fvec.layout)[order]
        scale = start_scale(img.meta, opts.temperature, opts.scale)
        cos = text_cosines(qs.vectors[present], img.vectors, img.layout, device)
        runs = plan_runs(len(present), opts.users, opts.repeats)
        all_runs = plan_runs(len(qs.ids), opts.users, opts.repeats)
        uniforms = draws(len(all_runs.query), protocol.rounds, protocol.likes, opts.seed)
        # The draws follow the query: a skipped target does not shift the others' numbers.
        keep = np.isin(all_runs.query, present)
        found_p, rank_p = simulate(
            cos,
            torch.from_numpy(fb_np).to(device),
            targets[present],
            runs,
            protocol,
            scale,
            uniforms[keep],
            progress=f"simulate {where} {entry_key(text, fb)}",
        )
        found = np.full(len(all_runs.query), NEVER, dtype=np.int64)
        found[keep] = found_p
        text_rank = np.full(len(qs.ids), len(img.ids) + 1, dtype=np.int64)
        text_rank[present] = rank_p
        tables.append(
            run_table(
                found,
                text_rank,
                all_runs,
                qs.ids,
                model=entry_key(text, fb),
                text_model=text,
                feedback_model=fb,
                scale=scale,
            )
        )
    return pd.concat(tables, ignore_index=True)[RUN_COLUMNS]


def results(
    tables: dict[tuple[str, str], pd.DataFrame], opts: Simulate, *, n_boot: int, seed: int
) -> tuple[dict, pd.DataFrame, dict[tuple[str, str, str], pd.DataFrame]]:
    """From the runs tables per (collection, labelset): the metrics
    (``{collection: {labelset: {model: {user: ...}}}}``, :func:`summary`), the pairs table
    (:func:`pairs`) and the plot tables per (collection, labelset, user) (:func:`curve`)."""
    metrics: dict = {}
    pair_tables, curves = [], {}
    for (collection, labelset), table in tables.items():
        metrics.setdefault(collection, {})[labelset] = summary(
            table, opts.displays, opts.display, n_boot=n_boot, seed=seed
        )
        pair_tables.append(
            pairs(
                table,
                opts.displays,
                n_boot=n_boot,
                seed=seed,
                collection=collection,
                labelset=labelset,
            )
        )
        for user in opts.users:
            curves[(collection, labelset, user)] = curve(table, opts.displays, opts.display, user)
    frame = pd.concat(pair_tables, ignore_index=True) if pair_tables else pd.DataFrame()
    return metrics, frame, curves
