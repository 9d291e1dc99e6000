"""Decoding rules (kisbench.data.images) on generated bad and odd image files."""

from __future__ import annotations

import io
import struct

import numpy as np
import pytest
import torch
from PIL import Image

from kisbench.data.images import (
    UnreadableImage,
    load_rgb,
    probe,
    scan_jpeg,
)
from kisbench.models.pixels import orient_tensor, to_tensor
from tests import imagefiles as gen


def arr(im: Image.Image) -> np.ndarray:
    return np.asarray(im, dtype=np.int16)


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("empty.jpg", "empty file"),
        ("truncated.jpg", "truncated"),
        ("not_an_image.jpg", "not an image"),
        ("bomb.png", "too large"),
    ],
)
def test_refused_with_reason(tmp_path, name, reason):
    path = gen.write(tmp_path, {name: gen.bad_files()[name]})[0]
    with pytest.raises(UnreadableImage) as err:
        load_rgb(path)
    assert reason in err.value.reason


def test_bomb_is_refused_from_its_header_alone():
    data = gen.bad_files()["bomb.png"]
    assert len(data) < 2_000_000  # small file ...
    with pytest.raises(UnreadableImage, match="too large"):
        probe(data)  # ... refused before any pixel is decoded


def test_max_pixels_is_the_limit():
    data = gen.jpeg_bytes(gen.picture(100, 50))
    assert load_rgb(data, max_pixels=5000).size == (100, 50)
    with pytest.raises(UnreadableImage, match="5,000 pixels, more than max_pixels 4,999"):
        load_rgb(data, max_pixels=4999)


def test_unreadable_file_is_refused(tmp_path):
    with pytest.raises(UnreadableImage, match="cannot read"):
        load_rgb(tmp_path / "vanished.jpg")


def test_float_images_are_refused():
    buf = io.BytesIO()
    Image.fromarray(np.full((8, 8), 0.5, np.float32), mode="F").save(buf, "TIFF")
    with pytest.raises(UnreadableImage, match="float"):
        load_rgb(buf.getvalue())


def test_cmyk_jpeg_becomes_its_rgb_colour():
    out = arr(load_rgb(gen.cmyk_jpeg(gen.RED)))
    assert out.shape == (48, 64, 3)
    assert np.abs(out - np.array(gen.RED)).max() <= 8


def test_16bit_grey_is_scaled_not_clipped():
    ramp = np.linspace(0, 65535, 64 * 48).reshape(48, 64).astype(np.uint16)
    out = arr(load_rgb(gen.grey16_png(ramp)))
    expected = np.rint(ramp / 257.0)  # 65535 -> 255, by hand
    assert np.abs(out[..., 0] - expected).max() <= 1
    assert (out[..., 0] == out[..., 1]).all() and (out[..., 1] == out[..., 2]).all()
    assert out[24, 32, 0] < 200  # mid-grey stays mid-grey (clipping would give 255)


def test_palette_transparency_is_white():
    out = arr(load_rgb(gen.palette_transparent_png()))
    assert (out[:, :32] == gen.RED).all()
    assert (out[:, 32:] == 255).all()


def test_alpha_is_composited_on_white():
    out = arr(load_rgb(gen.rgba_png(alpha=128)))
    a = 128 / 255
    expected = [round(c * a + 255 * (1 - a)) for c in gen.BLUE]
    assert np.abs(out - np.array(expected)).max() <= 1


def test_greyscale_becomes_three_equal_channels():
    out = arr(load_rgb(gen.odd_files()["grey.jpg"]))
    assert out.ndim == 3 and out.shape[2] == 3
    assert (out[..., 0] == out[..., 1]).all() and (out[..., 1] == out[..., 2]).all()


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_is_applied(orientation):
    original = gen.picture(200, 100, seed=3)
    out = load_rgb(gen.exif_rotated_jpeg(original, orientation))
    expected = Image.open(io.BytesIO(gen.exif_rotated_jpeg(original, orientation)))
    from PIL import ImageOps  # Pillow's own EXIF handling is the reference

    expected = ImageOps.exif_transpose(expected).convert("RGB")
    assert out.size == expected.size
    assert (out.size == (100, 200)) == (orientation >= 5)  # 5-8 swap width and height
    assert np.abs(arr(out) - arr(expected)).max() == 0


@pytest.mark.parametrize("fmt", ["GIF", "WEBP"])
def test_animation_gives_its_first_frame(fmt):
    out = arr(load_rgb(gen.animated(fmt)))
    assert np.abs(out - np.array(gen.RED)).max() <= 6


@pytest.mark.parametrize(
    ("size", "decoded"),
    [
        ((1280, 720), (320, 180)),  # 1/8 would be 160 x 90, below the request
        ((1280, 722), (640, 361)),  # 4 does not divide 722: 1/2
        ((1281, 720), (1281, 720)),  # no scale divides 1281: full size
        ((200, 150), (200, 150)),  # already small
    ],
)
def test_draft_decodes_large_jpegs_smaller_but_not_below_the_request(size, decoded):
    data = gen.jpeg_bytes(gen.picture(*size))
    assert load_rgb(data).size == size
    assert load_rgb(data, draft=(128, 128)).size == decoded


def test_draft_never_applies_to_other_formats():
    # draft never applies to other formats
    buf = io.BytesIO()
    gen.picture(320, 240).save(buf, "PNG")
    assert load_rgb(buf.getvalue(), draft=(16, 16)).size == (320, 240)


@pytest.mark.parametrize("turn", range(1, 9))
def test_orient_tensor_matches_pillow(turn):
    from kisbench.data.images import _TRANSPOSE

    im = gen.picture(7, 5, seed=1)
    expected = to_tensor(im.transpose(_TRANSPOSE[turn]) if turn in _TRANSPOSE else im)
    assert torch.equal(orient_tensor(to_tensor(im), turn), expected)


def test_probe_reads_the_header():
    head = probe(gen.exif_rotated_jpeg(gen.picture(200, 100), 6))
    assert (head.format, head.mode, head.width, head.height, head.orientation) == (
        "JPEG",
        "RGB",
        200,
        100,
        6,
    )
    assert probe(gen.cmyk_jpeg(gen.RED)).mode == "CMYK"
    assert probe(gen.odd_files()["progressive.jpg"]).progressive


def big_endian_exif(orientation: int) -> bytes:
    """An EXIF block in Motorola byte order (Pillow writes Intel order), by hand."""
    entry = struct.pack(">HHIH2x", 0x0112, 3, 1, orientation)
    return b"Exif\x00\x00MM\x00\x2a\x00\x00\x00\x08" + struct.pack(">H", 1) + entry + b"\0" * 4


def jpeg_variants() -> dict[str, bytes]:
    pic = gen.picture(200, 100, seed=4)
    out = {f"exif{o}": gen.exif_rotated_jpeg(pic, o) for o in range(1, 9)}
    out["motorola_exif6"] = gen.jpeg_bytes(pic, exif=big_endian_exif(6))
    out["grey"] = gen.odd_files()["grey.jpg"]
    out["progressive"] = gen.odd_files()["progressive.jpg"]
    out["subsampled_420"] = gen.jpeg_bytes(gen.picture(33, 17), subsampling=2)
    return out


@pytest.mark.parametrize("name", sorted(jpeg_variants()))
def test_scan_jpeg_agrees_with_pillow(name):
    data = jpeg_variants()[name]
    assert scan_jpeg(data) == probe(data)  # Pillow's header reading is the reference


def test_scan_jpeg_leaves_other_files_to_pillow():
    assert scan_jpeg(gen.cmyk_jpeg(gen.RED)) is None
    assert scan_jpeg(gen.rgba_png()) is None
    assert scan_jpeg(b"") is None
    data = gen.exif_rotated_jpeg(gen.picture(), 3)
    for cut in range(0, 700, 7):  # any prefix: a header or None, never an exception
        head = scan_jpeg(data[:cut])
        assert head is None or head == probe(data)
