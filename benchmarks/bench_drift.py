"""How much embeddings move with the hardware path: device, precision, decoding.

    python -m benchmarks.bench_drift --model clip_b32 --random-weights --images 64

The reference is fp32 on the CPU with the model's own Pillow preprocessing (no draft). Each
variant embeds the same images (the demo collection's first N) through the embed stage's
loop; printed per variant: the lowest and median cosine with the reference, how often
each image's nearest other image (a ranking without any text) stays the same, and for the
Pillow variants how far the model input itself moves (mean and largest absolute difference,
in grey levels of 0-255).
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

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
from kisbench.embedding.loaders import pil_batches
from kisbench.models import model_entry
from kisbench.models.pixels import spec_from_transform

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
    # (device, precision, decode, draft gap or None for no draft)
    variants: list[tuple[str, str, str, float | None]] = [
        ("cpu", "fp32", "pil", 2.0),
        ("cpu", "fp32", "pil", 1.0),
        ("cpu", "fp32", "device", None),
        ("cpu", "bf16", "pil", None),
    ]
    if torch.cuda.is_available():
        variants += [("cuda", "fp32", "pil", None), ("cuda", "fp32", "device", None)]
        variants += [("cuda", "bf16", "device", None), ("cuda", "fp16", "device", None)]
    with tempfile.TemporaryDirectory() as tmp:

        def embed(device: str, precision: str, decode: str, gap: float | None) -> np.ndarray:
            m = build(model, entry, random_weights, device, precision)
            out = Path(tmp) / f"{device}-{precision}-{decode}-{gap}"
            embed_images(
                m,
                ids,
                paths,
                out,
                decode=decode,
                draft=gap is not None,
                draft_gap=gap or 2.0,
                workers=0,
                batch_size=32,
                progress=False,
            )
            return np.asarray(store.load(out).vectors, dtype=np.float64)

        ref = embed("cpu", "fp32", "pil", None)
        ref_nn = nearest(ref)
        transform = build(model, entry, random_weights, "cpu", "fp32").image_transform
        ref_px = model_input(paths, transform, None)
        typer.echo(f"{len(ids)} images of {collection}; reference: cpu fp32, Pillow, no draft")
        typer.echo(
            f"{'device':<6} {'dtype':<5} {'decode':<7} {'draft':<8} {'min cos':>9} "
            f"{'median cos':>11} {'same nearest':>13} {'input |diff| mean/max':>22}"
        )
        for variant in variants:
            v = embed(*variant)
            cos = (v * ref).sum(axis=1)
            same = float((nearest(v) == ref_nn).mean())
            device, precision, decode, gap = variant
            moved = "-"
            if decode == "pil":
                diff = (model_input(paths, transform, gap) - ref_px).abs()
                moved = f"{diff.mean():.3f} / {diff.max():.0f}"
            draft = "no" if gap is None else f"gap {gap:g}"
            typer.echo(
                f"{device:<6} {precision:<5} {decode:<7} {draft:<8} {cos.min():>9.6f} "
                f"{np.median(cos):>11.6f} {same:>13.1%} {moved:>22}"
            )


def model_input(paths: list[Path], transform: Any, gap: float | None) -> torch.Tensor:
    """The Pillow path's model input for every image, in grey levels (0-255 per channel)."""
    spec = spec_from_transform(transform)
    draft = spec.draft_size(gap) if (spec is not None and gap is not None) else None
    plan = [list(range(len(paths)))]
    (batch,) = pil_batches(paths, plan, transform, workers=0, draft=draft)
    assert batch.pixels is not None and spec is not None
    std = torch.tensor(spec.std).view(1, 3, 1, 1)
    return batch.pixels * std * 255


if __name__ == "__main__":
    app()
