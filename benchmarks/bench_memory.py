"""Peak memory of the embed stage against the collection size (tiny model, small JPEGs).

    python -m benchmarks.bench_memory --sizes 2000,20000

Runs ``python -m stages.embed_images`` in a scratch project per size and samples the memory
of the stage's process and its worker processes every 50 ms. Embeddings stream to disk chunk
by chunk, so the peak should not grow with the collection beyond the per-image bookkeeping
(ids and paths: about a few hundred bytes an image).
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import psutil
import typer
import yaml
from PIL import Image

from benchmarks.machine import describe
from kisbench import layout
from kisbench.cli import command_line
from kisbench.models.testing.builders import make_tiny_clip

app = command_line()
REPO = Path(__file__).resolve().parents[1]


def make_project(root: Path, n: int, embed: dict) -> None:
    images = root / layout.images_dir("c")
    images.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(n):
        tiny = rng.integers(0, 256, (9, 12, 3), dtype=np.uint8)
        Image.fromarray(tiny).resize((96, 72), Image.Resampling.BICUBIC).save(
            images / f"{i:06d}.jpg", quality=85
        )
    make_tiny_clip(root / layout.TINY_MODELS / "tiny_clip")
    params = {
        "run": {"models": ["tiny_clip"], "collections": ["c"]},
        "models": {
            "tiny_clip": {"family": "open_clip", "model": "local-dir:data/models/tiny_clip"}
        },
        "collections": {"c": {}},
        "embed": {"device": "cpu", **embed},
    }
    (root / "params.yaml").write_text(yaml.safe_dump(params), encoding="utf-8")


def peak_hwm(pid: int) -> int:
    """The process's own peak resident memory so far (VmHWM), bytes."""
    with open(f"/proc/{pid}/status", encoding="utf-8") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return 0


def run_stage(root: Path) -> tuple[float, int, int]:
    """(seconds, peak resident memory of the stage process, peak of the proportional memory
    (PSS: shared pages split between the processes sharing them) summed over it and its
    DataLoader workers)."""
    cmd = [sys.executable, "-m", "stages.embed_images", "--model", "tiny_clip", "--collection", "c"]
    env = {**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1"}
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=root, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    main = psutil.Process(proc.pid)
    own = tree = 0
    while proc.poll() is None:
        try:
            own = max(own, peak_hwm(proc.pid))
            procs = [main, *main.children(recursive=True)]
            tree = max(tree, sum(proc.memory_full_info().pss for proc in procs))
        except (psutil.Error, OSError):
            pass
        time.sleep(0.05)
    _, err = proc.communicate()
    if proc.returncode:
        raise SystemExit(err.decode()[-3000:])
    return time.perf_counter() - start, own, tree


@app.command()
def main(
    sizes: str = typer.Option("2000,20000", help="Collection sizes, comma-separated."),
    batch_size: int = typer.Option(256, help="embed.batch_size"),
    chunk_size: int = typer.Option(4096, help="embed.chunk_size"),
    workers: int = typer.Option(1, help="embed.workers"),
    decode: str = typer.Option("pil", help="embed.decode"),
    workdir: Path = typer.Option(None, help="Scratch folder.", show_default="a temp dir"),
) -> None:
    """Peak memory of the embed stage for each collection size."""
    for line in describe():
        typer.echo(line)
    logging.getLogger().setLevel(logging.ERROR)  # open_clip's notes while making the model
    embed = {"batch_size": batch_size, "chunk_size": chunk_size, "workers": workers}
    embed["decode"] = decode
    typer.echo(f"embed params: {embed}; 96x72 JPEGs, tiny_clip (64 px input)")
    typer.echo(
        f"{'images':>8} {'seconds':>8} {'images/s':>9} {'stage peak MiB':>15} "
        f"{'stage+workers PSS MiB':>22} {'embeddings MiB':>15}"
    )
    for n in [int(s) for s in sizes.split(",")]:
        with tempfile.TemporaryDirectory(dir=workdir) as tmp:
            root = Path(tmp)
            make_project(root, n, embed)
            seconds, own, tree = run_stage(root)
            emb = (root / layout.features_dir("tiny_clip", "c") / "embeddings.npy").stat().st_size
            typer.echo(
                f"{n:>8} {seconds:>8.1f} {n / seconds:>9.1f} {own / 2**20:>15.0f} "
                f"{tree / 2**20:>22.0f} {emb / 2**20:>15.1f}"
            )


if __name__ == "__main__":
    app()
