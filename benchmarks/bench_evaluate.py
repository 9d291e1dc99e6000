"""Benchmark: the evaluate, fusion and render stages on synthetic data at thesis scale.

10 models x 3 collections x 2 labelsets x 100 queries x 10,000 images (the defaults):
synthetic unit-vector embeddings with a per-model signal strength, ranks from the real
ranking code, tiny images for the qualitative figures. Only the three stage commands are
timed, each as the subprocess DVC would run (Python start-up and imports included).

    python -m benchmarks.bench_evaluate            # target: under 60 s in all
    python -m benchmarks.bench_evaluate --models 4 --images 2000   # quicker
"""

from __future__ import annotations

import os
import platform
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import typer
import yaml
from PIL import Image

from kisbench import files, layout
from kisbench.cli import command_line
from kisbench.data import store
from kisbench.evaluation.layout import RANKS_INFO, ranks_dir
from kisbench.evaluation.ranking import rank_table

ROOT = Path(__file__).resolve().parents[1]

app = command_line()


def unit(a: np.ndarray) -> np.ndarray:
    return (a / np.linalg.norm(a, axis=-1, keepdims=True)).astype(np.float32)


def make_project(
    root: Path, models: int, collections: int, queries: int, images: int, dim: int
) -> dict:
    """A project folder with params, labels, images, embeddings and ranks."""
    rng = np.random.default_rng(0)
    names = [f"m{i}" for i in range(models)]
    colls = [f"c{i}" for i in range(collections)]
    params = {
        "run": {"models": names, "collections": colls},
        "models": {m: {"family": "open_clip", "model": "synthetic"} for m in names},
        "collections": {c: {"xmax": 500} for c in colls},
        "evaluate": {"headline": "mrr", "bootstrap": 1000, "seed": 0, "top_models": 5},
        "fusion": {"methods": ["rrf", "zscore", "minmax"], "rrf_k": 60, "device": "cpu"},
        "render": {"examples": 3, "example_ids": [], "top_images": 5},
    }
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    for c in colls:
        ids = [f"{i:05d}" for i in range(images)]
        folder = root / layout.images_dir(c)
        folder.mkdir(parents=True)
        for i, image_id in enumerate(ids):
            colour = tuple(int(v) for v in rng.integers(0, 256, 3))
            Image.new("RGB", (24, 16 + i % 8), colour).save(folder / f"{image_id}.png")
        targets = sorted(rng.choice(images, size=queries, replace=False).tolist())
        labels = pd.DataFrame(
            {
                "ID": [ids[t] for t in targets],
                "short_label": [f"short query {t}" for t in targets],
                "long_label": [f"a longer description of image {t}, " * 3 for t in targets],
            }
        )
        (root / "labels").mkdir(exist_ok=True)
        labels.to_csv(root / layout.labels_path(c), index=False)
        base = rng.normal(size=(images, dim))
        for k, m in enumerate(names):
            # Each model sees the images through its own random rotation-like noise, and
            # its queries carry a model-specific share of the target's signal.
            feats = unit(base + 0.6 * rng.normal(size=base.shape))
            store.save(root / layout.features_dir(m, c), ids, feats, {"synthetic": True})
            out = root / ranks_dir(m, c)
            out.mkdir(parents=True)
            info = {"images": images, "truncated": {}}
            for j, labelset in enumerate(["short", "long"]):
                # Signal per query: better models and long labels carry more of the target;
                # the spread puts targets anywhere from rank 1 to the thousands.
                signal = (0.08 + 0.012 * k + 0.03 * j) * rng.uniform(0.3, 1.7, size=(queries, 1))
                q = unit(signal * base[targets] + rng.normal(size=(queries, dim)))
                qdir = root / layout.queries_dir(m, c) / labelset
                store.save(qdir, labels["ID"].tolist(), q, {"synthetic": True})
                table = rank_table(feats, ids, q, labels["ID"].tolist(), labelset)
                table.to_csv(out / f"{labelset}.csv", index=False)
                info["truncated"][labelset] = 0
            files.write_json(out / RANKS_INFO, info)
    return params


def machine() -> str:
    cpu = platform.processor() or "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    load = os.getloadavg() if hasattr(os, "getloadavg") else ("?",)
    return (
        f"{cpu}, {usable} usable cores, load average {load[0]:.2f} (at start), "
        f"Python {platform.python_version()}, numpy {np.__version__}, {platform.system()}"
    )


@app.command()
def main(
    models: int = typer.Option(10, help="Number of models."),
    collections: int = typer.Option(3, help="Number of collections."),
    queries: int = typer.Option(100, help="Queries per labelset."),
    images: int = typer.Option(10_000, help="Images per collection."),
    dim: int = typer.Option(512, help="Embedding dimension."),
    keep: Path = typer.Option(None, help="Build the project here and keep it (for a look)."),
) -> None:
    """Time the evaluate, fusion and render stages on a synthetic project."""
    typer.echo(f"machine: {machine()}")
    typer.echo(f"command: {shlex.join([Path(sys.executable).name, *sys.argv])}")
    tmp = None
    if keep is None:
        tmp = tempfile.TemporaryDirectory(prefix="kisbench-bench-")
        root = Path(tmp.name)
    else:
        root = keep.resolve()
        root.mkdir(parents=True, exist_ok=False)
    start = time.perf_counter()
    make_project(root, models, collections, queries, images, dim)
    typer.echo(
        f"data: {models} models x {collections} collections x 2 labelsets x {queries} queries "
        f"x {images} images, dim {dim} (built in {time.perf_counter() - start:.0f} s, not timed)"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1"}
    timings = {}
    for stage in ("evaluate", "fusion", "render"):
        start = time.perf_counter()
        cpu0 = os.times()
        proc = subprocess.run(
            [sys.executable, "-m", f"stages.{stage}"], cwd=root, env=env, capture_output=True
        )
        cpu1 = os.times()
        timings[stage] = time.perf_counter() - start
        if proc.returncode:
            typer.echo(proc.stderr.decode()[-3000:], err=True)
            raise typer.Exit(1)
        cpu = (cpu1.children_user - cpu0.children_user) + (
            cpu1.children_system - cpu0.children_system
        )
        typer.echo(f"  {stage:<9} {timings[stage]:6.1f} s wall, {cpu:6.1f} s CPU")
    total = sum(timings.values())
    verdict = "under" if total < 60 else "OVER"
    typer.echo(f"total: {total:.1f} s wall ({verdict} the 60 s target)")
    if tmp is not None:
        tmp.cleanup()


if __name__ == "__main__":
    app()
