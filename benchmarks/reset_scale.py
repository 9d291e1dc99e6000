"""How long the RESET computation takes at RESET's size, on synthetic data.

17,026 judgements over 7,000 triplets, 34 extractors (RESET's 30 + the thesis' 4), 10,000
keyframes with 1,024-dimensional embeddings, 1,000 bootstrap resamples; random values, so
only the timings mean anything. Baseline: variant 1 for every extractor by a row-by-row
``iterrows`` loop, the way the thesis' scripts walked the table.

    python -m benchmarks.reset_scale [--bootstrap 1000]
"""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import typer

from benchmarks.machine import describe
from kisbench.cli import command_line
from kisbench.reset.consistency import evaluate, model_distances
from kisbench.reset.data import DISTANCE_SUFFIXES

app = command_line()


def synthetic(
    rng: np.random.Generator, n_triplets: int, n_judgements: int, n_extractors: int
) -> tuple[list[str], pd.DataFrame, pd.DataFrame, pd.DataFrame, list[str]]:
    keyframes = [f"{i // 20:05d}/shot{i // 20:05d}_{i % 20}_RKF.jpg" for i in range(10_000)]
    pick = rng.integers(0, len(keyframes), size=(n_triplets, 3))
    triplets = pd.DataFrame(
        {
            "target_path": [keyframes[i] for i in pick[:, 0]],
            "candidate1_path": [keyframes[i] for i in pick[:, 1]],
            "candidate2_path": [keyframes[i] for i in pick[:, 2]],
            "class": rng.choice(["general", "scuba", "wedding"], size=n_triplets),
        },
        index=pd.Index([str(i) for i in range(n_triplets)], name="triplet_id"),
    )
    names = [f"X{i}" for i in range(n_extractors)]
    columns = {
        f"{x}_{s}": np.round(rng.uniform(0, 1.2, n_triplets), 6)
        for x in names
        for s in DISTANCE_SUFFIXES
    }
    triplets = pd.concat([triplets, pd.DataFrame(columns, index=triplets.index)], axis=1)
    tid = rng.integers(0, n_triplets, n_judgements)
    c1_left = rng.integers(0, 2, n_judgements).astype(bool)
    c1 = triplets["candidate1_path"].to_numpy()[tid]
    c2 = triplets["candidate2_path"].to_numpy()[tid]
    choice = rng.integers(-2, 3, n_judgements)
    judgements = pd.DataFrame(
        {
            "triplet_id": triplets.index.to_numpy()[tid],
            "user_id": rng.integers(1, 85, n_judgements).astype(str),
            "choice": choice,
            "simplified_choice": np.sign(choice),
            "option_one_path": np.where(c1_left, c1, c2),
            "option_two_path": np.where(c1_left, c2, c1),
        },
        index=pd.Index([str(i) for i in range(n_judgements)], name="judgement_id"),
    )
    participants = pd.DataFrame(index=pd.Index([str(u) for u in range(1, 85)], name="user_id"))
    return keyframes, triplets, judgements, participants, names


def baseline_variant1(
    judgements: pd.DataFrame, triplets: pd.DataFrame, names: list[str]
) -> dict[str, float]:
    scores = {x: [] for x in names}
    for _, j in judgements.iterrows():
        if j["simplified_choice"] == 0:
            continue
        t = triplets.loc[j["triplet_id"]]
        c1_left = j["option_one_path"] == t["candidate1_path"]
        for x in names:
            d1, d2 = t[f"{x}_cosdist_query_candidate1"], t[f"{x}_cosdist_query_candidate2"]
            left, right = (d1, d2) if c1_left else (d2, d1)
            scores[x].append((1 if left > right else -1) == j["simplified_choice"])
    return {x: float(np.mean(v)) for x, v in scores.items()}


@app.command()
def main(bootstrap: int = typer.Option(1000, help="Bootstrap resamples.")) -> None:
    """Time the RESET evaluation at RESET's size on synthetic data, against a row-by-row loop."""
    print("\n".join(describe()))
    rng = np.random.default_rng(0)
    keyframes, triplets, judgements, participants, names = synthetic(rng, 7_000, 17_026, 34)

    vectors = rng.normal(size=(len(keyframes), 1024)).astype(np.float32)
    ids = [k.rsplit(".", 1)[0] for k in keyframes]
    start = time.perf_counter()
    model_distances(triplets, ids, vectors)
    print(f"model_distances, one model, 7,000 triplets: {time.perf_counter() - start:.2f} s")

    start = time.perf_counter()
    result = evaluate(judgements, participants, triplets, names, n_boot=bootstrap)
    seconds = time.perf_counter() - start
    print(
        f"evaluate, 34 extractors, both variants, 3 classes, correlations, "
        f"{bootstrap} resamples: {seconds:.1f} s"
    )
    start = time.perf_counter()
    base = baseline_variant1(judgements, triplets, names)
    print(f"baseline, variant 1 only, iterrows loop: {time.perf_counter() - start:.1f} s")
    same = all(abs(base[x] - result.scores[x]["variant1"]["value"]) < 1e-12 for x in names)
    print(f"baseline and evaluate agree on variant 1: {same}")


if __name__ == "__main__":
    app()
