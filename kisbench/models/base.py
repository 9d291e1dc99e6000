"""The one interface every model family implements."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from PIL import Image

from kisbench.data.store import ONE_VECTOR, SEVERAL_VECTORS, VectorLayout
from kisbench.devices import PRECISIONS, resolve_device, resolve_precision
from kisbench.errors import ModelError
from kisbench.models.pixels import PixelSpec, spec_from_transform
from kisbench.models.spec import ModelSpec


class EmbeddingModel(ABC):
    """A joint image-text embedding model, ready for inference.

    Images go through ``image_transform`` (a picklable PIL -> tensor callable, run in
    DataLoader workers), then ``encode_images``. Outputs are L2-normalised float32 arrays:
    a text is one vector, ``(B, D)``; an image is what the family declares in ``vectors``
    (one vector, ``(B, D)``, or several, ``(B, Q, D)``, and how a query scores them).

    What every family shares lives here: the device and precision, resolved once (from
    params.yaml ``embed.device`` / ``embed.precision``, as the stage passes them), and the
    provenance record. A family sets ``vectors``, ``library`` and ``_weights`` (as class
    attributes, or in its ``__init__`` where they depend on what was loaded) and adds its
    own details in :meth:`_provenance_extra`.
    """

    spec: ModelSpec
    device: torch.device
    dtype: torch.dtype
    # The image embedding's layout, recorded in meta.json: the readers of an embedding set
    # take it from there rather than guessing it from the array's shape.
    vectors: VectorLayout
    library: str  # the code that computes the embeddings, "name version[, ...]"
    _weights: dict[str, Any]  # the weights actually loaded: hub commit or file hashes

    def __init__(self, spec: ModelSpec, device: str = "auto", precision: str = "auto") -> None:
        self.spec = spec
        self.device = resolve_device(device)
        self.dtype = resolve_precision(precision, self.device)

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

    def provenance(self) -> dict[str, Any]:
        """What produced the embeddings (it heads every embedding set's ``meta.json``): the
        params entry, the library, the weights actually loaded, the preprocessing, the
        precision and device, the family's details, and the image vectors' layout."""
        record: dict[str, Any] = {
            "key": self.spec.key,
            "family": self.spec.family,
            "args": self.spec.args,
            "library": self.library,
            "weights": self._weights,
            "preprocess": repr(self.image_transform),
            "dtype": precision_name(self.dtype),
            "device": str(self.device),
        }
        extra = self._provenance_extra()
        clash = sorted((record.keys() | {"vectors"}) & extra.keys())
        if clash:  # a family's details never silently replace the common record
            raise TypeError(f"{type(self).__name__}._provenance_extra repeats {clash}")
        return {**record, **extra, "vectors": self.vectors.to_meta()}

    def _provenance_extra(self) -> dict[str, Any]:
        """The family's own provenance details (text context, queries per image, ...)."""
        return {}

    def pixel_spec(self) -> PixelSpec | None:
        """``image_transform`` as a plain resize, centre crop and normalise, or None.

        With it, the extraction loop can decode and preprocess JPEGs on the GPU, and decode
        large JPEGs at reduced size. The default reads it off a torchvision ``Compose``
        (open_clip's transforms are); it is None for any other preprocessing, which then
        always runs as ``image_transform``. A family may override it.
        """
        return spec_from_transform(self.image_transform)


def precision_name(dtype: torch.dtype) -> str:
    """``fp32``, ``fp16`` or ``bf16``: the params.yaml name of a torch dtype."""
    return {v: k for k, v in PRECISIONS.items()}[dtype]


def l2_normalize(x: torch.Tensor) -> np.ndarray:
    """Unit vectors along the last axis, as a float32 array (whatever the compute dtype)."""
    x = x.float()
    return torch.nn.functional.normalize(x, dim=-1).cpu().numpy()


__all__ = [
    "ONE_VECTOR",
    "PRECISIONS",
    "SEVERAL_VECTORS",
    "EmbeddingModel",
    "ModelError",
    "ModelSpec",
    "VectorLayout",
    "l2_normalize",
    "precision_name",
    "resolve_device",
    "resolve_precision",
]
