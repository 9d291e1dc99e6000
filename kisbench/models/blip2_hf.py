"""BLIP-2 retrieval through transformers (``Salesforce/blip2-itm-vit-g``): image-text
contrastive (ITC) features, every image kept as all its Q-Former query vectors.

Params entry: ``family: blip2_hf``, ``source`` (hub repo id or local folder), optional
``revision`` and ``context_length`` (LAVIS' own retrieval evaluation cuts texts at 35).
Images embed to (N, Q, D) (Q = 32 queries); a text to its projected CLS (D); ranking scores
an image by its best query, as BLIP-2's ITC does.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from transformers import (
    AutoImageProcessor,
    AutoTokenizer,
    Blip2TextModelWithProjection,
    Blip2VisionModelWithProjection,
)

from kisbench.models.base import SEVERAL_VECTORS, ModelSpec, l2_normalize
from kisbench.models.hfmodels import HfEmbedder, ImageProcessorTransform, TextTokens, text_limit


class Blip2HfEmbedder(HfEmbedder):
    # Every Q-Former query's projection; a text scores an image by its best query, as
    # BLIP-2's image-text contrastive (ITC) similarity does.
    vectors = SEVERAL_VECTORS

    def _load(self) -> None:
        # The checkpoint holds the retrieval model; each tower class takes its own part
        # (the Q-Former stays fp32, as transformers keeps it).
        self.vision = self._module(Blip2VisionModelWithProjection)
        self.textm = self._module(Blip2TextModelWithProjection)
        self._transform = ImageProcessorTransform(self.source.load(AutoImageProcessor))
        qcfg = self.textm.config.qformer_config
        self.text = TextTokens(
            self.source.load(AutoTokenizer), text_limit(self.spec, qcfg.max_position_embeddings)
        )

    @torch.inference_mode()
    def encode_images(self, pixels: torch.Tensor) -> np.ndarray:
        pixels = pixels.to(self.device, dtype=self.dtype)
        return l2_normalize(self.vision(pixel_values=pixels).image_embeds)  # (B, Q, D)

    @torch.inference_mode()
    def encode_texts(self, texts: Sequence[str]) -> np.ndarray:
        out = self.textm(**self.text(texts, self.device))
        return l2_normalize(out.text_embeds[:, 0, :])  # the CLS token's projection

    def _provenance_extra(self) -> dict[str, Any]:
        queries = int(self.vision.config.num_query_tokens)
        # transformers' BLIP-2 towers do not load the checkpoint's ITC `temp`: no scale here
        # (the simulate stage then uses its documented constant).
        return {**super()._provenance_extra(), "queries_per_image": queries, "logit_scale": None}

    def _parameter_groups(self) -> tuple[dict[str, torch.Tensor], ...]:
        # The two tower classes each load the checkpoint's one Q-Former (and its query
        # tokens): by checkpoint name it is shared, and counted once in the total. The text
        # side never uses the query tokens.
        image = dict(self.vision.named_parameters())
        text = {k: v for k, v in self.textm.named_parameters() if k != "query_tokens"}
        return image, text, {**text, **image}


def load(spec: ModelSpec, device: str = "auto", precision: str = "auto") -> Blip2HfEmbedder:
    return Blip2HfEmbedder(spec, device=device, precision=precision)
