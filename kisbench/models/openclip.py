"""open_clip family: OpenAI CLIP, LAION, DFN and WebLI SigLIP models.

Params entry: ``family: open_clip``, ``model`` (an open_clip name, ``hf-hub:org/repo`` or
``local-dir:path``), optional ``pretrained`` (an open_clip tag such as ``openai``) and
``revision`` (a hub commit to pin; written to provenance either way).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import open_clip
import torch
from PIL import Image

from kisbench.models.base import (
    EmbeddingModel,
    ModelError,
    ModelSpec,
    l2_normalize,
    resolve_device,
    resolve_precision,
)
from kisbench.models.weights import describe_weights, ensure_available


class OpenClipModel(EmbeddingModel):
    def __init__(self, spec: ModelSpec, device: str = "auto", precision: str = "auto") -> None:
        self.spec = spec
        name = spec.args.get("model")
        if not name:
            raise ModelError(f"model {spec.key!r}: open_clip entry needs 'model'")
        pretrained = spec.args.get("pretrained")
        self.device = resolve_device(device)
        self.dtype = resolve_precision(precision, self.device)
        weights = ensure_available(spec.key, name, pretrained, spec.args.get("revision"))
        try:
            model, _, preprocess = open_clip.create_model_and_transforms(
                name, pretrained=pretrained, device=self.device, **weights.load_kwargs
            )
            self.tokenizer = open_clip.get_tokenizer(name)
        except (OSError, RuntimeError, ValueError) as err:
            raise ModelError(
                f"model {spec.key!r}: open_clip could not load {name!r}: {err}"
            ) from err
        self.model = model.eval().to(dtype=self.dtype)
        self._transform = preprocess
        self._weights = weights
        self.context_length = int(getattr(self.tokenizer, "context_length", 77))

    @property
    def image_transform(self) -> Callable[[Image.Image], torch.Tensor]:
        return self._transform

    @torch.inference_mode()
    def encode_images(self, pixels: torch.Tensor) -> np.ndarray:
        pixels = pixels.to(self.device, dtype=self.dtype, non_blocking=True)
        return l2_normalize(self.model.encode_image(pixels))

    @torch.inference_mode()
    def encode_texts(self, texts: Sequence[str]) -> np.ndarray:
        tokens = self.tokenizer(list(texts)).to(self.device)
        return l2_normalize(self.model.encode_text(tokens))

    def truncated(self, texts: Sequence[str]) -> list[bool]:
        return [self._n_tokens(t) > self.context_length for t in texts]

    def _n_tokens(self, text: str) -> int:
        hf = getattr(self.tokenizer, "tokenizer", None)
        if hf is not None:  # HFTokenizer / SigLipTokenizer: ids include the special tokens
            clean = getattr(self.tokenizer, "clean_fn", lambda s: s)
            return len(hf(clean(text), truncation=False)["input_ids"])
        return len(self.tokenizer.encode(text)) + 2  # SimpleTokenizer: + start and end tokens

    def provenance(self) -> dict[str, Any]:
        return {
            "key": self.spec.key,
            "family": self.spec.family,
            "args": self.spec.args,
            "library": f"open_clip_torch {open_clip.__version__}",
            "weights": describe_weights(self._weights),
            "preprocess": repr(self._transform),
            "dtype": str(self.dtype).removeprefix("torch."),
            "device": str(self.device),
            "context_length": self.context_length,
        }


def load(spec: ModelSpec, device: str = "auto", precision: str = "auto") -> OpenClipModel:
    return OpenClipModel(spec, device=device, precision=precision)
