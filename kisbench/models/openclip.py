"""open_clip family: OpenAI CLIP, LAION, DFN and WebLI SigLIP models.

Params entry: ``family: open_clip``, ``model`` (an open_clip name with a ``pretrained`` tag
such as ``openai``, ``hf-hub:org/repo``, or ``local-dir:path``), and optionally ``revision``
(a hub commit or branch to pin). The hub commit actually loaded goes into provenance.

Every hub model is resolved to files in the Hugging Face cache first, then handed to
open_clip as files: that is how a revision can be pinned (open_clip itself always loads
``main``) and how we know exactly which commit was loaded.
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import open_clip
import torch
from open_clip.tokenizer import HFTokenizer
from PIL import Image

from kisbench.models import hub, weights
from kisbench.models.base import (
    ONE_VECTOR,
    EmbeddingModel,
    ModelError,
    ModelSpec,
    checked_budget,
    l2_normalize,
)


class OpenClipModel(EmbeddingModel):
    vectors = ONE_VECTOR  # the pooled image embedding
    library = f"open_clip_torch {open_clip.__version__}"

    def __init__(self, spec: ModelSpec, device: str = "auto", precision: str = "auto") -> None:
        super().__init__(spec, device, precision)
        name = str(spec.require("model"))
        try:
            model_name, kwargs, self.tokenizer, self._weights = _resolve(spec, name)
            model, _, preprocess = open_clip.create_model_and_transforms(
                model_name, device=self.device, **kwargs
            )
        except (OSError, RuntimeError, ValueError) as err:
            raise ModelError(
                f"model {spec.key!r}: open_clip could not load {name!r}: {err}"
            ) from err
        self.model = model.eval().to(dtype=self.dtype)
        self._transform = preprocess
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
        # SigLIP's tokenizer pads to the full context (64): its text tower was trained so.
        tokens = self.tokenizer(list(texts)).to(self.device)
        return l2_normalize(self.model.encode_text(tokens))

    def truncated(self, texts: Sequence[str]) -> list[bool]:
        return [self._n_tokens(t) > self.context_length for t in texts]

    def context_tokens(self) -> int:
        return self.context_length

    def token_counts(self, texts: Sequence[str]) -> list[int]:
        return [self._n_tokens(t) for t in texts]

    @torch.inference_mode()
    def encode_texts_cut(self, texts: Sequence[str], max_tokens: int) -> np.ndarray:
        cut = checked_budget(self, max_tokens)
        # open_clip's own cut at `cut` tokens (its SimpleTokenizer puts the end-of-text token
        # last, where CLIP pools; the HF tokenizer keeps its end token), then padded to the
        # full context as encode_texts pads (SigLIP pools the last position).
        tokens = self.tokenizer(list(texts), context_length=cut)
        if cut < self.context_length:
            hf = getattr(self.tokenizer, "tokenizer", None)
            pad = getattr(hf, "pad_token_id", None) or 0  # SimpleTokenizer pads with 0
            tokens = torch.nn.functional.pad(tokens, (0, self.context_length - cut), value=pad)
        return l2_normalize(self.model.encode_text(tokens.to(self.device)))

    def _n_tokens(self, text: str) -> int:
        hf = getattr(self.tokenizer, "tokenizer", None)
        if hf is not None:  # HFTokenizer (SigLIP): ids include the special tokens
            clean = getattr(self.tokenizer, "clean_fn", lambda s: s)
            return len(hf(clean(text), truncation=False)["input_ids"])
        return len(self.tokenizer.encode(text)) + 2  # SimpleTokenizer: + start and end tokens

    def _provenance_extra(self) -> dict[str, Any]:
        # The learned temperature: the simulate stage starts its scores from exp(scale * cos).
        scale = (
            self.model.logit_scale.detach().exp().item()
            if hasattr(self.model, "logit_scale")
            else None
        )
        return {"context_length": self.context_length, "logit_scale": scale}

    def _parameter_groups(self) -> tuple[dict[str, torch.Tensor], ...]:
        # open_clip keeps the image tower under `visual`; the rest is the text tower but
        # the learned temperature and bias (one number each, in neither tower).
        everything = dict(self.model.named_parameters())
        image = {k: v for k, v in everything.items() if k.startswith("visual.")}
        text = {
            k: v
            for k, v in everything.items()
            if k not in image and k not in ("logit_scale", "logit_bias")
        }
        return image, text, everything

    def _resize_mode(self) -> tuple[str, str | None]:
        resize, interpolation = super()._resize_mode()
        if resize == "unknown":  # e.g. "longest" (resize keeping the ratio, then pad)
            cfg = getattr(self.model.visual, "preprocess_cfg", {})
            return str(cfg.get("resize_mode", "unknown")), cfg.get("interpolation")
        return resize, interpolation


Resolved = tuple[str, dict[str, Any], Any, dict[str, Any]]


TEST_TRUNKS = "kisbench.models.testing.timm_tiny"


def _resolve(spec: ModelSpec, name: str) -> Resolved:
    """(open_clip model name, create kwargs, tokenizer, weights provenance) for an entry."""
    revision = spec.args.get("revision")
    if name.startswith(weights.LOCAL_DIR):
        folder = Path(name.removeprefix(weights.LOCAL_DIR))
        # A local folder may be a tiny test model whose image trunk is a timm name that the
        # test package registers. Imported by name, so that the test builders are no part
        # of any real model's code (and of its cache key).
        importlib.import_module(TEST_TRUNKS)
        prov = weights.local_folder(spec.key, folder, weights.OPEN_CLIP_CONFIG)
        return name, {}, open_clip.get_tokenizer(name), prov
    if name.startswith(weights.HF_HUB):
        return _resolve_hub_repo(spec.key, name.removeprefix(weights.HF_HUB), revision)
    return _resolve_tag(spec.key, name, spec.args.get("pretrained"), revision)


def _resolve_hub_repo(key: str, repo: str, revision: str | None) -> Resolved:
    """``hf-hub:org/repo``: config and weights from the cache (at ``revision``), loaded as
    the local folder they lie in; the tokenizer from the repo that the config names."""
    config = hub.download_first(key, hub.HubFile(repo, (weights.OPEN_CLIP_CONFIG,), revision))
    checkpoint = hub.download_first(key, hub.HubFile(repo, weights.OPEN_CLIP_WEIGHTS, revision))
    folder = config.parent
    model_cfg = json.loads(config.read_text(encoding="utf-8"))["model_cfg"]
    text_cfg = model_cfg.get("text_cfg", {})
    tok_name = text_cfg.get("hf_tokenizer_name")
    if tok_name:
        # What open_clip.get_tokenizer("hf-hub:...") builds, but from the pinned config.
        tokenizer = HFTokenizer(
            tok_name,
            context_length=text_cfg.get("context_length", 77),
            tokenizer_mode=text_cfg.get("tokenizer_mode"),
            **text_cfg.get("tokenizer_kwargs", {}),
        )
    else:
        tokenizer = open_clip.get_tokenizer(f"{weights.LOCAL_DIR}{folder}")
    files = {config.name: config, checkpoint.name: checkpoint}
    prov = hub.describe_files(repo, revision, files)
    if tok_name:
        tok_file = hub.HubFile(tok_name, ("tokenizer_config.json",)).cached()
        prov["tokenizer"] = {
            "repo": tok_name,
            "revision": hub.snapshot_commit(tok_file) if tok_file else None,
        }
    return f"{weights.LOCAL_DIR}{folder}", {}, tokenizer, prov


def _resolve_tag(key: str, name: str, pretrained: str | None, revision: str | None) -> Resolved:
    """A built-in architecture with a pretrained tag (or a checkpoint file)."""
    cfg = open_clip.get_pretrained_cfg(name, pretrained) if pretrained else {}
    tokenizer = open_clip.get_tokenizer(name)
    if not cfg.get("hf_hub"):  # no weights, a file path, or a URL-only tag
        if pretrained and not cfg and not Path(pretrained).is_file():
            raise ModelError(
                f"model {key!r}: {pretrained!r} is neither an open_clip tag of {name!r} "
                f"(known: {', '.join(open_clip.list_pretrained_tags_by_model(name))}) nor a file"
            )
        prov = {"source": "open_clip", "pretrained": pretrained, "url": cfg.get("url")}
        return name, {"pretrained": pretrained}, tokenizer, prov
    repo, filename = weights.split_hub_path(cfg["hf_hub"])
    item = hub.HubFile(repo, weights.open_clip_weight_names(filename), revision)
    if (name, pretrained) not in weights.OPEN_CLIP_TAGS and hub.require(key, [item]):
        hub.go_offline()  # (the tags in OPEN_CLIP_TAGS were checked before the import)
    checkpoint = hub.download_first(key, item)
    kwargs = {
        "pretrained": str(checkpoint),
        # The tag's preprocessing and activation, which open_clip applies for a tag but not
        # for a file. (open_clip 3.x only warns when a tag wants QuickGELU, as OpenAI's
        # CLIP weights do, and the architecture name lacks it: that model is wrong.)
        "force_quick_gelu": bool(cfg.get("quick_gelu", False)),
        "image_mean": cfg.get("mean"),
        "image_std": cfg.get("std"),
        "image_interpolation": cfg.get("interpolation"),
        "image_resize_mode": cfg.get("resize_mode"),
    }
    return (
        name,
        kwargs,
        tokenizer,
        hub.describe_files(repo, revision, {checkpoint.name: checkpoint}),
    )


def load(spec: ModelSpec, device: str = "auto", precision: str = "auto") -> OpenClipModel:
    return OpenClipModel(spec, device=device, precision=precision)
