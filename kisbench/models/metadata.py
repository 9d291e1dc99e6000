"""A model's description measured from the loaded model itself (meta.json ``metadata``).

Parameter counts sum the loaded tensors; the image encoder's cost is counted by running it
once on one image of the model's input size under ``torch.utils.flop_counter``. The record's
fields are documented in docs/models.md#model-metadata.

Cost convention: ``image_gflops`` counts one multiply-add as one FLOP, as the model papers,
open_clip's model profile, timm and fvcore do (ViT-B/16 at 224 px: about 17.6 GFLOPs).
``FlopCounterMode`` counts two FLOPs per multiply-add, so its total is halved. Only matrix
products, convolutions and attention are counted (as fvcore does); normalisation,
activations and softmax are not. The lavis worker (kisbench/models/lavis_worker.py) counts
the same way in its own environment: keep the two in step.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

import torch
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

FLOPS_CONVENTION = "multiply-adds (1 multiply-add = 1 FLOP), matmul/conv/attention only"


@contextlib.contextmanager
def countable_attention() -> Iterator[None]:
    """Attention as plain matrix products while counting: the fused kernels (the CPU flash
    kernel, nn.MultiheadAttention's fast path) are invisible to ``FlopCounterMode``, which
    would leave out the attention products (and, on the fast path, the qkv projection)."""
    fast = torch.backends.mha.get_fastpath_enabled()
    torch.backends.mha.set_fastpath_enabled(False)
    try:
        with sdpa_kernel(SDPBackend.MATH):
            yield
    finally:
        torch.backends.mha.set_fastpath_enabled(fast)


def count_gflops(
    forward: Callable[[], Any], weights: Iterable[torch.Tensor] = ()
) -> tuple[float, Any]:
    """(GFLOPs as multiply-adds, the output) of one call of ``forward``, whose model has
    the parameters ``weights``. They stop requiring gradients meanwhile: the counter's
    module tracker hooks into the autograd graph of any tensor that requires them, and
    inference mode (in which the families encode) has no graph to hook into."""
    weights = [w for w in weights if w.requires_grad]
    for w in weights:
        w.requires_grad_(False)
    try:
        with countable_attention(), FlopCounterMode(display=False) as counter:
            out = forward()
    finally:
        for w in weights:
            w.requires_grad_(True)
    return counter.get_total_flops() / 2 / 1e9, out


def parameters(named: Mapping[str, torch.Tensor]) -> int:
    """Elements of the tensors, each counted once (tied weights share one tensor)."""
    seen: dict[int, int] = {}
    for tensor in named.values():
        seen[id(tensor)] = tensor.numel()
    return sum(seen.values())


def parameter_counts(
    image: Mapping[str, torch.Tensor],
    text: Mapping[str, torch.Tensor],
    everything: Mapping[str, torch.Tensor],
) -> dict[str, int]:
    """``image``, ``text`` and ``total`` parameters, and ``shared`` (those of both towers,
    as BLIP-2's Q-Former; by name, since a family may load the shared part twice), given
    the towers' and the whole model's tensors by checkpoint name."""
    shared = {k: v for k, v in image.items() if k in text}
    return {
        "image": parameters(image),
        "text": parameters(text),
        "shared": parameters(shared),
        "total": parameters(everything),
    }


def record(
    *,
    context_length: int | None,
    tokenizer: str,
    image_size: tuple[int, int],
    resize: str,
    interpolation: str | None,
    embedding_dim: int,
    vectors_per_image: int,
    params: dict[str, int],
    image_gflops: float,
) -> dict[str, Any]:
    """The metadata record, the same fields for every family."""
    return {
        "context_length": context_length,
        "tokenizer": tokenizer,
        "image_size": [int(image_size[0]), int(image_size[1])],
        "resize": resize,
        "interpolation": interpolation,
        "embedding_dim": int(embedding_dim),
        "vectors_per_image": int(vectors_per_image),
        "parameters": params,
        "image_gflops": round(float(image_gflops), 6),
        "flops": FLOPS_CONVENTION,
    }


def tokenizer_name(tokenizer: Any) -> str:
    """``ClassName`` of a tokenizer, with its hub name or folder when it has one."""
    inner = getattr(tokenizer, "tokenizer", None)  # open_clip's HFTokenizer wraps one
    name = type(tokenizer).__name__
    if inner is not None and hasattr(inner, "name_or_path"):
        return f"{name} ({type(inner).__name__} {inner.name_or_path})"
    where = getattr(tokenizer, "name_or_path", None)
    return f"{name} {where}" if where else name
