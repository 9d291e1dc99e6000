"""A generated RESET-format data set for the tests (the real one is not public).

Same files and columns as RESET's release: participants.csv, triplet_judgements.csv,
triplets.csv (with RESET's own extractors' cosine and Euclidean distance columns), keyframe
paths like ``06925/shot06925_31_RKF.jpg``. Built in, so that every code path runs: both
display orders, indifferent choices, a user missing from participants.csv, triplets with
one judgement (dropped by variant 2), a triplet whose candidates are the same keyframe (an
exact distance tie for every model), exact ties and a zero d(c1,c2) in a paper extractor,
and a keyframe without an embedding. Random embeddings per model, one of them multi-vector.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import numpy as np

CLASSES = ("general", "scuba", "wedding")
PAPER = ("W2VVExtractor", "RGBHistogramExtractor_64", "CLIPExtractor_small")


@dataclass
class ResetFixture:
    folder: Path
    participants: Path
    judgements: Path
    triplets: Path
    keyframes: list[str]  # every keyframe path the triplets use
    missing: list[str]  # keyframe paths left without an embedding
    # model -> (ids, vectors): ids are keyframe paths without extension, missing ones left out
    embeddings: dict[str, tuple[list[str], np.ndarray]] = field(default_factory=dict)


def keyframe_path(video: int, shot: int) -> str:
    return f"{video:05d}/shot{video:05d}_{shot}_RKF.jpg"


def write_csv(path: Path, header: list[str], rows: list[list[object]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def make_reset(
    folder: Path,
    *,
    seed: int = 0,
    n_keyframes: int = 18,
    n_triplets: int = 40,
    models: dict[str, int] | None = None,
    dim: int = 6,
) -> ResetFixture:
    """Write a RESET-format data set to ``folder``; ``models`` maps a model key to its
    number of vectors per image (1: (N, D) embeddings, Q > 1: (N, Q, D))."""
    models = {"m_single": 1, "m_multi": 3} if models is None else models
    rng = np.random.default_rng(seed)
    folder = Path(folder)
    keyframes = [keyframe_path(100 + i // 3, 10 + i) for i in range(n_keyframes)]

    users = [str(u) for u in range(1, 7)]
    participants = write_csv(
        folder / "participants.csv",
        ["user_id", "age_group", "education", "ml_expert"],
        [[u, "26-36", "msc", "no"] for u in users],
    )

    header = ["triplet_id", "model", "target_path", "candidate1_path", "candidate2_path"]
    header += ["candidate1_bin", "candidate2_bin", "class"]
    for x in PAPER:
        header += [f"{x}_cosdist_query_candidate1", f"{x}_cosdist_query_candidate2"]
        header += [f"{x}_cosdist_candidates", f"{x}_eucldist_query_candidate1"]
        header += [f"{x}_eucldist_query_candidate2", f"{x}_eucldist_candidates"]
    triplets = []
    for t in range(n_triplets):
        q, c1, c2 = rng.choice(n_keyframes, size=3, replace=False)
        if t == 3:
            c2 = c1  # the same keyframe twice: every model's distances tie exactly
        row: list[object] = [100 + t, PAPER[t % len(PAPER)], keyframes[q], keyframes[c1]]
        row += [keyframes[c2], int(rng.integers(1, 64)), int(rng.integers(64, 4096))]
        row += [CLASSES[t % len(CLASSES)]]
        for i, _ in enumerate(PAPER):
            d1, d2, dc = np.round(rng.uniform(0.05, 1.2, size=3), 6)
            if i == 0 and t % 5 == 1:
                d2 = d1  # an exact tie in RESET's file
            if i == 1 and t == 2:
                dc = 0.0  # d(c1,c2) = 0: the thesis divides by 1e-5 instead
            row += [d1, d2, dc, *np.round(rng.uniform(1, 40, size=3), 4)]
        triplets.append(row)
    triplets_csv = write_csv(folder / "triplets.csv", header, triplets)

    judgements = []
    jid = 0
    for t, row in enumerate(triplets):
        for _ in range(1 if t % 7 == 0 else int(rng.integers(2, 6))):
            c1, c2 = row[3], row[4]
            c1_left = bool(rng.integers(0, 2))
            choice = int(rng.integers(-2, 3))
            left, right = (c1, c2) if c1_left else (c2, c1)
            user = users[int(rng.integers(0, len(users)))]
            judgements.append(
                [jid, row[0], user, choice, int(np.sign(choice)), left, right]
                + [round(float(rng.uniform(1, 20)), 3), False, 1920.0, 969.0, "Mozilla/5.0"]
            )
            jid += 1
    judgements[5][2] = "999"  # a user missing from participants.csv
    judgements_csv = write_csv(
        folder / "triplet_judgements.csv",
        ["judgement_id", "triplet_id", "user_id", "choice", "simplified_choice"]
        + ["option_one_path", "option_two_path", "time_spent", "handheld"]
        + ["window_width", "window_height", "user_agent"],
        judgements,
    )

    used = sorted({p for row in triplets for p in row[2:5]})
    missing = [str(triplets[6][3])]  # candidate1 of one triplet has no embedding
    kept = [p for p in used if p not in missing]
    ids = [PurePosixPath(p).with_suffix("").as_posix() for p in kept]
    embeddings = {}
    for model, q in models.items():
        shape = (len(ids), dim) if q == 1 else (len(ids), q, dim)
        v = rng.normal(size=shape).astype(np.float32)
        embeddings[model] = (ids, v / np.linalg.norm(v, axis=-1, keepdims=True))
    return ResetFixture(
        folder, participants, judgements_csv, triplets_csv, used, missing, embeddings
    )


def assert_nan_exactly_where_missing(ext, model: str, missing: list[str]) -> None:  # noqa: ANN001
    """A distance is empty iff one of its two keyframes has no embedding, and never 1.11."""
    pairs = {
        "query_candidate1": ("target_path", "candidate1_path"),
        "query_candidate2": ("target_path", "candidate2_path"),
        "candidates": ("candidate1_path", "candidate2_path"),
    }
    for suffix, (a, b) in pairs.items():
        gone = ext[a].isin(missing) | ext[b].isin(missing)
        col = ext[f"{model}_cosdist_{suffix}"]
        assert (col.isna() == gone).all(), suffix
        assert not (col == 1.11).any()
