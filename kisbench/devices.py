"""Where and in what precision tensor work runs.

Kept apart from :mod:`kisbench.models` so that stages without a model (rank, fusion) import
torch alone, not torchvision and the model libraries (several seconds a process).
"""

from __future__ import annotations

import torch

from kisbench.errors import ModelError

PRECISIONS = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


def resolve_device(device: str) -> torch.device:
    """``auto`` is the GPU when there is one, else the CPU; anything else as torch reads it."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def resolve_precision(precision: str, device: torch.device) -> torch.dtype:
    """``auto`` is bf16 on a GPU (1.5-2.8x faster than fp32 there) and fp32 on a CPU."""
    if precision == "auto":
        return torch.bfloat16 if device.type == "cuda" else torch.float32
    if precision not in PRECISIONS:
        raise ModelError(f"precision {precision!r} is not one of auto, {', '.join(PRECISIONS)}")
    return PRECISIONS[precision]
