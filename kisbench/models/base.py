"""The one interface every model family implements."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from PIL import Image

from kisbench.devices import PRECISIONS, resolve_device, resolve_precision
from kisbench.errors import ModelError
from kisbench.models.pixels import PixelSpec, spec_from_transform
from kisbench.models.spec import ModelSpec


class EmbeddingModel(ABC):
    """A joint image-text embedding model, ready for inference.

    Images go through ``image_transform`` (a picklable PIL -> tensor callable, run in
    DataLoader workers), then ``encode_images``. Outputs are L2-normalised float32 arrays:
    ``(B, D)``, or ``(B, Q, D)`` for a model that keeps several vectors per image.
    """

    spec: ModelSpec

    @property
    @abstractmethod
    def image_transform(self) -> Callable[[Image.Image], torch.Tensor]: ...

    @abstractmethod
    def encode_images(self, pixels: torch.Tensor) -> np.ndarray: ...

    @abstractmethod
    def encode_texts(self, texts: Sequence[str]) -> np.ndarray: ...

    @abstractmethod
    def truncated(self, texts: Sequence[str]) -> list[bool]:
        """For each text: is it longer than the text encoder's context (and so cut)?"""

    @abstractmethod
    def provenance(self) -> dict[str, Any]:
        """What produced the embeddings: spec, resolved weights, preprocessing, dtype."""

    def pixel_spec(self) -> PixelSpec | None:
        """``image_transform`` as a plain resize, centre crop and normalise, or None.

        With it, the extraction loop can decode and preprocess JPEGs on the GPU, and decode
        large JPEGs at reduced size. The default reads it off a torchvision ``Compose``
        (open_clip's transforms are); it is None for any other preprocessing, which then
        always runs as ``image_transform``. A family may override it.
        """
        return spec_from_transform(self.image_transform)


def precision_name(dtype: torch.dtype) -> str:
    return {v: k for k, v in PRECISIONS.items()}[dtype]


def l2_normalize(x: torch.Tensor) -> np.ndarray:
    x = x.float()
    return torch.nn.functional.normalize(x, dim=-1).cpu().numpy()


__all__ = [
    "PRECISIONS",
    "EmbeddingModel",
    "ModelError",
    "ModelSpec",
    "l2_normalize",
    "precision_name",
    "resolve_device",
    "resolve_precision",
]
