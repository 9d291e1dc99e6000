"""ALIGN family (transformers ``AlignModel``, e.g. ``kakaobrain/align-base``).

Params entry: ``family: align``, ``source`` (hub repo id or local folder saved by
``save_pretrained``), optional ``revision`` and ``context_length`` (default: the BERT
tower's 512 positions; the thesis' AlignProcessor padded to 64 but did not cut).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from PIL import Image
from transformers import AlignModel, AutoProcessor

from kisbench.models.base import (
    EmbeddingModel,
    ModelSpec,
    l2_normalize,
    precision_name,
    resolve_device,
    resolve_precision,
)
from kisbench.models.hfmodels import (
    LIBRARY,
    ImageProcessorTransform,
    Source,
    TextTokens,
    text_limit,
)


class AlignEmbedder(EmbeddingModel):
    def __init__(self, spec: ModelSpec, device: str = "auto", precision: str = "auto") -> None:
        self.spec = spec
        self.device = resolve_device(device)
        self.dtype = resolve_precision(precision, self.device)
        self.source = Source(spec)
        processor = self.source.load(AutoProcessor)
        self.model = self.source.load(AlignModel, dtype=self.dtype).eval().to(self.device)
        self._transform = ImageProcessorTransform(processor.image_processor)
        limit = text_limit(spec, self.model.config.text_config.max_position_embeddings)
        self.text = TextTokens(processor.tokenizer, limit)
        self._weights = self.source.weights()

    @property
    def image_transform(self) -> Callable[[Image.Image], torch.Tensor]:
        return self._transform

    @torch.inference_mode()
    def encode_images(self, pixels: torch.Tensor) -> np.ndarray:
        pixels = pixels.to(self.device, dtype=self.dtype)
        out = self.model.get_image_features(pixel_values=pixels)
        # transformers 5 returns an output object (embedding in pooler_output), 4.x a tensor
        return l2_normalize(getattr(out, "pooler_output", out))

    @torch.inference_mode()
    def encode_texts(self, texts: Sequence[str]) -> np.ndarray:
        out = self.model.get_text_features(**self.text(texts, self.device))
        return l2_normalize(getattr(out, "pooler_output", out))

    def truncated(self, texts: Sequence[str]) -> list[bool]:
        return self.text.truncated(texts)

    def provenance(self) -> dict[str, Any]:
        return {
            "key": self.spec.key,
            "family": self.spec.family,
            "args": self.spec.args,
            "library": LIBRARY,
            "weights": self._weights,
            "preprocess": repr(self._transform),
            "dtype": precision_name(self.dtype),
            "device": str(self.device),
            "context_length": self.text.limit,
        }


def load(spec: ModelSpec, device: str = "auto", precision: str = "auto") -> AlignEmbedder:
    return AlignEmbedder(spec, device=device, precision=precision)
