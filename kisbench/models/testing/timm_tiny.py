"""Small timm image trunks for the tiny open_clip stand-ins (kisbench/models/testing/
builders.py): SigLIP's (and SigLIP 2's) ViT, Perception Encoder's ViT, MobileCLIP2's FastViT.

open_clip builds these image towers by timm model name and cannot shrink them through its
config, so each tiny trunk is a registered timm name. Registered on import; the open_clip
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


TINY_PE_CORE_TRUNK = "kisbench_tiny_pe_core_vit"
TINY_MCI_TRUNK = "kisbench_tiny_mci"


@register_model
def kisbench_tiny_pe_core_vit(pretrained: bool = False, **kwargs: Any) -> Any:
    """Perception Encoder's ViT (timm's Eva: 2-D RoPE, a norm before the blocks, attention
    pooling) at 2 layers, width 64, 32 px; the RoPE grid is the 2 x 2 patches of 32 px."""
    args = {
        "img_size": 32,
        "patch_size": 16,
        "embed_dim": 64,
        "depth": 2,
        "num_heads": 2,
        "ref_feat_shape": (2, 2),
        "attn_pool_num_heads": 2,
    }
    args.update(kwargs)
    return timm.create_model("vit_pe_core_base_patch16_224", pretrained=False, **args)


@register_model
def kisbench_tiny_mci(pretrained: bool = False, **kwargs: Any) -> Any:
    """MobileCLIP2-S0's image tower (timm's FastViT MCi0: RepMixer stages, then attention)
    with one block per stage and widths 8 to 64."""
    args = {"layers": (1, 1, 1, 1), "embed_dims": (8, 16, 32, 64)}
    args.update(kwargs)
    return timm.create_model("fastvit_mci0", pretrained=False, **args)
