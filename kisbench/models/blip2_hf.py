"""BLIP-2 retrieval through transformers (``Salesforce/blip2-itm-vit-g``): image-text
contrastive (ITC) features, every image kept as all its Q-Former query vectors.

Params entry: ``family: blip2_hf``, ``source`` (hub repo id or local folder), optional
``revision`` and ``context_length`` (LAVIS' own retrieval evaluation cuts texts at 35).
Images embed to (N, Q, D) (Q = 32 queries); a text to its projected CLS (D); ranking scores
an image by its best query, as BLIP-2's ITC does.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from PIL import Image
from transformers import (
    AutoImageProcessor,
    AutoTokenizer,
    Blip2TextModelWithProjection,
    Blip2VisionModelWithProjection,
)

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


class Blip2HfEmbedder(EmbeddingModel):
    def __init__(self, spec: ModelSpec, device: str = "auto", precision: str = "auto") -> None:
        self.spec = spec
        self.device = resolve_device(device)
        self.dtype = resolve_precision(precision, self.device)
        self.source = Source(spec)
        # The checkpoint holds the retrieval model; each tower class takes its own part
        # (the Q-Former stays fp32, as transformers keeps it).
        self.vision = self._tower(Blip2VisionModelWithProjection)
        self.textm = self._tower(Blip2TextModelWithProjection)
        self._transform = ImageProcessorTransform(self.source.load(AutoImageProcessor))
        qcfg = self.textm.config.qformer_config
        self.text = TextTokens(
            self.source.load(AutoTokenizer), text_limit(spec, qcfg.max_position_embeddings)
        )
        self._weights = self.source.weights()

    def _tower(self, cls: Any) -> Any:
        return self.source.load(cls, dtype=self.dtype).eval().to(self.device)

    @property
    def image_transform(self) -> Callable[[Image.Image], torch.Tensor]:
        return self._transform

    @torch.inference_mode()
    def encode_images(self, pixels: torch.Tensor) -> np.ndarray:
        pixels = pixels.to(self.device, dtype=self.dtype)
        return l2_normalize(self.vision(pixel_values=pixels).image_embeds)  # (B, Q, D)

    @torch.inference_mode()
    def encode_texts(self, texts: Sequence[str]) -> np.ndarray:
        out = self.textm(**self.text(texts, self.device))
        return l2_normalize(out.text_embeds[:, 0, :])  # the CLS token's projection

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
            "queries_per_image": int(self.vision.config.num_query_tokens),
        }


def load(spec: ModelSpec, device: str = "auto", precision: str = "auto") -> Blip2HfEmbedder:
    return Blip2HfEmbedder(spec, device=device, precision=precision)
