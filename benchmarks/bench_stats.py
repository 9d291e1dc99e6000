"""Benchmark: the evaluate stage's statistics per graph, at 1,000 and 10,000 resamples.

One graph = one collection and labelset: every model's metrics with their intervals and the
exact test against chance, the paired tests of the top 5 models, the labelset gains and the
leaderboard, on synthetic ranks (no files, no model). Prints seconds per graph.

    python -m benchmarks.bench_stats                       # 5 models, 100 queries, 10,000 images
    python -m benchmarks.bench_stats --models 20 --queries 500
"""

from __future__ import annotations

import time

import numpy as np
import typer

from benchmarks import machine
from kisbench.cli import command_line
from kisbench.evaluation.evaluate import RankSet, compare, evaluate, leaderboards

app = command_line()


@app.command()
def main(
    models: int = typer.Option(5, help="Models per graph."),
    queries: int = typer.Option(100, help="Queries per graph."),
    images: int = typer.Option(10000, help="Collection size N."),
    resamples: list[int] = typer.Option([1000, 10000], help="Bootstrap resamples to time."),
) -> None:
    """Time evaluate's statistics for one graph (two labelsets, so the gains run too)."""
    for line in machine.describe():
        typer.echo(line)
    rng = np.random.default_rng(0)
    ids = tuple(f"q{i}" for i in range(queries))
    sets = [
        RankSet(
            f"m{i}",
            "c",
            labelset,
            rng.integers(1, images // (i + 1) + 2, queries),
            images,
            None,
            ids,
        )
        for i in range(models)
        for labelset in ("short", "long")
    ]
    for n_boot in resamples:
        start = time.perf_counter()
        evaluate(sets, n_boot=n_boot)
        metrics = time.perf_counter()
        compare(sets, n_boot=n_boot, top_n=5)
        pairs = time.perf_counter()
        leaderboards(sets, n_boot=n_boot)
        board = time.perf_counter()
        typer.echo(
            f"{n_boot:>6} resamples, per graph of {models} models x {queries} queries: "
            f"metrics {(metrics - start) / 2:.2f} s, pairs + gains {(pairs - metrics) / 2:.2f} s, "
            f"leaderboard {(board - pairs) / 2:.2f} s, total {(board - start) / 2:.2f} s"
        )


if __name__ == "__main__":
    app()
