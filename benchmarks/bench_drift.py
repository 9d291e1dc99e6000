"""How much embeddings move with the hardware path: device, precision, decoding.

    python -m benchmarks.bench_drift --model clip_b32 --random-weights --images 64

The reference is fp32 on the CPU with the model's own Pillow preprocessing (no draft). Each
variant embeds the same images (the demo collection's first N) through the embed stage's
loop; printed per variant: the lowest and median cosine with the reference, and how often
each image's nearest other image (a ranking without any text) stays the same.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import torch
import typer

from benchmarks.bench_embed import build
from benchmarks.machine import describe
from kisbench import layout
from kisbench.cli import command_line
from kisbench.config import load_params
from kisbench.data import store
from kisbench.data.collections import list_images
from kisbench.embedding.extract import embed_images
from kisbench.models import model_entry

app = command_line()


def nearest(v: np.ndarray) -> np.ndarray:
    s = v @ v.T
    np.fill_diagonal(s, -np.inf)
    return s.argmax(axis=1)


@app.command()
def main(
    model: str = typer.Option(..., help="Model key from params.yaml `models`."),
    random_weights: bool = typer.Option(False, help="Full-size architecture, random weights."),
    images: int = typer.Option(64, help="How many images of the collection."),
    collection: str = typer.Option("demo", help="Collection whose images are used."),
    params: Path = typer.Option(Path("params.yaml"), help="Parameters file."),
) -> None:
    """Cosine drift of each device/precision/decoding variant from the fp32 CPU reference."""
    for line in describe():
        typer.echo(line)
    entry = model_entry(load_params(params), model)
    ids, paths = list_images(layout.images_dir(collection))
    ids, paths = ids[:images], paths[:images]
    variants = [("cpu", "fp32", "pil", True), ("cpu", "fp32", "device", True)]
    variants.append(("cpu", "bf16", "pil", False))
    if torch.cuda.is_available():
        variants += [("cuda", "fp32", "pil", False), ("cuda", "fp32", "device", True)]
        variants += [("cuda", "bf16", "device", True), ("cuda", "fp16", "device", True)]
    with tempfile.TemporaryDirectory() as tmp:

        def embed(device: str, precision: str, decode: str, draft: bool) -> np.ndarray:
            m = build(model, entry, random_weights, device, precision)
            out = Path(tmp) / f"{device}-{precision}-{decode}-{draft}"
            embed_images(
                m,
                ids,
                paths,
                out,
                decode=decode,
                draft=draft,
                workers=0,
                batch_size=32,
                progress=False,
            )
            return np.asarray(store.load(out).vectors, dtype=np.float64)

        ref = embed("cpu", "fp32", "pil", False)
        ref_nn = nearest(ref)
        typer.echo(f"{len(ids)} images of {collection}; reference: cpu fp32, Pillow, no draft")
        typer.echo(
            f"{'device':<6} {'dtype':<5} {'decode':<7} {'draft':<5} "
            f"{'min cos':>9} {'median cos':>11} {'same nearest':>13}"
        )
        for variant in variants:
            v = embed(*variant)
            cos = (v * ref).sum(axis=1)
            same = float((nearest(v) == ref_nn).mean())
            device, precision, decode, draft = variant
            typer.echo(
                f"{device:<6} {precision:<5} {decode:<7} {draft!s:<5} "
                f"{cos.min():>9.6f} {np.median(cos):>11.6f} {same:>13.1%}"
            )


if __name__ == "__main__":
    app()
