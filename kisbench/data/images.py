"""Decoding an image file into the RGB picture a model sees, by one set of rules.

Every image is either decoded by these rules or refused with a reason
(:class:`UnreadableImage`); the extraction loop reports refused images, it never guesses:

- EXIF orientation is applied (tags 2-8; an unreadable EXIF block counts as no orientation);
- transparency (alpha channel, palette or PNG ``tRNS`` transparency) is composited on white;
- greyscale and palette images become RGB; CMYK JPEGs are converted by Pillow's
  CMYK -> RGB formula (no ICC colour management);
- 16-bit greyscale is scaled to 8 bits (65535 -> 255; Pillow alone would clip it to white);
  16-bit colour PNGs are scaled to 8 bits by Pillow;
- animated GIF, WebP and PNG: the first frame;
- refused: an empty file, a file no decoder recognises, truncated or corrupt data, more
  pixels than ``max_pixels`` (decompression bombs), 32-bit float images.
"""

from __future__ import annotations

import io
import struct
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

# Pillow's own hard limit (it refuses larger images as decompression bombs); we check
# ``max_pixels`` ourselves, so its softer warning at half this size is noise.
DEFAULT_MAX_PIXELS = 2 * Image.MAX_IMAGE_PIXELS
warnings.filterwarnings("ignore", category=Image.DecompressionBombWarning)

EXIF_ORIENTATION = 0x0112
# EXIF orientation -> the Pillow transpose that makes the picture upright.
_TRANSPOSE = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
_ALPHA_MODES = frozenset({"RGBA", "RGBa", "LA", "La", "PA"})
_WIDE_GREY = frozenset({"I", "I;16", "I;16B", "I;16L", "I;16N"})


class UnreadableImage(Exception):
    """An image file that the rules refuse; ``reason`` says why, for the report."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class Header:
    """What an image file's header says, read without decoding the pixels."""

    format: str | None  # Pillow's format name: "JPEG", "PNG", ...
    mode: str  # Pillow's mode of the stored pixels: "RGB", "L", "CMYK", ...
    width: int
    height: int
    orientation: int  # EXIF orientation 1-8 (1: upright or no EXIF)
    progressive: bool


def read_bytes(path: Path) -> bytes:
    """The file's bytes; an empty or unreadable file is refused with its reason."""
    try:
        data = Path(path).read_bytes()
    except OSError as err:
        raise UnreadableImage(f"cannot read the file: {err.strerror or err}") from None
    if not data:
        raise UnreadableImage("empty file (0 bytes)")
    return data


def orientation(im: Image.Image) -> int:
    """EXIF orientation of an opened image, 1 when absent, invalid or unparsable."""
    try:
        value = im.getexif().get(EXIF_ORIENTATION, 1)
    except Exception:  # noqa: BLE001 - a broken EXIF block must not make the picture unreadable
        return 1
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


def _open(data: bytes, max_pixels: int) -> Image.Image:
    try:
        im = Image.open(io.BytesIO(data))
    except UnidentifiedImageError:
        raise UnreadableImage("not an image (no decoder recognises the data)") from None
    except Image.DecompressionBombError as err:
        raise UnreadableImage(f"too large: {err}") from None
    except Exception as err:  # noqa: BLE001 - any decoder error becomes a reported reason
        raise UnreadableImage(f"corrupt header: {type(err).__name__}: {err}") from None
    w, h = im.size
    if w * h > max_pixels:
        im.close()
        raise UnreadableImage(
            f"too large: {w} x {h} = {w * h:,} pixels, more than max_pixels {max_pixels:,} "
            "(a possible decompression bomb)"
        )
    if w == 0 or h == 0:
        im.close()
        raise UnreadableImage(f"empty picture ({w} x {h} pixels)")
    return im


def probe(data: bytes, max_pixels: int = DEFAULT_MAX_PIXELS) -> Header:
    """Read the header only (cheap): format, size, orientation; refuse what the rules refuse
    before any decoding (empty, not an image, too large)."""
    if not data:
        raise UnreadableImage("empty file (0 bytes)")
    with _open(data, max_pixels) as im:
        return Header(
            format=im.format,
            mode=im.mode,
            width=im.size[0],
            height=im.size[1],
            orientation=orientation(im),
            progressive=bool(im.info.get("progressive") or im.info.get("progression")),
        )


_SOF = frozenset({0xC0, 0xC1, 0xC2})  # baseline, extended, progressive Huffman
_OTHER_SOF = frozenset({0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF})


def scan_jpeg(data: bytes) -> Header | None:
    """The header of a plain JPEG (8-bit Huffman-coded, baseline or progressive, greyscale or
    YCbCr), read by walking its markers: microseconds, and no Pillow, so that the GPU path's
    reader threads barely hold the GIL. None for anything else (CMYK, Adobe RGB, lossless,
    arithmetic coding, 12-bit, or a header it cannot walk): Pillow then decides."""
    if data[:2] != b"\xff\xd8":
        return None
    pos, end = 2, len(data)
    turn, size, progressive, components = 1, None, False, 0
    try:
        while pos + 4 <= end:
            if data[pos] != 0xFF:
                return None
            marker = data[pos + 1]
            if marker == 0xFF:  # fill byte
                pos += 1
                continue
            length = struct.unpack_from(">H", data, pos + 2)[0]
            body = pos + 4
            if marker == 0xDA:  # start of scan: the header is over
                break
            if marker in _SOF:
                precision, height, width, components = struct.unpack_from(">BHHB", data, body)
                if precision != 8 or components not in (1, 3) or size is not None:
                    return None
                size, progressive = (width, height), marker == 0xC2
            elif marker in _OTHER_SOF:
                return None
            elif marker == 0xE1 and data[body : body + 6] == b"Exif\x00\x00" and turn == 1:
                turn = _exif_orientation(data[body + 6 : pos + 2 + length])
            elif marker == 0xEE and data[body : body + 5] == b"Adobe" and length >= 12:
                if data[body + 11] == 0 and components != 1:  # transform 0: RGB or CMYK
                    return None
            pos += 2 + length
    except (struct.error, IndexError):
        return None
    if size is None or 0 in size:
        return None
    return Header("JPEG", "L" if components == 1 else "RGB", *size, turn, progressive)


def _exif_orientation(tiff: bytes) -> int:
    """Orientation (tag 0x0112 of IFD0) of an EXIF block, 1 when absent or unreadable."""
    try:
        order = {b"II": "<", b"MM": ">"}[tiff[:2]]
        (ifd,) = struct.unpack_from(order + "I", tiff, 4)
        (count,) = struct.unpack_from(order + "H", tiff, ifd)
        for i in range(count):
            tag, kind, _, value = struct.unpack_from(order + "HHIH", tiff, ifd + 2 + 12 * i)
            if tag == EXIF_ORIENTATION:
                return value if kind == 3 and 1 <= value <= 8 else 1
    except (KeyError, struct.error):
        return 1
    return 1


def load_rgb(
    source: Path | bytes,
    *,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    draft: tuple[int, int] | None = None,
) -> Image.Image:
    """Decode an image file (a path or its bytes) into an upright 8-bit RGB picture.

    ``draft`` (width, height): a JPEG may be decoded at 1/2, 1/4 or 1/8 scale by the
    decoder itself, as long as both sides stay at least this large (much faster for large
    photos; the caller resizes further anyway), and only at a scale that divides both sides:
    otherwise the last row or column of the smaller picture stands for part of a pixel, and
    a resize that does not know it shifts the picture (measured: 8.5 grey levels mean change
    for a 640 x 457 photo at 1/2 scale, 5.6 for the same photo cut to 640 x 456). Raises
    :class:`UnreadableImage`.
    """
    data = read_bytes(source) if isinstance(source, Path) else source
    if not data:
        raise UnreadableImage("empty file (0 bytes)")
    im = _open(data, max_pixels)
    try:
        turn = orientation(im)
        if draft is not None and im.format == "JPEG":
            scale = _draft_scale(im.size, draft)
            if scale > 1:
                im.draft("RGB", (im.size[0] // scale, im.size[1] // scale))
        im.load()
        rgb = _to_rgb(im)
    except UnreadableImage:
        raise
    except Exception as err:  # noqa: BLE001 - any decoder error becomes a reported reason
        raise UnreadableImage(f"truncated or corrupt data: {type(err).__name__}: {err}") from None
    finally:
        im.close()
    return rgb.transpose(_TRANSPOSE[turn]) if turn in _TRANSPOSE else rgb


def _draft_scale(size: tuple[int, int], least: tuple[int, int]) -> int:
    """The largest JPEG decoding scale (8, 4 or 2; 1: none) that keeps both sides at least
    ``least`` and divides both exactly."""
    for scale in (8, 4, 2):
        fits = size[0] // scale >= least[0] and size[1] // scale >= least[1]
        if fits and size[0] % scale == 0 and size[1] % scale == 0:
            return scale
    return 1


def _to_rgb(im: Image.Image) -> Image.Image:
    if im.mode in _WIDE_GREY:
        # Pillow clips 16-bit values to 255 when converting; scale them instead.
        wide = np.asarray(im, dtype=np.float64)
        grey = np.clip(np.rint(wide / 257.0), 0, 255).astype(np.uint8)
        return Image.fromarray(grey).convert("RGB")
    if im.mode == "F":
        raise UnreadableImage("32-bit float pixels: no agreed 8-bit conversion")
    if im.mode in _ALPHA_MODES or "transparency" in im.info:
        rgba = im.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    return im.convert("RGB")
