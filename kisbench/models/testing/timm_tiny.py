"""A small timm ViT trunk for the tiny SigLIP stand-in (kisbench/models/testing/builders.py).

open_clip builds a SigLIP image tower by timm model name and cannot shrink it through its
config, so the tiny trunk is a registered timm name. Registered on import; the open_clip
adapter imports this module so that any process can load the tiny model.
"""

from __future__ import annotations

from typing import Any

import timm
from timm.models import register_model

TINY_SIGLIP_TRUNK = "kisbench_tiny_siglip_vit"


@register_model
def kisbench_tiny_siglip_vit(pretrained: bool = False, **kwargs: Any) -> Any:
    """SigLIP's ViT (no class token, attention-pool head) at 2 layers, width 64, 32 px
    (open_clip does not pass its image size to timm: the name fixes it, as in timm's own
    ``vit_base_patch16_siglip_512``)."""
    args = {"img_size": 32, "patch_size": 16, "embed_dim": 64, "depth": 2, "num_heads": 2}
    args.update(kwargs)
    return timm.create_model("vit_base_patch16_siglip_224", pretrained=False, **args)
