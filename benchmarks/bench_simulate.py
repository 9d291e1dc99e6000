"""Simulated interactive search speed (kisbench/evaluation/simulation.py, docs/simulation.md).

    python -m benchmarks.bench_simulate --sizes 10000 --queries 100 --repeats 5

Random unit vectors stand in for a model's embeddings (the same vectors for text start and
feedback); queries are their targets plus noise, so that some are found at once and some
late. Per size it prints wall and CPU time and the peak resident memory of the process.
The baseline is somhunter-simulator's way, made fair: numpy, one run at a time (the
Bayesian update vectorised over images, as its ``BayesianRanker``), on the first
``--baseline-queries`` queries; its time per run is scaled to the whole set.
"""

from __future__ import annotations

import resource
from functools import partial

import numpy as np
import torch
import typer

from benchmarks.machine import describe, timed
from kisbench.cli import command_line
from kisbench.devices import resolve_device
from kisbench.evaluation import simulation as sim

app = command_line()


def unit(v: np.ndarray) -> np.ndarray:
    return (v / np.linalg.norm(v, axis=-1, keepdims=True)).astype(np.float32)


def baseline(
    cos: np.ndarray,
    feats: np.ndarray,
    targets: np.ndarray,
    runs: sim.Runs,
    protocol: sim.Protocol,
    scale: float,
    uniforms: np.ndarray,
) -> np.ndarray:
    """One run after the other, as somhunter-simulator's loop (float32 numpy)."""
    found = np.full(len(runs.query), sim.NEVER)
    for r, (q, user) in enumerate(zip(runs.query, runs.user, strict=True)):
        s = np.exp(scale * (cos[q] - cos[q].max())).astype(np.float32)
        t = targets[q]
        for it in range(protocol.rounds + 1):
            display = np.sort(np.argsort(-s, kind="stable")[: protocol.display])
            if t in display:
                found[r] = it
                break
            if it == protocol.rounds:
                break
            c = feats[display] @ feats[t]
            if user == "ideal":
                liked = np.argsort(-c, kind="stable")[: protocol.likes]
            else:
                w = ((1 + c) / 2) ** protocol.p if user == "ransam" else np.ones_like(c)
                cum = np.cumsum(w / w.sum())
                pos = int(np.searchsorted(cum, uniforms[r, it, 0], side="right"))
                liked = [min(pos, len(c) - 1)]
            likes = display[liked]
            others = np.setdiff1d(display, likes)
            e_o = np.exp(-(1 - feats @ feats[others].T) / protocol.sigma).sum(axis=1)
            for like in likes:
                e_l = np.exp(-(1 - feats @ feats[like]) / protocol.sigma)
                s *= e_l / (e_l + e_o)
            s /= max(s.max(), sim.FLOOR)
            s[s < sim.FLOOR] = sim.FLOOR
    return found


def run_all(
    q: np.ndarray,
    images: np.ndarray,
    feedback: torch.Tensor,
    targets: np.ndarray,
    runs: sim.Runs,
    protocol: sim.Protocol,
    uniforms: np.ndarray,
    dev: torch.device,
) -> tuple[np.ndarray, np.ndarray]:
    """What the stage does per model and labelset: text cosines, then every run."""
    cos = sim.text_cosines(q, images, None, dev)
    return sim.simulate(cos, feedback, targets, runs, protocol, 100.0, uniforms)


def peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


@app.command()
def main(
    sizes: str = typer.Option("10000", help="Collection sizes, comma-separated."),
    queries: int = typer.Option(100, help="Number of queries."),
    dim: int = typer.Option(512, help="Embedding dimension."),
    repeats: int = typer.Option(5, help="Simulated users per query of ransam and random."),
    displays: int = typer.Option(10, help="N: displays 0..N."),
    device: str = typer.Option("auto", help="auto, cpu, cuda."),
    baseline_queries: int = typer.Option(
        10, help="Queries (not found at display 0) for the one-run-at-a-time baseline."
    ),
    baseline_max: int = typer.Option(10_000, help="Largest N for the baseline."),
) -> None:
    """Time kisbench.evaluation.simulation.simulate: all users, the issue's protocol."""
    for line in describe():
        typer.echo(line)
    dev = resolve_device(device)
    protocol = sim.Protocol(rounds=displays)
    typer.echo(
        f"queries {queries}, dim {dim}, users {', '.join(sim.USERS)} (ransam and random x "
        f"{repeats}), displays 0..{displays} of {protocol.display}, device {dev}"
    )
    for n in [int(s) for s in sizes.split(",")]:
        rng = np.random.default_rng(n)
        images = np.empty((n, dim), dtype=np.float32)
        for a in range(0, n, 100_000):  # in pieces: the inputs' own peak stays near their size
            images[a : a + 100_000] = unit(rng.standard_normal((min(100_000, n - a), dim)))
        targets = rng.choice(n, queries, replace=False)
        noise = rng.standard_normal((queries, dim), dtype=np.float32)
        q = unit(images[targets] + 7.0 * noise / np.sqrt(dim))
        runs = sim.plan_runs(queries, sim.USERS, repeats)
        uniforms = sim.draws(len(runs.query), displays, 1, 0)
        feedback = torch.from_numpy(images).to(dev)

        before = peak_mib()  # the inputs: images, queries, their float32 copies
        (found, rank), wall, cpu = timed(
            partial(run_all, q, images, feedback, targets, runs, protocol, uniforms, dev),
            sync=True,
        )
        typer.echo(
            f"N = {n:,}: {len(runs.query)} runs in {wall:.2f} s wall, {cpu:.2f} s CPU "
            f"({len(runs.query) / wall:,.0f} runs/s); found at 0: {np.mean(found == 0):.2f}, "
            f"within {displays}: {np.mean(found >= 0):.2f}, text R@64 {np.mean(rank <= 64):.2f}; "
            f"peak memory {before:,.0f} MiB before (inputs), {peak_mib():,.0f} MiB after"
        )
        if n <= baseline_max and baseline_queries:
            # Queries whose target is not on display 0: where the feedback rounds, and so
            # the work, are (the baseline's cost is one update per round not found).
            hard = np.flatnonzero(rank > protocol.display)[:baseline_queries]
            few = np.flatnonzero(np.isin(runs.query, hard))
            sub = sim.Runs(runs.query[few], [runs.user[i] for i in few], runs.repeat[few])
            cos_np = q @ images.T
            ref, b_wall, _ = timed(
                partial(baseline, cos_np, images, targets, sub, protocol, 100.0, uniforms[few])
            )
            same = int((ref == found[few]).sum())
            updates = np.where(found >= 0, found, displays)
            scaled = b_wall * updates.sum() / max(updates[few].sum(), 1)
            typer.echo(
                f"  baseline, one run at a time (numpy): {len(few)} runs of {len(hard)} queries "
                f"not found at 0 ({updates[few].sum()} updates) in {b_wall:.2f} s; scaled to "
                f"the {updates.sum()} updates of all runs, {scaled:.1f} s for all "
                f"{len(runs.query)} runs ({scaled / wall:.1f}x the vectorised time); same "
                f"found-at display in {same} of {len(few)} runs"
            )


if __name__ == "__main__":
    app()
