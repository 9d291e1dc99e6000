"""ALIGN family (transformers ``AlignModel``, e.g. ``kakaobrain/align-base``).

Params entry: ``family: align``, ``source`` (hub repo id or local folder saved by
``save_pretrained``), optional ``revision`` and ``context_length`` (default: the BERT
tower's 512 positions; the thesis' AlignProcessor padded to 64 but did not cut).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from transformers import AlignModel, AutoProcessor

from kisbench.models.base import ONE_VECTOR, ModelSpec, l2_normalize
from kisbench.models.hfmodels import HfEmbedder, ImageProcessorTransform, TextTokens, text_limit


class AlignEmbedder(HfEmbedder):
    vectors = ONE_VECTOR  # the pooled, projected image embedding

    def _load(self) -> None:
        processor = self.source.load(AutoProcessor)
        self.model = self._module(AlignModel)
        self._transform = ImageProcessorTransform(processor.image_processor)
        limit = text_limit(self.spec, self.model.config.text_config.max_position_embeddings)
        self.text = TextTokens(processor.tokenizer, limit)

    def _provenance_extra(self) -> dict[str, Any]:
        # ALIGN divides cosines by its learned temperature: the scale is 1 / T.
        scale = 1.0 / self.model.temperature.detach().item()
        return {**super()._provenance_extra(), "logit_scale": scale}

    def _parameter_groups(self) -> tuple[dict[str, torch.Tensor], ...]:
        # AlignModel: vision_model (EfficientNet), text_model (BERT) + text_projection, and
        # the temperature (one number, in neither tower).
        everything = dict(self.model.named_parameters())
        image = {k: v for k, v in everything.items() if k.startswith("vision_model.")}
        text = {
            k: v for k, v in everything.items() if k.startswith(("text_model.", "text_projection."))
        }
        return image, text, everything

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


def load(spec: ModelSpec, device: str = "auto", precision: str = "auto") -> AlignEmbedder:
    return AlignEmbedder(spec, device=device, precision=precision)
