"""Decoding an image file into the RGB picture a model sees."""

from __future__ import annotations

from pathlib import Path

from PIL import Image, ImageOps


def load_rgb(path: Path) -> Image.Image:
    """Open an image as RGB: EXIF orientation applied, transparency composited on white."""
    with Image.open(path) as im:
        im = ImageOps.exif_transpose(im)
        if im.mode in ("RGBA", "LA") or (im.mode == "P" and "transparency" in im.info):
            im = im.convert("RGBA")
            background = Image.new("RGBA", im.size, (255, 255, 255, 255))
            return Image.alpha_composite(background, im).convert("RGB")
        return im.convert("RGB")
