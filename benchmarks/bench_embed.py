"""Embedding speed of one model: end to end, model only, and the thesis-style baseline.

    python -m benchmarks.bench_embed --model clip_b32 --random-weights --images 2048

N generated 1280x720 JPEGs. In one run it prints:
- model only: images/s on preloaded input tensors already on the device (the upper bound);
- end to end: images/s of the embed stage's loop (kisbench.embedding.extract.embed_images) with the
  params.yaml ``embed`` settings (or the options given here), files to embeddings on disk;
- their ratio;
- the thesis-style baseline: Pillow in the main process, fp32, batch 100, no draft;
- on a CPU, each image's CPU time in the model and in the input pipeline, and the ratio
  that bounds end to end / model only when both share the cores.
Each figure is measured ``--repeats`` times (3), taking turns; the medians are reported.

``--random-weights`` builds the full-size architecture of an open_clip params entry without
pretrained weights (same compute as the real model, no download).
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import open_clip
import torch
import typer
from PIL import Image

from benchmarks.machine import describe, timed
from kisbench.cli import command_line
from kisbench.config import load_params
from kisbench.data.collections import list_images
from kisbench.devices import resolve_device, resolve_precision
from kisbench.embedding.extract import EmbedOptions, embed_images
from kisbench.models import ModelSpec, load_model, model_entry
from kisbench.models.base import EmbeddingModel
from kisbench.models.openclip import OpenClipModel

app = command_line()


class RandomOpenClip(OpenClipModel):
    """An open_clip entry's architecture with random weights (the real model's compute, no
    download): the adapter's own image path, without its weights, tokenizer or hub lookups.
    Images only."""

    def __init__(self, spec: ModelSpec, device: str, precision: str) -> None:
        self.spec = spec
        name = str(spec.args["model"]).removeprefix("hf-hub:timm/")
        if name not in open_clip.list_models():
            raise typer.BadParameter(f"{spec.args['model']!r} is not an open_clip architecture")
        self.device = resolve_device(device)
        self.dtype = resolve_precision(precision, self.device)
        torch.manual_seed(0)
        model, _, self._transform = open_clip.create_model_and_transforms(name, pretrained=None)
        self.model = model.eval().to(self.device, dtype=self.dtype)
        self.name = name

    def encode_texts(self, texts: Sequence[str]) -> np.ndarray:
        raise NotImplementedError("image timing only")

    def truncated(self, texts: Sequence[str]) -> list[bool]:
        raise NotImplementedError("image timing only")

    def provenance(self) -> dict[str, Any]:
        return {
            "key": self.spec.key,
            "architecture": self.name,
            "weights": "random",
            "dtype": str(self.dtype),
            "device": str(self.device),
        }


def make_jpegs(folder: Path, n: int, width: int, height: int) -> None:
    """n photo-like JPEGs (smooth colour fields with noise, quality 90)."""
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        a, b, c = rng.uniform(0.5, 6, 3)
        base = np.stack(
            [np.sin(a * x / width + i), np.cos(b * y / height), np.sin(c * (x + y) / width)], -1
        )
        noise = rng.normal(0, 12, (height // 8, width // 8, 3)).repeat(8, 0).repeat(8, 1)
        pic = np.clip(127 + 100 * base + noise, 0, 255).astype(np.uint8)
        Image.fromarray(pic).save(folder / f"{i:06d}.jpg", quality=90)


def build(
    key: str, entry: dict[str, Any], random_weights: bool, device: str, precision: str
) -> EmbeddingModel:
    if random_weights:
        if entry.get("family") != "open_clip":
            raise typer.BadParameter("--random-weights supports open_clip entries only")
        return RandomOpenClip(ModelSpec.from_params(key, entry), device, precision)
    return load_model(key, entry, device=device, precision=precision)


class PipelineOnly:
    """The model with its compute taken out: times reading, decoding and preprocessing."""

    def __init__(self, inner: EmbeddingModel) -> None:
        self.inner = inner

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def encode_images(self, pixels: torch.Tensor) -> np.ndarray:
        if pixels.is_cuda:
            torch.cuda.current_stream(pixels.device).synchronize()
        return np.zeros((len(pixels), 1), dtype=np.float32)


def model_only(model: EmbeddingModel, n: int, batch: int) -> tuple[float, float]:
    """Images/s of encode_images on random input already on the device, after warm-up."""
    spec = model.pixel_spec()
    h, w = (spec.height, spec.width) if spec else (224, 224)
    dev = getattr(model, "device", torch.device("cpu"))
    batch = min(batch, n)
    x = torch.randn(batch, 3, h, w, device=dev).to(getattr(model, "dtype", torch.float32))
    model.encode_images(x)  # warm-up: kernels chosen, memory allocated
    batches = -(-n // batch)
    _, wall, cpu = timed(lambda: [model.encode_images(x) for _ in range(batches)], sync=True)
    return batches * batch / wall, cpu


def bench_model(
    key: str,
    entry: dict[str, Any],
    random_weights: bool,
    device: str,
    precision: str,
    options: EmbedOptions,
    paths: list[Path],
    ids: list[str],
    tmp: Path,
    baseline: bool,
    repeats: int = 1,
) -> tuple[float, float | None]:
    """Print one model's figures; return (end-to-end seconds, baseline seconds), medians.

    With ``repeats`` > 1 the measurements take turns (model only, end to end, pipeline,
    baseline, then again), so that a slow spell of a shared machine falls on all of them,
    and the medians are compared."""
    n = len(ids)
    m = build(key, entry, random_weights, device, precision)
    typer.echo(
        f"== {key} ({'random weights' if random_weights else 'pretrained'}), device "
        f"{getattr(m, 'device', 'cpu')}, dtype {getattr(m, 'dtype', '?')}, input {m.pixel_spec()}"
    )
    fp32 = None
    if baseline:
        same = getattr(m, "dtype", None) == torch.float32
        fp32 = m if same else build(key, entry, random_weights, device, "fp32")
    thesis = replace(options, batch_size=100, workers=0, decode="pil", draft=False)
    out = tmp / "out"
    got: dict[str, list[float]] = {k: [] for k in ("only", "only_cpu", "wall", "io", "io_cpu")}
    got["base"] = []
    meta: dict[str, Any] = {}
    for turn in range(repeats):
        only, only_cpu = model_only(m, n, options.batch_size)
        shutil.rmtree(out, ignore_errors=True)
        run = partial(embed_images, m, ids, paths, out, partial=tmp / "partial", options=options)
        meta, wall, cpu = timed(partial(run, progress=False), sync=True)
        shutil.rmtree(out)
        run = partial(embed_images, PipelineOnly(m), ids, paths, out, partial=tmp / "partial2")
        _, wall_io, cpu_io = timed(partial(run, options=options, progress=False), sync=True)
        shutil.rmtree(out)
        line = (
            f"[{turn + 1}/{repeats}] model only {only:.1f}, end to end {n / wall:.1f} "
            f"({n / wall / only:.1%}), input pipeline alone {n / wall_io:.1f}"
        )
        if fp32 is not None:
            run = partial(embed_images, fp32, ids, paths, out, partial=tmp / "p3", options=thesis)
            _, base_wall, _ = timed(partial(run, progress=False), sync=True)
            shutil.rmtree(out)
            got["base"].append(base_wall)
            line += f", baseline {n / base_wall:.1f}"
        typer.echo(line + " images/s; main process CPU " + f"{cpu:.1f} s")
        figures = {"only": only, "only_cpu": only_cpu, "wall": wall, "io": wall_io}
        for name, v in {**figures, "io_cpu": cpu_io}.items():
            got[name].append(v)
    med = {name: float(np.median(v)) for name, v in got.items() if v}
    only, wall = med["only"], med["wall"]
    e2e = n / wall
    typer.echo(f"model only:  {only:10.1f} images/s  (batch {min(options.batch_size, n)})")
    typer.echo(
        f"end to end:  {e2e:10.1f} images/s  (decode {meta['decode']}, draft "
        f"{f'gap {options.draft_gap:g}' if options.draft else 'off'}, batch "
        f"{options.batch_size}, workers {meta['workers']}, chunk {options.chunk_size}, "
        f"wall {wall:.1f} s)"
    )
    typer.echo(f"end to end / model only: {e2e / only:.1%}")
    typer.echo(f"input pipeline alone (no model): {n / med['io']:10.1f} images/s")
    if str(getattr(m, "device", "cpu")) == "cpu" and meta["decode"] == "pil":
        # On a CPU the model and the decoding share the cores: with all of them busy all the
        # time, end to end is at best model CPU / (model CPU + decoding CPU).
        per_model = med["only_cpu"] / (-(-n // options.batch_size) * min(options.batch_size, n))
        per_io = med["io_cpu"] / n
        typer.echo(
            f"CPU time per image: model {1000 * per_model:.1f} ms, input pipeline "
            f"{1000 * per_io:.1f} ms; with every core busy end to end reaches at most "
            f"{per_model / (per_model + per_io):.1%} of model only"
        )
    if fp32 is None:
        return wall, None
    base_wall = med["base"]
    typer.echo(
        f"thesis-style baseline (Pillow in the main process, fp32, batch 100, no draft): "
        f"{n / base_wall:.1f} images/s; end to end is {base_wall / wall:.2f}x faster"
    )
    return wall, base_wall


@app.command()
def main(
    model: list[str] = typer.Option(
        ..., metavar="KEY", help="Model key(s) from params.yaml; repeat for a sweep."
    ),
    random_weights: bool = typer.Option(False, help="Full-size architecture, random weights."),
    images: int = typer.Option(2048, help="Number of generated JPEGs."),
    size: str = typer.Option("1280x720", help="JPEG size, WIDTHxHEIGHT."),
    params: Path = typer.Option(Path("params.yaml"), help="Parameters file (embed section)."),
    device: str = typer.Option(None, help="Overrides embed.device."),
    precision: str = typer.Option(None, help="Overrides embed.precision."),
    batch_size: int = typer.Option(None, help="Overrides embed.batch_size."),
    workers: int = typer.Option(None, help="Overrides embed.workers."),
    decode: str = typer.Option(None, help="Overrides embed.decode (auto, device, pil)."),
    draft_gap: float = typer.Option(None, help="Overrides embed.draft_gap."),
    baseline: bool = typer.Option(True, help="Also time the thesis-style baseline."),
    repeats: int = typer.Option(
        3, min=1, help="Measurements of each figure, taking turns; medians are reported."
    ),
    workdir: Path = typer.Option(None, help="Folder for the JPEGs.", show_default="a temp dir"),
) -> None:
    """Time each model: model only, end to end, thesis-style baseline; then the sweep."""
    for line in describe():
        typer.echo(line)
    p = load_params(params)
    device = device or p.embed.device
    precision = precision or p.embed.precision
    overrides = {
        "batch_size": batch_size,
        "workers": workers,
        "decode": decode,
        "draft_gap": draft_gap,
    }
    given = {k: v for k, v in overrides.items() if v is not None}
    options = replace(EmbedOptions.from_params(p.embed), **given).checked()
    width, height = (int(v) for v in size.lower().split("x"))
    tmp = Path(tempfile.mkdtemp(dir=workdir))
    totals = []
    try:
        folder = tmp / "images"
        _, made, _ = timed(partial(make_jpegs, folder, images, width, height))
        ids, paths = list_images(folder)
        mb = sum(path.stat().st_size for path in paths) / 2**20
        typer.echo(f"{images} JPEGs of {width}x{height} ({mb:.0f} MiB), made in {made:.1f} s")
        for key in model:
            entry = model_entry(p, key)
            args = (key, entry, random_weights, device, precision, options, paths, ids, tmp)
            totals.append(bench_model(*args, baseline=baseline, repeats=repeats))
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if len(totals) > 1:
        fast = sum(t for t, _ in totals)
        typer.echo(f"sweep of {len(totals)} models: end to end {fast:.1f} s in all")
        if baseline:
            slow = sum(b for _, b in totals if b is not None)
            typer.echo(
                f"sweep baseline {slow:.1f} s in all: end to end is {slow / fast:.1f}x faster"
            )


if __name__ == "__main__":
    app()
