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
from kisbench.models import metadata as measure
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

    # Token budgets (the query-length study, docs/evaluation.md#query-length). Not abstract,
    # so that a family without them still loads; the study then names the family.
    def context_tokens(self) -> int:
        """The most tokens the text encoder takes, special tokens included."""
        raise ModelError(
            f"model {self.spec.key!r}: family {self.spec.family!r} has no token budgets"
        )

    def token_counts(self, texts: Sequence[str]) -> list[int]:
        """For each text: its tokens by the family's own tokenizer, special tokens included,
        before any cut (so a count above :meth:`context_tokens` means truncated)."""
        raise ModelError(
            f"model {self.spec.key!r}: family {self.spec.family!r} has no token counts"
        )

    def encode_texts_cut(self, texts: Sequence[str], max_tokens: int) -> np.ndarray:
        """Like ``encode_texts``, with every text cut to at most ``max_tokens`` tokens
        (special tokens included, and still ending the cut sequence where the family has
        an end token). ``max_tokens`` is at most :meth:`context_tokens`: a budget equal to
        it embeds exactly as ``encode_texts`` does."""
        raise ModelError(
            f"model {self.spec.key!r}: family {self.spec.family!r} has no token budgets"
        )

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
        clash = sorted((record.keys() | {"vectors", "metadata"}) & extra.keys())
        if clash:  # a family's details never silently replace the common record
            raise TypeError(f"{type(self).__name__}._provenance_extra repeats {clash}")
        return {
            **record,
            **extra,
            "vectors": self.vectors.to_meta(),
            "metadata": self.metadata(),
        }

    def metadata(self) -> dict[str, Any]:
        """The model as measured from itself (docs/models.md#model-metadata): text context,
        tokenizer, input size and resize, embedding size, vectors per image, parameters of
        each tower, image-encoder GFLOPs. Measured once per loaded model (one image through
        the image encoder), then kept: provenance is asked for more than once."""
        found = self.__dict__.get("_metadata_record")
        if found is None:
            found = self._metadata()
            self.__dict__["_metadata_record"] = found
        return found

    def _metadata(self) -> dict[str, Any]:
        """For a family that computes in this process: one mid-grey 320 x 240 picture
        through ``image_transform`` (its output is the input size) and, counted, through
        ``encode_images`` (its output gives the embedding size and vectors per image); the
        towers' tensors from :meth:`_parameter_groups`. A family that computes elsewhere
        (the LAVIS worker) overrides this."""
        picture = Image.new("RGB", (320, 240), (128, 128, 128))
        pixels = self.image_transform(picture).unsqueeze(0)
        image, text, everything = self._parameter_groups()
        gflops, out = measure.count_gflops(
            lambda: self.encode_images(pixels), [*everything.values(), *image.values()]
        )
        resize, interpolation = self._resize_mode()
        return measure.record(
            context_length=self.context_tokens(),
            tokenizer=self._tokenizer_name(),
            image_size=(int(pixels.shape[-2]), int(pixels.shape[-1])),
            resize=resize,
            interpolation=interpolation,
            embedding_dim=int(out.shape[-1]),
            vectors_per_image=int(out.shape[1]) if out.ndim == 3 else 1,
            params=measure.parameter_counts(image, text, everything),
            image_gflops=gflops,
        )

    def _parameter_groups(self) -> tuple[dict[str, torch.Tensor], ...]:
        """(image tower, text tower, whole model): tensors by checkpoint name."""
        raise ModelError(f"model {self.spec.key!r}: its family does not name its towers")

    def _tokenizer_name(self) -> str:
        """The tokenizer's class (and hub name or folder)."""
        return measure.tokenizer_name(getattr(self, "tokenizer", None))

    def _resize_mode(self) -> tuple[str, str | None]:
        """(resize, interpolation) of ``image_transform``: ``shortest`` (shortest side to
        the input size, then centre crop) or ``squash`` (both sides to the input size)."""
        spec = self.pixel_spec()
        if spec is None:
            return "unknown", None
        return spec.resize, spec.interpolation

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


def checked_budget(model: EmbeddingModel, max_tokens: int) -> int:
    """``max_tokens`` if it is a budget the model can take (2 to its context), else an
    error: a budget beyond the context would silently mean the full context."""
    context = model.context_tokens()
    if not 2 <= int(max_tokens) <= context:  # room for the start and end tokens
        raise ValueError(
            f"model {model.spec.key!r}: token budget {max_tokens} is outside 2..{context} "
            "(its text context)"
        )
    return int(max_tokens)


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
    "checked_budget",
    "l2_normalize",
    "precision_name",
    "resolve_device",
    "resolve_precision",
]
