"""`kisbench check` on a generated collection: header reads and exact-duplicate hashing,
and the near-duplicate pass, timed apart.

    python -m benchmarks.bench_check --images 10000

Generates N distinct JPEGs of varying sizes (and a labels file for 100 of them) in a
temporary folder laid out like the repository (``--keep DIR`` keeps and reuses it), then
times, in this one process: the baseline (reading every file's bytes, nothing else), the
check with ``--no-near`` (header reads + sha256), and the near-duplicate pass alone; then
``kisbench check --no-near`` and ``kisbench check`` as a user runs them. The files are
read from the page cache after the first pass (a cold disk adds its read time).
The check is single-threaded, so the number of cores does not matter.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import typer
import yaml
from PIL import Image
from tqdm import tqdm

from benchmarks.machine import describe, timed
from kisbench.cli import command_line
from kisbench.data import duplicates
from kisbench.data.checks import check_collection

app = command_line()
SIZES = [(320, 240), (640, 480), (800, 600), (1024, 768), (1280, 720), (1920, 1080)]


def make_images(folder: Path, n: int, seed: int) -> int:
    """n distinct smooth pictures as JPEG, sizes cycling through SIZES; returns the bytes."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    total = 0
    for i in tqdm(range(n), desc="generating", unit="img"):
        path = folder / f"{i:05d}.jpg"
        if not path.is_file():
            w, h = SIZES[i % len(SIZES)]
            small = rng.integers(0, 256, size=(6, 8, 3), dtype=np.uint8)
            im = Image.fromarray(small).resize((w, h), Image.Resampling.BICUBIC)
            buf = io.BytesIO()
            im.save(buf, "JPEG", quality=85)
            path.write_bytes(buf.getvalue())
        total += path.stat().st_size
    return total


@app.command()
def main(
    images: int = typer.Option(10_000, help="Images to generate."),
    keep: Path = typer.Option(None, help="Generate into (and reuse) this folder."),
    seed: int = typer.Option(0, help="Seed of the generated pictures."),
) -> None:
    """Time the check's header reads and its near-duplicate pass on generated JPEGs."""
    for line in describe():
        typer.echo(line)
    root = Path(keep) if keep else Path(tempfile.mkdtemp(prefix="bench_check_"))
    folder = root / "data" / "collections" / "bench" / "images"
    size = make_images(folder, images, seed)
    labels = root / "labels" / "bench.csv"
    labels.parent.mkdir(parents=True, exist_ok=True)
    labels.write_text(
        "ID,short_label,long_label\n" + "".join(f"{i:05d},s{i},l{i}\n" for i in range(100)),
        encoding="utf-8",
    )
    typer.echo(f"{images} JPEGs, {size / 2**20:.0f} MiB, in {folder}; cores: {os.cpu_count()}")
    paths = sorted(folder.glob("*.jpg"))
    _, wall, _ = timed(lambda: sum(len(p.read_bytes()) for p in paths))
    typer.echo(f"baseline, read every file: {wall:.1f} s")
    report, wall, cpu = timed(
        lambda: check_collection("bench", folder, labels, skip_unreadable=False, near=False)
    )
    typer.echo(
        f"check --no-near (headers + sha256 + labels): {wall:.1f} s wall, {cpu:.1f} s CPU, "
        f"{len(report.problems)} problem(s)"
    )
    hashes, wall, cpu = timed(lambda: [duplicates.perceptual_hash(p) for p in paths])
    typer.echo(f"near-duplicate hashes: {wall:.1f} s wall, {cpu:.1f} s CPU")
    groups, wall, _ = timed(lambda: duplicates.near_groups([p.stem for p in paths], hashes))
    typer.echo(f"near-duplicate grouping (all pairs): {wall:.1f} s, {len(groups)} group(s)")
    # The command as a user runs it (a fresh process: imports, params, then the checks).
    params = {"run": {"models": ["m"], "collections": ["bench"]}, "collections": {}}
    params["models"] = {"m": {"family": "open_clip", "model": "x"}}
    (root / "params.yaml").write_text(yaml.safe_dump(params), encoding="utf-8")
    kisbench = str(Path(sys.executable).parent / "kisbench")
    for extra in (["--no-near"], []):
        _, wall, _ = timed(
            lambda extra=extra: subprocess.run(
                [kisbench, "check", *extra], cwd=root, check=True, capture_output=True
            )
        )
        typer.echo(f"`{' '.join(['kisbench check', *extra])}`: {wall:.1f} s")


if __name__ == "__main__":
    app()
