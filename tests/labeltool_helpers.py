"""Shared by the labelling tool's tests: a small collection of real image files."""

from __future__ import annotations

from pathlib import Path

from PIL import Image

from kisbench.data.collections import list_images


def make_collection(root: Path, n: int = 6) -> dict[str, Path]:
    """``n`` small PNGs of distinct colours under ``root/images``; image id -> path."""
    folder = root / "images"
    folder.mkdir(parents=True)
    for i in range(n):
        colour = (40 * i % 256, 255 - 30 * i % 256, 90)
        Image.new("RGB", (64, 48), colour).save(folder / f"img{i:02d}.png")
    ids, paths = list_images(folder)
    return dict(zip(ids, paths, strict=True))
