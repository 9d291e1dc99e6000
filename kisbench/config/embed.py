"""The ``embed`` section: how the embed-images and embed-queries stages run the models.

Its defaults decide embeddings, so every code that reads the section imports this module
(`kisbench.embedding.extract` does): it is in the embed stages' import closure, and the
schemas of the later stages' sections are not.
"""

from __future__ import annotations

from dataclasses import dataclass

from kisbench.config.schema import opt

PRECISIONS = ("auto", "fp32", "fp16", "bf16")
DECODERS = ("auto", "device", "pil")
ON_UNREADABLE = ("fail", "skip")
STORE_DTYPES = ("float32", "float16")


@dataclass(frozen=True)
class Embed:
    """How the embed-images and embed-queries stages run the models."""

    device: str = opt(
        "auto", cache_key=True, why="CPU and GPU kernels round differently (auto: cuda if any)"
    )
    precision: str = opt(
        "auto",
        cache_key=True,
        choices=PRECISIONS,
        why="the dtype the model computes in (auto: bf16 on a GPU, fp32 on a CPU)",
    )
    batch_size: int = opt(
        64,
        cache_key=True,
        minimum=1,
        why="images or texts per forward pass: the batch's make-up can change float round-off",
    )
    chunk_size: int = opt(
        4096,
        cache_key=False,
        minimum=1,
        why="images per resumable chunk, rounded up to whole batches: the batches, hence the "
        "numbers, are the same for any chunk size; a killed run loses at most one chunk",
    )
    workers: int | None = opt(
        None,
        cache_key=False,
        minimum=0,
        why="decoding processes (pil; threads for a model on the CPU) or file-reading threads "
        "(device), null: CPU count (per process under torchrun) - 1 (the CPU count for a model "
        "on the CPU), at most 16; each image decodes alike, batches keep order",
    )
    decode: str = opt(
        "auto",
        cache_key=True,
        choices=DECODERS,
        why="the decoder and resizer (device: nvJPEG + GPU resize; pil) give different pixels",
    )
    draft: bool = opt(
        True,
        cache_key=True,
        why="pil: JPEGs far larger than the model input decoded at reduced size (other pixels)",
    )
    draft_gap: float = opt(
        2.0,
        cache_key=True,
        minimum=1.0,
        why="pil with draft: a JPEG is decoded at 1/2, 1/4 or 1/8 scale only while both sides "
        "stay at least draft_gap x the model input (smaller: faster, pixels further from a "
        "full decode; 2 is Pillow's own default for thumbnails)",
    )
    on_unreadable: str = opt(
        "fail",
        cache_key=True,
        choices=ON_UNREADABLE,
        why="with unreadable images, skip writes embeddings without them and fail writes none "
        "(finished chunks are kept either way: switching recomputes nothing)",
    )
    max_pixels: int = opt(
        178_956_970,  # 2 * PIL.Image.MAX_IMAGE_PIXELS, where Pillow itself refuses an image
        cache_key=True,
        minimum=1,
        why="larger images are refused (decompression bombs): which images are embedded",
    )
    store_dtype: str = opt(
        "float32",
        cache_key=True,
        choices=STORE_DTYPES,
        why="the dtype the embeddings are stored in",
    )


SECTIONS: dict[str, type] = {"embed": Embed}
