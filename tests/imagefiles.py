"""Image files for the tests, generated: good photos-like pictures and every kind of bad one."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np
from PIL import Image

RED, BLUE, WHITE = (220, 30, 40), (20, 40, 210), (255, 255, 255)


def picture(width: int = 160, height: int = 120, seed: int = 0) -> Image.Image:
    """A smooth, photo-like RGB picture (gradients and a few blobs; no two alike)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    channels = []
    for _ in range(3):
        a, b, c = rng.uniform(0.5, 4, 3)
        phase = rng.uniform(0, 6.3)
        channels.append(127 + 100 * np.sin(a * x / width * 3 + b * y / height * 3 + phase) * c / 4)
    arr = np.stack(channels, -1)
    for _ in range(4):
        cx, cy, r = (
            rng.uniform(0, width),
            rng.uniform(0, height),
            rng.uniform(1, max(2, height / 3)),
        )
        blob = np.exp(-((x - cx) ** 2 + (y - cy) ** 2) / (2 * r * r))[..., None]
        arr = arr * (1 - blob) + blob * rng.uniform(0, 255, 3)
    return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))


def jpeg_bytes(im: Image.Image, **kwargs: object) -> bytes:
    buf = io.BytesIO()
    im.save(buf, "JPEG", quality=95, **kwargs)
    return buf.getvalue()


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_bytes(width: int, height: int, bit_depth: int, colour_type: int, idat: bytes) -> bytes:
    """A PNG from its parts (Pillow cannot write 16-bit greyscale with every header)."""
    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, colour_type, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", ihdr)
        + png_chunk(b"IDAT", idat)
        + png_chunk(b"IEND", b"")
    )


def grey16_png(values: np.ndarray) -> bytes:
    """16-bit greyscale PNG of ``values`` (H, W) uint16."""
    raw = b"".join(b"\x00" + row.astype(">u2").tobytes() for row in values)
    return png_bytes(values.shape[1], values.shape[0], 16, 0, zlib.compress(raw))


def bomb_png(width: int = 15000, height: int = 12000) -> bytes:
    """A valid all-black greyscale PNG of width x height pixels in a few hundred KB: the
    zlib stream repeats one fully flushed deflate block, so it is quick to make."""
    rows = 1000
    assert height % rows == 0
    block = (b"\x00" * (width + 1)) * rows
    deflate = zlib.compressobj(1, zlib.DEFLATED, -15)
    piece = deflate.compress(block) + deflate.flush(zlib.Z_FULL_FLUSH)
    end = deflate.flush()
    adler = 1
    for _ in range(height // rows):
        adler = zlib.adler32(block, adler)
    stream = b"\x78\x01" + piece * (height // rows) + end + struct.pack(">I", adler)
    return png_bytes(width, height, 8, 0, stream)


def exif_rotated_jpeg(im: Image.Image, orientation: int) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = orientation
    return jpeg_bytes(im, exif=exif)


def cmyk_jpeg(rgb: tuple[int, int, int], size: tuple[int, int] = (64, 48)) -> bytes:
    return jpeg_bytes(Image.new("RGB", size, rgb).convert("CMYK"))


def palette_transparent_png() -> bytes:
    """Left half red, right half fully transparent (palette index 1)."""
    im = Image.new("P", (64, 48), 0)
    im.putpalette([*RED, *BLUE] + [0] * (256 * 3 - 6))
    im.paste(1, (32, 0, 64, 48))
    buf = io.BytesIO()
    im.save(buf, "PNG", transparency=1)
    return buf.getvalue()


def rgba_png(alpha: int = 128) -> bytes:
    buf = io.BytesIO()
    Image.new("RGBA", (64, 48), (*BLUE, alpha)).save(buf, "PNG")
    return buf.getvalue()


def animated(fmt: str) -> bytes:
    """Two frames: red, then blue."""
    frames = [Image.new("RGB", (64, 48), c) for c in (RED, BLUE)]
    buf = io.BytesIO()
    extra = {"lossless": True} if fmt == "WEBP" else {}
    frames[0].save(buf, fmt, save_all=True, append_images=frames[1:], duration=100, **extra)
    return buf.getvalue()


def bad_files() -> dict[str, bytes]:
    """Files the rules refuse, by name; each name says why."""
    good = jpeg_bytes(picture(seed=99))
    return {
        "empty.jpg": b"",
        "truncated.jpg": good[: len(good) // 2],
        "not_an_image.jpg": b"ID,short_label\n00001,not a picture\n" * 20,
        "bomb.png": bomb_png(),
    }


def odd_files() -> dict[str, bytes]:
    """Files the rules embed, each by its documented rule."""
    buf = io.BytesIO()
    picture(seed=7).convert("L").save(buf, "JPEG", quality=95)
    grey_jpeg = buf.getvalue()
    buf = io.BytesIO()
    picture(seed=8).save(buf, "PNG")
    ramp = (np.linspace(0, 65535, 64 * 48).reshape(48, 64)).astype(np.uint16)
    return {
        "cmyk.jpg": cmyk_jpeg(RED),
        "grey16.png": grey16_png(ramp),
        "palette_transparent.png": palette_transparent_png(),
        "rgba.png": rgba_png(),
        "grey.jpg": grey_jpeg,
        "exif_rotated.jpg": exif_rotated_jpeg(picture(200, 100, seed=9), 6),
        "animated_gif.gif": animated("GIF"),
        "animated_webp.webp": animated("WEBP"),
        "photo.png": buf.getvalue(),
        "progressive.jpg": jpeg_bytes(picture(seed=10), progressive=True),
    }


def write(folder: Path, files: dict[str, bytes]) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for name, data in files.items():
        (folder / name).write_bytes(data)
        out.append(folder / name)
    return out


def write_photos(folder: Path, n: int, size: tuple[int, int] = (160, 120), start: int = 0) -> None:
    """``n`` JPEG pictures named 00000.jpg, 00001.jpg, ..."""
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(start, start + n):
        (folder / f"{i:05d}.jpg").write_bytes(jpeg_bytes(picture(*size, seed=i)))
