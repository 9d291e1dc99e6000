"""Ranking speed: Q queries against collections of N random unit vectors.

    python -m benchmarks.bench_rank --sizes 10000,100000,1000000 --dim 512

Images are written to a ``.npy`` file and memory-mapped, as the rank stage reads them. On a
GPU it times both the stage's way (images moved to the GPU once, then ranked from there)
and streaming them from the memory map per call. The baseline (collections up to 100,000)
is the thesis' method made generous: the whole score matrix, then a full sort per query.
"""

from __future__ import annotations

import statistics
import tempfile
from functools import partial
from pathlib import Path

import numpy as np
import torch
import typer

from benchmarks.machine import describe, timed
from kisbench.cli import command_line
from kisbench.devices import resolve_device
from kisbench.evaluation.ranking import TIE_EPS, on_device, rank_targets

app = command_line()


def unit_vectors(rng: np.random.Generator, n: int, d: int) -> np.ndarray:
    v = rng.standard_normal((n, d), dtype=np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def write_images(path: Path, n: int, d: int, dtype: str, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    out = np.lib.format.open_memmap(path, mode="w+", dtype=dtype, shape=(n, d))
    for start in range(0, n, 100_000):
        out[start : start + 100_000] = unit_vectors(rng, min(100_000, n - start), d)
    out.flush()
    del out
    return np.load(path, mmap_mode="r")


def baseline_ranks(queries: np.ndarray, images: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """The thesis' way, vectorised: every score, a full sort per query, the target's place."""
    scores = queries @ np.asarray(images, dtype=np.float32).T
    order = np.argsort(-scores, axis=1, kind="stable")
    return np.array([int(np.nonzero(order[m] == t)[0][0]) + 1 for m, t in enumerate(targets)])


def policy_ranks(
    queries: np.ndarray, images: np.ndarray, targets: np.ndarray, slack: float
) -> tuple[np.ndarray, np.ndarray]:
    """The documented tie policy on the full score matrix (a check, not timed), with the
    threshold moved by -/+ ``slack``: the ranks any float32 round-off could give."""
    scores = queries @ np.asarray(images, dtype=np.float32).T
    own = (scores[np.arange(len(targets)), targets] - TIE_EPS)[:, None]
    return (scores >= own + slack).sum(axis=1), (scores >= own - slack).sum(axis=1)


def report(label: str, walls: list[float], cpus: list[float], m: int, n: int, d: int) -> None:
    best = min(walls)
    typer.echo(
        f"  {label:<34} best {best:8.3f} s  median {statistics.median(walls):8.3f} s  "
        f"CPU {min(cpus):8.3f} s  {m * n / best / 1e6:9.1f} M scores/s  "
        f"{2 * m * n * d / best / 1e9:7.1f} GFLOP/s"
    )


def bench_size(
    q: np.ndarray, images: np.ndarray, dev: str, repeat: int, top_k: int, baseline: bool
) -> None:
    m, (n, d) = len(q), images.shape
    targets = np.random.default_rng(n).integers(0, n, m)
    rank = partial(rank_targets, q, targets=targets, top_k=top_k, device=dev)
    runs = [timed(partial(rank, images), sync=True) for _ in range(repeat)]
    report("rank_targets (memory map)", [r[1] for r in runs], [r[2] for r in runs], m, n, d)
    if dev.startswith("cuda"):
        resident, load_s, _ = timed(partial(on_device, images, dev), sync=True)
        typer.echo(f"  images to the GPU once (on_device): {load_s:.3f} s")
        if isinstance(resident, torch.Tensor):
            runs = [timed(partial(rank, resident), sync=True) for _ in range(repeat)]
            report(
                "rank_targets (images on the GPU)",
                [r[1] for r in runs],
                [r[2] for r in runs],
                m,
                n,
                d,
            )
        del resident
        torch.cuda.empty_cache()
    if baseline:
        ranks, wall, cpu = timed(partial(baseline_ranks, q, images, targets))
        report("baseline: full sort per query", [wall], [cpu], m, n, d)
        fast = rank(images).ranks
        low, high = policy_ranks(q, images, targets, slack=5e-7)
        inside = bool(((low <= fast) & (fast <= high)).all())
        same = int((fast == ranks).sum())
        typer.echo(
            f"  check: every rank within the tie policy's ranks on the full score matrix "
            f"(threshold +/- 5e-7 for round-off): {inside}; equal to the sort's position: "
            f"{same} of {m} (the others have near-ties within {TIE_EPS:g}, counted as ahead)"
        )


@app.command()
def main(
    queries: int = typer.Option(600, help="Number of queries."),
    sizes: str = typer.Option("10000,100000,1000000", help="Collection sizes, comma-separated."),
    dim: int = typer.Option(512, help="Embedding dimension."),
    store: str = typer.Option("float32", help="dtype of the stored images (float32, float16)."),
    device: str = typer.Option("auto", help="auto, cpu, cuda."),
    repeat: int = typer.Option(3, help="Timed runs per size (best and median printed)."),
    top_k: int = typer.Option(10, help="Best image ids kept per query."),
    baseline_max: int = typer.Option(100_000, help="Largest N for the full-sort baseline."),
    workdir: Path = typer.Option(
        None, help="Folder for the image files.", show_default="a temp dir"
    ),
) -> None:
    """Time rank_targets (one matrix product per chunk, ranks from counts)."""
    for line in describe():
        typer.echo(line)
    dev = str(resolve_device(device))
    typer.echo(f"queries {queries}, dim {dim}, store {store}, device {dev}, top_k {top_k}")
    q = unit_vectors(np.random.default_rng(0), queries, dim)
    with tempfile.TemporaryDirectory(dir=workdir) as tmp:
        for n in [int(s) for s in sizes.split(",")]:
            path = Path(tmp) / f"images-{n}.npy"
            images = write_images(path, n, dim, store, seed=n)
            typer.echo(f"N = {n:,} images ({images.nbytes / 2**20:,.0f} MiB on disk)")
            bench_size(q, images, dev, repeat, top_k, baseline=n <= baseline_max)
            del images
            path.unlink()


if __name__ == "__main__":
    app()
