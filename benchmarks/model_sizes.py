"""Parameter counts of the experiment's models, from their architectures alone (built on
PyTorch's meta device: no weights, no download), for the model table in docs/models.md.

    python -m benchmarks.model_sizes

BLIP-2 pretrain_vitL is LAVIS': its CLIP ViT-L (22 blocks, of which LAVIS keeps 21) is
counted with LAVIS' class in .venv-lavis; its Q-Former is counted as transformers' BLIP-2
Q-Former of the same shape (BERT-base, cross-attention every 2nd layer, 1024-wide input).
"""

from __future__ import annotations

import subprocess

import open_clip
import torch
from transformers import (
    AlignConfig,
    AlignModel,
    Blip2Config,
    Blip2ForImageTextRetrieval,
    Blip2QFormerConfig,
    Blip2QFormerModel,
)

from benchmarks.machine import describe
from kisbench.cli import command_line

app = command_line()

OPEN_CLIP = {
    "clip_b32": "ViT-B-32-quickgelu",
    "siglip_so400m": "ViT-SO400M-14-SigLIP-384",
    "siglip_l16": "ViT-L-16-SigLIP-384",
    "siglip_b16": "ViT-B-16-SigLIP-512",
    "dfn5b_h14": "ViT-H-14-378-quickgelu",
    "laion_g14": "ViT-g-14",
    "laion_h14": "ViT-H-14",
}

LAVIS_VIT = (
    "import torch; from lavis.models.clip_vit import VisionTransformer\n"
    "with torch.device('meta'): m = VisionTransformer(224, 14, 1024, 22, 16, False)\n"
    "print(sum(p.numel() for p in m.parameters()))"
)


def count(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@app.command()
def main() -> None:
    """Parameter counts and fp32 sizes of the default experiment's models."""
    print("\n".join(describe()))
    sizes = {}
    with torch.device("meta"):
        for key, name in OPEN_CLIP.items():
            sizes[key] = count(open_clip.create_model(name, pretrained=None, device="meta"))
        sizes["align"] = count(AlignModel(AlignConfig()))  # defaults = kakaobrain/align-base
        cfg = Blip2Config(qformer_config={"use_qformer_text_input": True})
        sizes["blip2_itm_g"] = count(Blip2ForImageTextRetrieval(cfg))
        qformer = count(Blip2QFormerModel(Blip2QFormerConfig(encoder_hidden_size=1024)))
    vit = subprocess.run(
        [".venv-lavis/bin/python", "-c", LAVIS_VIT], capture_output=True, text=True, check=True
    ).stdout.split()[-1]
    sizes["blip2_vitl (ViT-L + Q-Former, approx.)"] = int(vit) + qformer
    for key, n in sizes.items():
        print(f"{key:40s} {n / 1e6:8.1f} M parameters  {n * 4 / 2**30:6.2f} GiB in fp32")


if __name__ == "__main__":
    app()
