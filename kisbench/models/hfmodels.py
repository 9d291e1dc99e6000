"""What the transformers families (ALIGN, BLIP-2 retrieval) share: loading from a local
folder or a hub repository at a revision, the picklable image transform, provenance of the
weights actually loaded, tokenizing with truncation that is reported, and the adapter base
class that puts these together."""

from __future__ import annotations

import contextlib
from abc import abstractmethod
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import transformers
from PIL import Image

from kisbench.models import hub, weights
from kisbench.models import metadata as measure
from kisbench.models.base import EmbeddingModel, ModelError, ModelSpec, checked_budget


class Source:
    """Where a transformers model comes from: ``source`` (folder or hub repo id) and an
    optional ``revision`` of a params entry."""

    def __init__(self, spec: ModelSpec) -> None:
        self.key = spec.key
        self.name = str(spec.require("source"))
        self.revision = spec.args.get("revision")
        self.local = weights.is_local_source(self.name)
        if self.local:
            self.provenance = weights.local_folder(self.key, Path(self.name), "config.json")

    def load(self, cls: Any, **kwargs: Any) -> Any:
        """``cls.from_pretrained`` of this source, with a clear error naming the model."""
        try:
            return cls.from_pretrained(self.name, revision=self.revision, **kwargs)
        except (OSError, ValueError) as err:
            raise ModelError(
                f"model {self.key!r}: transformers could not load {cls.__name__} from "
                f"{self.name!r}: {err}"
            ) from err

    def weights(self) -> dict[str, Any]:
        """Provenance: the local files' hashes, or the hub commit found in the cache."""
        if self.local:
            return self.provenance
        paths = {}
        for item in (
            hub.HubFile(self.name, ("config.json",), self.revision),
            hub.HubFile(self.name, weights.TRANSFORMERS_WEIGHTS, self.revision),
        ):
            path = item.cached()
            if path is not None:
                paths[path.name] = path
        return hub.describe_files(self.name, self.revision, paths)


class ImageProcessorTransform:
    """PIL image -> pixel tensor by the model's own Hugging Face image processor (picklable,
    so it runs in DataLoader workers)."""

    def __init__(self, processor: Any) -> None:
        self.processor = processor

    def __call__(self, image: Image.Image) -> torch.Tensor:
        return self.processor(images=image, return_tensors="pt")["pixel_values"][0]

    def __repr__(self) -> str:
        return repr(self.processor)


class TextTokens:
    """A tokenizer with a token limit: texts longer than ``limit`` tokens (special tokens
    included) are cut there, and reported as truncated."""

    def __init__(self, tokenizer: Any, limit: int) -> None:
        self.tokenizer = tokenizer
        self.limit = int(limit)

    def __call__(self, texts: Sequence[str], device: torch.device) -> dict[str, torch.Tensor]:
        enc = self.tokenizer(
            list(texts),
            padding="longest",  # padding is masked out: the length does not change results
            truncation=True,
            max_length=self.cut or self.limit,
            return_tensors="pt",
        )
        return {k: v.to(device) for k, v in enc.items()}

    cut: int | None = None  # a token budget below the limit, while `budget` holds it

    @contextlib.contextmanager
    def budget(self, max_tokens: int) -> Iterator[None]:
        """Cut at ``max_tokens`` instead of the limit inside the block (the tokenizer's own
        truncation keeps [CLS] first and [SEP] last), so that the families' encode_texts
        embed a budget by their one text path."""
        self.cut = int(max_tokens)
        try:
            yield
        finally:
            self.cut = None

    def counts(self, texts: Sequence[str]) -> list[int]:
        """Tokens of each text, special tokens included, uncut."""
        return [len(ids) for ids in self.tokenizer(list(texts), truncation=False)["input_ids"]]

    def truncated(self, texts: Sequence[str]) -> list[bool]:
        return [n > self.limit for n in self.counts(texts)]


def text_limit(spec: ModelSpec, max_positions: int) -> int:
    """The entry's ``context_length``, else the text encoder's position limit."""
    limit = int(spec.args.get("context_length") or max_positions)
    if limit > max_positions:
        raise ModelError(
            f"model {spec.key!r}: context_length {limit} exceeds the text encoder's "
            f"{max_positions} positions"
        )
    return limit


LIBRARY = f"transformers {transformers.__version__}"


class HfEmbedder(EmbeddingModel):
    """A transformers family's adapter: the source from the params entry; :meth:`_load`
    loads the model and sets ``_transform`` (the image processor) and ``text`` (the
    tokenizer with its limit); the image transform, truncation report and provenance follow
    from those. A subclass declares its ``vectors``."""

    library = LIBRARY
    _transform: ImageProcessorTransform
    text: TextTokens

    def __init__(self, spec: ModelSpec, device: str = "auto", precision: str = "auto") -> None:
        super().__init__(spec, device, precision)
        self.source = Source(spec)
        self._load()
        self._weights = self.source.weights()

    @abstractmethod
    def _load(self) -> None:
        """Load the model from ``self.source``; set ``self._transform`` and ``self.text``."""

    def _module(self, cls: Any) -> Any:
        """``cls`` loaded from the source in the run's precision, on the run's device."""
        return self.source.load(cls, dtype=self.dtype).eval().to(self.device)

    @property
    def image_transform(self) -> Callable[[Image.Image], torch.Tensor]:
        return self._transform

    def truncated(self, texts: Sequence[str]) -> list[bool]:
        return self.text.truncated(texts)

    def context_tokens(self) -> int:
        return self.text.limit

    def token_counts(self, texts: Sequence[str]) -> list[int]:
        return self.text.counts(texts)

    def encode_texts_cut(self, texts: Sequence[str], max_tokens: int) -> np.ndarray:
        with self.text.budget(checked_budget(self, max_tokens)):
            return self.encode_texts(texts)

    def _provenance_extra(self) -> dict[str, Any]:
        return {"context_length": self.text.limit}

    def _tokenizer_name(self) -> str:
        return measure.tokenizer_name(self.text.tokenizer)

    def _resize_mode(self) -> tuple[str, str | None]:
        return processor_resize(self._transform.processor)


def processor_resize(processor: Any) -> tuple[str, str | None]:
    """(resize, interpolation) of a Hugging Face image processor, in the words of
    ``PixelSpec``: ``shortest`` (shortest side to a size, then centre crop) or ``squash``
    (both sides to height x width; ``squash, centre crop`` when a crop follows)."""

    def field(size: Any, name: str) -> Any:
        return size.get(name) if isinstance(size, dict) else getattr(size, name, None)

    size = getattr(processor, "size", None)
    crop = bool(getattr(processor, "do_center_crop", False))
    if field(size, "shortest_edge"):
        resize = "shortest" if crop else "shortest, no crop"
    elif field(size, "height") and field(size, "width"):
        resize = "squash, centre crop" if crop else "squash"
    else:
        resize = "unknown"
    if not getattr(processor, "do_resize", True):
        resize = "none"
    resample = getattr(processor, "resample", None)
    try:
        interpolation = Image.Resampling(int(resample)).name.lower()
    except (TypeError, ValueError):
        interpolation = None if resample is None else str(resample)
    return resize, interpolation
