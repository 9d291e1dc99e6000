"""Model input from decoded pixels with tensor operations, on the GPU or the CPU.

Most models' own preprocessing (open_clip's, for one) is a torchvision pipeline on a Pillow
picture: resize (shortest side, or both sides), centre crop, to tensor, normalise.
:func:`spec_from_transform` reads those steps off such a pipeline, and :func:`prepare`
does the same steps on uint8 tensors, batched, on whatever device they live on: the
extraction loop's device path (JPEGs decoded by nvJPEG straight into GPU memory) uses it.
Anything else in a pipeline makes :func:`spec_from_transform` answer None, and that model
keeps its own Pillow preprocessing.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torchvision.transforms as T
import torchvision.transforms.v2.functional as F
from PIL import Image

# Steps that do nothing to a picture that load_rgb already made RGB, other than turning it
# into a float tensor in [0, 1] (which prepare does).
_PASS_THROUGH = frozenset({"MaybeConvertMode", "MaybeToTensor", "ToTensor", "_convert_to_rgb"})
_INTERPOLATIONS = {
    T.InterpolationMode.BICUBIC: "bicubic",
    T.InterpolationMode.BILINEAR: "bilinear",
}


@dataclass(frozen=True)
class PixelSpec:
    """How a picture becomes model input: resize, centre crop, scale to [0, 1], normalise."""

    height: int
    width: int
    resize: str  # "shortest": shortest side to the crop size, then centre crop; "squash"
    interpolation: str  # "bicubic" or "bilinear", always antialiased (like Pillow)
    mean: tuple[float, float, float]
    std: tuple[float, float, float]

    def draft_size(self, gap: float = 2.0) -> tuple[int, int]:
        """(width, height) a JPEG may be decoded down to before the resize: ``gap`` times the
        input. At 2 (Pillow's ``reducing_gap`` for thumbnails) the antialiased resize still
        does at least a halving; at 1 the decoder's own scaling does most of the reduction
        (docs/benchmarks.md measures what that changes)."""
        return math.ceil(gap * self.width), math.ceil(gap * self.height)


def spec_from_transform(transform: Any) -> PixelSpec | None:
    """The :class:`PixelSpec` of a torchvision ``Compose``, or None if it has other steps."""
    steps = getattr(transform, "transforms", None)
    if not isinstance(steps, Sequence):
        return None
    resize: T.Resize | None = None
    crop: tuple[int, int] | None = None
    norm: T.Normalize | None = None
    for step in steps:
        name = getattr(step, "__name__", type(step).__name__)
        if isinstance(step, T.Resize) and resize is None and crop is None:
            resize = step
        elif isinstance(step, T.CenterCrop) and crop is None:
            crop = tuple(step.size)  # type: ignore[assignment]
        elif isinstance(step, T.Normalize) and norm is None:
            norm = step
        elif name not in _PASS_THROUGH:
            return None
    if resize is None or norm is None or resize.max_size is not None:
        return None
    if resize.antialias is False or resize.interpolation not in _INTERPOLATIONS:
        return None
    if len(norm.mean) != 3 or len(norm.std) != 3:
        return None
    size = [resize.size] if isinstance(resize.size, int) else list(resize.size)
    if len(size) == 1:
        if crop is None or crop[0] != crop[1] or crop[0] != size[0]:
            return None  # a shortest-side resize without a square crop of the same size
        mode, (h, w) = "shortest", crop
    elif len(size) == 2:
        if crop is not None and tuple(crop) != tuple(size):
            return None
        mode, (h, w) = "squash", size
    else:
        return None
    return PixelSpec(
        height=int(h),
        width=int(w),
        resize=mode,
        interpolation=_INTERPOLATIONS[resize.interpolation],
        mean=tuple(float(v) for v in norm.mean),  # type: ignore[arg-type]
        std=tuple(float(v) for v in norm.std),  # type: ignore[arg-type]
    )


def _resize_crop(batch: torch.Tensor, spec: PixelSpec) -> torch.Tensor:
    """(B, 3, H, W) uint8 pictures of one size -> (B, 3, height, width) uint8 input crops."""
    mode = T.InterpolationMode(spec.interpolation)
    if spec.resize == "squash":
        return F.resize(batch, [spec.height, spec.width], interpolation=mode, antialias=True)
    # torchvision's rule for a shortest-side resize, as on a Pillow picture; resized and
    # rounded to uint8 like Pillow does, before the crop.
    out = F.resize(batch, [spec.height], interpolation=mode, antialias=True)
    return F.center_crop(out, [spec.height, spec.width])


def prepare(
    pictures: Sequence[torch.Tensor], spec: PixelSpec, dtype: torch.dtype = torch.float32
) -> torch.Tensor:
    """Upright RGB (3, H, W) uint8 tensors, all on one device -> (B, 3, h, w) model input.

    Pictures of the same size (frames of one video, for example) are resized together in
    one call; the output keeps the input order.
    """
    if not pictures:
        raise ValueError("no pictures to prepare")
    device = pictures[0].device
    groups: dict[tuple[int, int], list[int]] = {}
    for i, pic in enumerate(pictures):
        if pic.ndim != 3 or pic.shape[0] != 3 or pic.dtype != torch.uint8:
            raise ValueError(f"picture {i}: expected a (3, H, W) uint8 tensor, got {pic.shape}")
        groups.setdefault((pic.shape[1], pic.shape[2]), []).append(i)
    crops: list[torch.Tensor | None] = [None] * len(pictures)
    for members in groups.values():
        resized = _resize_crop(torch.stack([pictures[i] for i in members]), spec)
        for row, i in zip(resized, members, strict=True):
            crops[i] = row
    scale, shift = _affine(spec, device)
    return torch.addcmul(shift, torch.stack(crops).float(), scale).to(dtype)  # type: ignore[arg-type]


@functools.lru_cache(maxsize=16)
def _affine(spec: PixelSpec, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """(x / 255 - mean) / std as x * scale + shift, per channel, kept on the device."""
    mean = torch.tensor(spec.mean, dtype=torch.float64)
    std = torch.tensor(spec.std, dtype=torch.float64)
    scale = (1 / (255 * std)).float().view(1, 3, 1, 1).to(device)
    shift = (-mean / std).float().view(1, 3, 1, 1).to(device)
    return scale, shift


def to_tensor(im: Image.Image) -> torch.Tensor:
    """An RGB picture as a (3, H, W) uint8 tensor."""
    return torch.from_numpy(np.asarray(im.convert("RGB"), dtype=np.uint8).copy()).permute(2, 0, 1)


def orient_tensor(pixels: torch.Tensor, turn: int) -> torch.Tensor:
    """Apply EXIF orientation ``turn`` to a (C, H, W) tensor, as
    :func:`kisbench.data.images.load_rgb` does to a picture (the device path decodes JPEGs
    without Pillow)."""
    if turn in (2, 4, 5, 7):  # the mirrored orientations
        pixels = pixels.flip(-1)
    # After the mirror, each is a counter-clockwise rotation by quarter turns.
    quarter = {1: 0, 2: 0, 3: 2, 4: 2, 5: 1, 6: 3, 7: 3, 8: 1}[turn]
    return torch.rot90(pixels, quarter, dims=(-2, -1)) if quarter else pixels
