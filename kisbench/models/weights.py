"""Which weights each model needs, checked before any model library is imported.

Light on purpose (no torch, no open_clip, no transformers): `kisbench.models.load_model`
calls ``check`` first, so a model whose weights are neither cached nor downloadable fails
in a second or two with a message that says what to do (see ``hub.require``).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from kisbench import files
from kisbench.errors import ModelError
from kisbench.models import hub
from kisbench.models.spec import ModelSpec

LOCAL_DIR = "local-dir:"
HF_HUB = "hf-hub:"
OPEN_CLIP_CONFIG = "open_clip_config.json"
OPEN_CLIP_WEIGHTS = ("open_clip_model.safetensors", "open_clip_pytorch_model.bin")
TRANSFORMERS_WEIGHTS = (
    "model.safetensors",
    "model.safetensors.index.json",
    "pytorch_model.bin",
    "pytorch_model.bin.index.json",
)

# Where open_clip's pretrained tags of the params models live on the hub (open_clip 3.3's
# own table, `open_clip.get_pretrained_cfg(model, tag)["hf_hub"]`, copied so that the check
# needs no open_clip import, which takes seconds; tests/test_models_openclip.py keeps the
# copy equal to open_clip's). A tag missing here is checked after open_clip is imported.
OPEN_CLIP_TAGS: dict[tuple[str, str], str] = {
    ("ViT-B-32", "openai"): "timm/vit_base_patch32_clip_224.openai/",
    ("ViT-B-32-quickgelu", "openai"): "timm/vit_base_patch32_clip_224.openai/",
    ("ViT-H-14-378-quickgelu", "dfn5b"): "apple/DFN5B-CLIP-ViT-H-14-378/",
    ("ViT-g-14", "laion2b_s34b_b88k"): "laion/CLIP-ViT-g-14-laion2B-s34B-b88K/",
    ("ViT-H-14", "laion2b_s32b_b79k"): "laion/CLIP-ViT-H-14-laion2B-s32B-b79K/",
    # the presets beyond the thesis (params.yaml models, docs/models.md#presets)
    ("ViT-L-14-quickgelu", "openai"): "timm/vit_large_patch14_clip_224.openai/",
    ("ViT-L-14-336-quickgelu", "openai"): "timm/vit_large_patch14_clip_336.openai/",
    ("ViT-L-14", "datacomp_xl_s13b_b90k"): "laion/CLIP-ViT-L-14-DataComp.XL-s13B-b90K/",
    ("xlm-roberta-base-ViT-B-32", "laion5b_s13b_b90k"): (
        "laion/CLIP-ViT-B-32-xlm-roberta-base-laion5B-s13B-b90k/"
    ),
    ("ViT-B-16-SigLIP2-256", "webli"): "timm/ViT-B-16-SigLIP2-256/",
    ("ViT-L-16-SigLIP2-384", "webli"): "timm/ViT-L-16-SigLIP2-384/",
    ("ViT-SO400M-14-SigLIP2-378", "webli"): "timm/ViT-SO400M-14-SigLIP2-378/",
    ("ViT-SO400M-16-SigLIP2-512", "webli"): "timm/ViT-SO400M-16-SigLIP2-512/",
    ("ViT-gopt-16-SigLIP2-384", "webli"): "timm/ViT-gopt-16-SigLIP2-384/",
    ("PE-Core-B-16", "meta"): "timm/PE-Core-B-16/",
    ("PE-Core-L-14-336", "meta"): "timm/PE-Core-L-14-336/",
    ("PE-Core-bigG-14-448", "meta"): "timm/PE-Core-bigG-14-448/",
    ("ViT-H-14-worldwide-quickgelu", "metaclip2_worldwide"): (
        "timm/vit_huge_patch14_clip_224.metaclip2_worldwide/"
    ),
    ("MobileCLIP2-S0", "dfndr2b"): "timm/MobileCLIP2-S0-OpenCLIP/",
    ("MobileCLIP2-B", "dfndr2b"): "timm/MobileCLIP2-B-OpenCLIP/",
    ("MobileCLIP2-L-14", "dfndr2b"): "timm/MobileCLIP2-L-14-OpenCLIP/",
    ("EVA02-E-14-plus", "laion2b_s9b_b144k"): (
        "timm/eva02_enormous_patch14_plus_clip_224.laion2b_s9b_b144k/"
    ),
    ("ViT-L-14-quickgelu", "dfn2b"): "apple/DFN2B-CLIP-ViT-L-14/",
}

# LAVIS' BLIP-2 (pretrain_vitL) downloads these itself, hard-coded: a BERT tokenizer and
# config from the hub, and two checkpoints from plain URLs into torch's hub cache.
LAVIS_BERT = "bert-base-uncased"
LAVIS_URLS = (
    "https://storage.googleapis.com/sfr-vision-language-research/LAVIS/models/BLIP2/clip_vit_L.pth",
    "https://storage.googleapis.com/sfr-vision-language-research/LAVIS/models/BLIP2/"
    "blip2_pretrained_vitL.pth",
)


def local_folder(key: str, folder: Path, marker: str) -> dict[str, Any]:
    """Provenance of a local model folder (the tiny test models): every file's sha256."""
    if not (folder / marker).is_file():
        raise ModelError(
            f"model {key!r}: local model folder {folder} is missing or has no {marker}; "
            "for the tiny test models run `kisbench tiny-models` (or `make smoke`)"
        )
    hashes = {
        str(p.relative_to(folder)): files.sha256(p)
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }
    return {"source": "local-dir", "path": str(folder), "files": hashes}


def split_hub_path(hf_hub: str) -> tuple[str, str | None]:
    """open_clip's ``org/repo/[file]`` pretrained form -> (repo id, file or None)."""
    repo, _, filename = hf_hub.rpartition("/")
    return repo, filename or None


def open_clip_weight_names(filename: str | None) -> tuple[str, ...]:
    """open_clip prefers a ``.safetensors`` twin of a ``.bin``/``.pth`` checkpoint."""
    if filename is None:
        return OPEN_CLIP_WEIGHTS
    if filename.endswith((".bin", ".pth")):
        return (filename[:-4] + ".safetensors", filename)
    return (filename,)


def open_clip_needs(spec: ModelSpec) -> list[hub.Needed]:
    name = str(spec.require("model"))
    revision = spec.args.get("revision")
    if name.startswith(LOCAL_DIR):
        return []
    if name.startswith(HF_HUB):
        repo = name.removeprefix(HF_HUB)
        needs: list[hub.Needed] = [
            hub.HubFile(repo, (OPEN_CLIP_CONFIG,), revision),
            hub.HubFile(repo, OPEN_CLIP_WEIGHTS, revision),
        ]
        config = hub.HubFile(repo, (OPEN_CLIP_CONFIG,), revision).cached()
        if config is not None:  # SigLIP configs name another repo for the tokenizer
            text_cfg = json.loads(config.read_text()).get("model_cfg", {}).get("text_cfg", {})
            tokenizer = text_cfg.get("hf_tokenizer_name")
            if tokenizer:
                needs.append(hub.HubFile(tokenizer, ("tokenizer_config.json",)))
        return needs
    pretrained = spec.args.get("pretrained")
    if not pretrained or Path(str(pretrained)).is_file():
        return []
    hf_hub = OPEN_CLIP_TAGS.get((name, str(pretrained)))
    if hf_hub is None:
        return []
    repo, filename = split_hub_path(hf_hub)
    return [hub.HubFile(repo, open_clip_weight_names(filename), revision)]


def is_local_source(source: str) -> bool:
    """A folder rather than a hub repo id (``name`` or ``org/name``)."""
    return Path(source).exists() or source.startswith((".", "/")) or source.count("/") > 1


def transformers_needs(spec: ModelSpec) -> list[hub.Needed]:
    source = str(spec.require("source"))
    if is_local_source(source):
        local_folder(spec.key, Path(source), "config.json")  # a clear error if missing
        return []
    revision = spec.args.get("revision")
    return [
        hub.HubFile(source, ("config.json",), revision),
        hub.HubFile(source, TRANSFORMERS_WEIGHTS, revision),
    ]


def torch_hub_checkpoints() -> Path:
    """Where LAVIS (through timm 0.4's hub helper, i.e. torch.hub) caches URL checkpoints."""
    torch_home = os.environ.get("TORCH_HOME") or str(
        Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "torch"
    )
    return Path(torch_home) / "hub" / "checkpoints"


def lavis_needs(spec: ModelSpec) -> list[hub.Needed]:
    if spec.args.get("local_dir"):
        return []
    return [
        # what transformers 4.26 (no safetensors in .venv-lavis) fetches for it
        *(
            hub.HubFile(LAVIS_BERT, (name,))
            for name in ("config.json", "vocab.txt", "tokenizer_config.json", "pytorch_model.bin")
        ),
        *(hub.UrlFile(url, torch_hub_checkpoints() / url.rsplit("/", 1)[1]) for url in LAVIS_URLS),
    ]
