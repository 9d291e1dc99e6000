"""Model metadata (kisbench/models/metadata.py) of full-size open_clip architectures with
random weights: the same measurement as the embed stage records in meta.json, without a
download, to compare its GFLOPs with open_clip's published model profile.

    python -m benchmarks.model_metadata ViT-B-32 ViT-B-16 ViT-L-14

Prints one line per architecture: image size, embedding size, parameters (image / text /
total), image-encoder GFLOPs (multiply-adds), and the seconds the measurement took.
"""

from __future__ import annotations

import time

import open_clip
import torch
import typer

from kisbench.cli import command_line
from kisbench.devices import resolve_device, resolve_precision
from kisbench.models import ModelSpec
from kisbench.models.openclip import OpenClipModel

app = command_line()


class RandomArchitecture(OpenClipModel):
    """An open_clip architecture with random weights and its own tokenizer, through the
    adapter's metadata path."""

    def __init__(self, name: str) -> None:
        self.spec = ModelSpec.from_params(name.lower().replace("-", "_"), {
            "family": "open_clip", "model": name,
        })  # fmt: skip
        self.device = resolve_device("cpu")
        self.dtype = resolve_precision("fp32", self.device)
        torch.manual_seed(0)
        model, _, self._transform = open_clip.create_model_and_transforms(name, pretrained=None)
        self.model = model.eval()
        self.tokenizer = open_clip.get_tokenizer(name)
        self.context_length = int(getattr(self.tokenizer, "context_length", 77))


@app.command()
def main(
    names: list[str] = typer.Argument(..., help="open_clip architecture names."),
) -> None:
    """Measure each architecture's metadata on the CPU and print it."""
    for name in names:
        if name not in open_clip.list_models():
            raise typer.BadParameter(f"{name!r} is not an open_clip architecture")
        model = RandomArchitecture(name)
        start = time.perf_counter()
        m = model.metadata()
        seconds = time.perf_counter() - start
        p = m["parameters"]
        typer.echo(
            f"{name}: {m['image_size'][0]}x{m['image_size'][1]} {m['resize']}, "
            f"embedding {m['embedding_dim']}, context {m['context_length']}, params M "
            f"{p['image'] / 1e6:.1f} / {p['text'] / 1e6:.1f} / {p['total'] / 1e6:.1f}, "
            f"image GFLOPs {m['image_gflops']:.2f} ({seconds:.1f} s)"
        )


if __name__ == "__main__":
    app()
