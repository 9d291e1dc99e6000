"""Tiny random-weight stand-ins for the real models, for tests and `make smoke`.

One per family, and one per architecture among the open_clip presets (SigLIP 2, Perception
Encoder, MobileCLIP2: open_clip's own configs shrunk), built from small configs with a
fixed seed and saved to a local folder,
then loaded through exactly the code path of the real weights (open_clip's ``local-dir:``,
transformers' ``from_pretrained(folder)``, LAVIS' own builder and checkpoint loader).
Their retrieval results are chance level: they check the pipeline, not the models.
"""

from __future__ import annotations

import copy
import json
import os
import shutil
import string
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from kisbench.errors import ModelError
from kisbench.models.testing.timm_tiny import (
    TINY_MCI_TRUNK,
    TINY_PE_CORE_TRUNK,
    TINY_SIGLIP_TRUNK,
)

OPENAI_MEAN = [0.48145466, 0.4578275, 0.40821073]
OPENAI_STD = [0.26862954, 0.26130258, 0.27577711]

# A CLIP-style tower pair: built-in SimpleTokenizer (vocab 49408, BPE ships in the wheel).
TINY_CLIP: dict[str, Any] = {
    "model_cfg": {
        "embed_dim": 32,
        "vision_cfg": {
            "image_size": 64,
            "layers": 2,
            "width": 64,
            "patch_size": 16,
            "head_width": 32,
        },
        "text_cfg": {
            "context_length": 77,
            "vocab_size": 49408,
            "width": 64,
            "heads": 2,
            "layers": 2,
        },
    },
    "preprocess_cfg": {
        "size": 64,
        "mean": OPENAI_MEAN,
        "std": OPENAI_STD,
        "interpolation": "bicubic",
        "resize_mode": "shortest",
    },
}

# SigLIP's layout (timm trunk with attention pooling, text padded to the full 64-token
# context, no causal mask, last-token pooling) at toy size; its tokenizer is trained here.
TINY_SIGLIP: dict[str, Any] = {
    "model_cfg": {
        "embed_dim": 64,
        "init_logit_bias": -10,
        "custom_text": True,
        "vision_cfg": {
            "image_size": 32,
            "timm_model_name": TINY_SIGLIP_TRUNK,
            "timm_model_pretrained": False,
            "timm_pool": "map",
            "timm_proj": "none",
        },
        "text_cfg": {
            "context_length": 64,
            "vocab_size": 512,
            "hf_tokenizer_name": "kisbench/tiny-siglip",  # replaced by the folder on load
            "tokenizer_kwargs": {"clean": "canonicalize"},
            "width": 64,
            "heads": 2,
            "layers": 2,
            "no_causal_mask": True,
            "proj_bias": True,
            "pool_type": "last",
            "norm_kwargs": {"eps": 1e-6},
        },
    },
    "preprocess_cfg": {
        "size": 32,
        "mean": [0.5, 0.5, 0.5],
        "std": [0.5, 0.5, 0.5],
        "interpolation": "bicubic",
        "resize_mode": "squash",
    },
}

# Text the tiny tokenizers learn from: enough to split any English label into pieces.
_CORPUS = [
    "a photo of a dog on the grass",
    "the sun sets over the river and the old castle",
    "school of fish swimming in dark blue water",
    "a red car parked in front of a white house with a green door",
    "people walking on a street in the city at night",
    "mountains covered with snow under a clear sky",
    "close-up of a yellow flower with small insects",
    string.ascii_letters + string.digits + string.punctuation,
]


def tiny_wordpiece_vocab() -> list[str]:
    """A BERT-style (uncased WordPiece) vocabulary: characters and a few common words, so
    any text tokenizes (into many pieces, which also exercises truncation)."""
    special = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    chars = list(string.ascii_lowercase + string.digits + string.punctuation)
    suffixes = [f"##{c}" for c in string.ascii_lowercase + string.digits]
    words = sorted({w for line in _CORPUS[:-1] for w in line.split()} - set(chars))
    return special + chars + suffixes + words


def _write_vocab(folder: Path) -> Path:
    path = folder / "vocab.txt"
    path.write_text("".join(f"{t}\n" for t in tiny_wordpiece_vocab()), encoding="utf-8")
    return path


def _fresh(folder: Path) -> Path:
    folder = Path(folder)
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    return folder


def _save_openclip(
    folder: Path,
    config: dict[str, Any],
    seed: int,
    reinit: Callable[[torch.nn.Module], None] | None = None,
) -> Path:
    """Write ``config``, build the model from it by open_clip's own ``local-dir:`` path (so
    construction and loading share one code path) and save its random weights (after
    ``reinit``, where a tower's default initialisation would make its output constant)."""
    import open_clip
    from safetensors.torch import save_file

    (folder / "open_clip_config.json").write_text(json.dumps(config, indent=2) + "\n")
    torch.manual_seed(seed)
    model = open_clip.create_model(f"local-dir:{folder}")
    if reinit is not None:
        with torch.no_grad():
            reinit(model)
    # safetensors refuses tensors that share memory; clone makes each one its own.
    state = {k: v.detach().clone().contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(folder / "open_clip_model.safetensors"))
    return folder


def make_tiny_clip(folder: Path, seed: int = 0) -> Path:
    return _save_openclip(_fresh(folder), TINY_CLIP, seed)


def make_tiny_siglip(folder: Path, seed: int = 0) -> Path:
    """Tiny SigLIP: the tokenizer (a small BPE trained here, ``</s>`` appended as SigLIP's
    does) is saved as a Hugging Face tokenizer in the folder, where open_clip's
    ``local-dir:`` loader looks for it."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    folder = _fresh(folder)
    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = pre_tokenizers.Metaspace()
    vocab_size = TINY_SIGLIP["model_cfg"]["text_cfg"]["vocab_size"]
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=["<pad>", "</s>", "<unk>"],
        initial_alphabet=list(string.ascii_lowercase + string.digits + string.punctuation),
    )
    tok.train_from_iterator(_CORPUS, trainer=trainer)
    eos = tok.token_to_id("</s>")
    tok.post_processor = processors.TemplateProcessing(
        single="$A </s>", special_tokens=[("</s>", eos)]
    )
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        unk_token="<unk>",
        pad_token="<pad>",
        eos_token="</s>",
        model_max_length=64,
    )
    fast.save_pretrained(str(folder))
    return _save_openclip(folder, TINY_SIGLIP, seed)


def shrunk(
    name: str, tag: str, embed_dim: int, vision: dict[str, Any], text: dict[str, Any]
) -> dict[str, Any]:
    """open_clip's own config of architecture ``name`` with the sizes (and the image trunk)
    replaced, so that every other switch (pooling, masks, activations, context length) is
    the real model's; the preprocessing is that of its ``tag``, at the tiny image size."""
    import open_clip

    model_cfg = copy.deepcopy(open_clip.get_model_config(name))
    model_cfg["embed_dim"] = embed_dim
    model_cfg["vision_cfg"].update(vision)
    model_cfg["text_cfg"].update(text)
    tag_cfg = open_clip.get_pretrained_cfg(name, tag)
    preprocess = {
        "size": model_cfg["vision_cfg"]["image_size"],
        "mean": list(tag_cfg.get("mean", OPENAI_MEAN)),
        "std": list(tag_cfg.get("std", OPENAI_STD)),
        "interpolation": tag_cfg.get("interpolation", "bicubic"),
        "resize_mode": tag_cfg.get("resize_mode", "shortest"),
    }
    return {"model_cfg": model_cfg, "preprocess_cfg": preprocess}


TOWER = {"width": 64, "heads": 2, "layers": 2}  # every tiny text tower

# Gemma's special tokens, at Gemma's ids (pad 0, eos 1, bos 2, unk 3, mask 4), then the 256
# byte tokens its byte fallback needs.
GEMMA_SPECIAL = ["<pad>", "<eos>", "<bos>", "<unk>", "<mask>"]
GEMMA_BYTES = [f"<0x{i:02X}>" for i in range(256)]
TINY_GEMMA_VOCAB = 640


def tiny_gemma_tokenizer(folder: Path) -> int:
    """A Gemma-style tokenizer (SigLIP 2's) saved in ``folder``; returns its vocabulary size.

    As Gemma's: spaces become "▁" (no pre-tokenizer, no lower-casing), BPE with byte
    fallback (any text tokenizes, no unknown token: a Czech or Chinese label becomes byte
    tokens), Gemma's special-token ids, loaded by transformers as ``GemmaTokenizer``. As
    SigLIP 2 uses it in open_clip: ``<eos>`` appended (no ``<bos>``), padded on the right to
    the full context (the tower pools the last position). Those two settings are what we
    understand the hub's SigLIP 2 tokenizer to do; it was not checked offline."""
    from tokenizers import (
        Tokenizer,
        decoders,
        models,
        normalizers,
        pre_tokenizers,
        processors,
        trainers,
    )
    from transformers import PreTrainedTokenizerFast

    # Trained with words split off (so that no merge spans a word boundary, as in Gemma's
    # SentencePiece model), then rebuilt around the learnt vocabulary as Gemma's is.
    learner = Tokenizer(models.BPE(unk_token="<unk>"))
    learner.normalizer = normalizers.Replace(" ", "▁")
    learner.pre_tokenizer = pre_tokenizers.Split("▁", behavior="merged_with_next")
    trainer = trainers.BpeTrainer(
        vocab_size=TINY_GEMMA_VOCAB,
        special_tokens=GEMMA_SPECIAL + GEMMA_BYTES,
        initial_alphabet=list(string.ascii_letters + string.digits + string.punctuation + "▁"),
    )
    learner.train_from_iterator(_CORPUS, trainer=trainer)
    learnt = json.loads(learner.to_str())["model"]
    merges = [tuple(m) if isinstance(m, list) else tuple(m.split(" ")) for m in learnt["merges"]]
    bpe = models.BPE(
        vocab=learnt["vocab"], merges=merges, unk_token="<unk>", byte_fallback=True, fuse_unk=True
    )
    tok = Tokenizer(bpe)
    tok.normalizer = normalizers.Replace(" ", "▁")
    tok.decoder = decoders.Sequence(
        [decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse()]
    )
    tok.add_special_tokens(GEMMA_SPECIAL)
    eos = GEMMA_SPECIAL.index("<eos>")
    tok.post_processor = processors.TemplateProcessing(
        single="$A <eos>", special_tokens=[("<eos>", eos)]
    )
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        **{f"{name}_token": f"<{name}>" for name in ("pad", "eos", "bos", "unk", "mask")},
        model_max_length=64,
        padding_side="right",
    )
    fast.save_pretrained(str(folder))
    config_file = folder / "tokenizer_config.json"
    config = json.loads(config_file.read_text(encoding="utf-8"))
    config |= {"tokenizer_class": "GemmaTokenizer", "add_bos_token": False, "add_eos_token": True}
    config_file.write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
    return tok.get_vocab_size()


def make_tiny_siglip2(folder: Path, seed: int = 0) -> Path:
    """Tiny SigLIP 2 (open_clip's ViT-B-16-SigLIP2-256 shrunk): SigLIP's tiny ViT trunk,
    the text tower with SigLIP 2's switches (tanh GELU, last-token pooling, no causal
    mask, 64 tokens, canonicalised text) and a Gemma-style tokenizer in the folder."""
    folder = _fresh(folder)
    vocab = tiny_gemma_tokenizer(folder)
    config = shrunk(
        "ViT-B-16-SigLIP2-256",
        "webli",
        embed_dim=64,  # SigLIP's trunk has no projection: its width is the embedding
        vision={"image_size": 32, "timm_model_name": TINY_SIGLIP_TRUNK},
        text={**TOWER, "vocab_size": vocab, "hf_tokenizer_name": "kisbench/tiny-siglip2"},
    )
    return _save_openclip(folder, config, seed)


def make_tiny_pe_core(folder: Path, seed: int = 0) -> Path:
    """Tiny Perception Encoder (open_clip's PE-Core-B-16 shrunk): timm's PE ViT at toy size,
    a causal CLIP text tower with PE's 32-token context, its preprocessing (squash,
    bilinear, mean and std 0.5)."""
    config = shrunk(
        "PE-Core-B-16",
        "meta",
        embed_dim=32,
        vision={"image_size": 32, "timm_model_name": TINY_PE_CORE_TRUNK},
        text=TOWER,
    )
    return _save_openclip(_fresh(folder), config, seed)


def make_tiny_mobileclip2(folder: Path, seed: int = 0) -> Path:
    """Tiny MobileCLIP2 (open_clip's MobileCLIP2-S0 shrunk): a one-block-per-stage FastViT
    MCi0 image tower, a text tower without a causal mask, mean 0 and std 1."""
    config = shrunk(
        "MobileCLIP2-S0",
        "dfndr2b",
        embed_dim=32,
        vision={"image_size": 64, "timm_model_name": TINY_MCI_TRUNK},
        text=TOWER,
    )
    return _save_openclip(_fresh(folder), config, seed, reinit=_lively_fastvit)


def _lively_fastvit(model: torch.nn.Module) -> None:
    """FastViT's default initialisation (small convolutions, layer scales of 1e-5, batch
    norms at their initial statistics) shrinks a random image's signal about 2000-fold
    over the four stages, so every image gave the same vector: He-initialised
    convolutions and layer scales of 0.5 keep images apart."""
    for name, param in model.visual.named_parameters():
        if param.ndim == 4:
            torch.nn.init.kaiming_normal_(param)
        elif "layer_scale" in name:
            param.fill_(0.5)


def _bert_tokenizer(folder: Path) -> Any:
    from transformers import BertTokenizer

    # BertTokenizer(vocab_file=...) ignores the file in transformers 5; vocab= reads it.
    return BertTokenizer(vocab=str(_write_vocab(folder)), do_lower_case=True)


def make_tiny_align(folder: Path, seed: int = 0) -> Path:
    """Tiny ALIGN: BERT text tower, 2-stage EfficientNet image tower, saved by
    ``save_pretrained`` with its processor (EfficientNet image processor + BERT tokenizer)."""
    from transformers import AlignConfig, AlignModel, AlignProcessor, EfficientNetImageProcessor

    folder = _fresh(folder)
    tokenizer = _bert_tokenizer(folder)
    dim = 32  # ALIGN has no image projection: the last block's width is the embedding
    config = AlignConfig(
        text_config={
            "vocab_size": len(tokenizer),
            "hidden_size": 32,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "intermediate_size": 64,
            "initializer_range": 0.5,  # so that random texts differ visibly
        },
        vision_config={
            "image_size": 32,
            "width_coefficient": 1.0,
            "depth_coefficient": 1.0,
            "kernel_sizes": [3, 3],
            "in_channels": [32, 16],  # the stem gives 32 channels
            "out_channels": [16, dim],
            "strides": [1, 2],
            "num_block_repeats": [1, 1],
            "expand_ratios": [1, 2],
            "depthwise_padding": [],
            "hidden_dim": dim,  # the size of the final pooling window: >= the 16 px map
            # the default 0.02 makes a random tower's output underflow to ~1e-29
            "initializer_range": 1.0,
        },
        projection_dim=dim,
    )
    torch.manual_seed(seed)
    AlignModel(config).save_pretrained(str(folder))
    image_processor = EfficientNetImageProcessor(
        size={"height": 32, "width": 32}, crop_size={"height": 32, "width": 32}
    )
    AlignProcessor(image_processor=image_processor, tokenizer=tokenizer).save_pretrained(
        str(folder)
    )
    return folder


def make_tiny_blip2_hf(folder: Path, seed: int = 0) -> Path:
    """Tiny transformers BLIP-2 retrieval model (ViT + Q-Former with text input, 8 queries)."""
    from transformers import Blip2Config, Blip2ForImageTextRetrieval, BlipImageProcessor

    folder = _fresh(folder)
    tokenizer = _bert_tokenizer(folder)
    config = Blip2Config(
        vision_config={
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "image_size": 32,
            "patch_size": 8,
            "initializer_range": 0.02,
        },
        qformer_config={
            "vocab_size": len(tokenizer),
            "hidden_size": 32,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "intermediate_size": 64,
            "encoder_hidden_size": 32,
            "cross_attention_frequency": 1,
            "use_qformer_text_input": True,  # the retrieval model's text path needs it
            "initializer_range": 0.5,  # so that random texts differ visibly
        },
        num_query_tokens=8,
        image_text_hidden_size=16,
    )
    torch.manual_seed(seed)
    Blip2ForImageTextRetrieval(config).save_pretrained(str(folder))
    tokenizer.save_pretrained(str(folder))
    BlipImageProcessor(
        size={"height": 32, "width": 32}, image_mean=OPENAI_MEAN, image_std=OPENAI_STD
    ).save_pretrained(str(folder))
    return folder


def start_tiny_blip2_lavis(folder: Path, seed: int = 0) -> Callable[[], Path]:
    """Start building a tiny random-weight LAVIS BLIP-2 in ``folder``: LAVIS builds it
    itself, in its own virtualenv (a separate process, so that ``make_all`` builds the
    others meanwhile); call the result to wait."""
    from kisbench.models.blip2_lavis import WORKER, lavis_python

    folder = _fresh(folder).resolve()
    vocab = folder / "wordpiece.txt"
    vocab.write_text("".join(f"{t}\n" for t in tiny_wordpiece_vocab()), encoding="utf-8")
    cmd = [str(lavis_python()), str(WORKER), "make-tiny", str(folder), "--seed", str(seed)]
    proc = subprocess.Popen(
        [*cmd, "--vocab", str(vocab)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONWARNINGS": "ignore"},
    )

    def wait() -> Path:
        _, err = proc.communicate()
        vocab.unlink(missing_ok=True)
        if proc.returncode:
            raise ModelError(f"could not build the tiny LAVIS model in {folder}:\n{err}")
        return folder

    return wait


def make_tiny_blip2_lavis(folder: Path, seed: int = 0) -> Path:
    return start_tiny_blip2_lavis(folder, seed)()


TINY_MODELS: dict[str, Callable[[Path, int], Path]] = {
    "tiny_clip": make_tiny_clip,
    "tiny_siglip": make_tiny_siglip,
    "tiny_siglip2": make_tiny_siglip2,
    "tiny_pe_core": make_tiny_pe_core,
    "tiny_mobileclip2": make_tiny_mobileclip2,
    "tiny_align": make_tiny_align,
    "tiny_blip2_hf": make_tiny_blip2_hf,
    "tiny_blip2": make_tiny_blip2_lavis,
}


def make_all(root: Path, seed: int = 0, names: list[str] | None = None) -> list[Path]:
    """Create the tiny models (all, or ``names``) under ``root``/<name>; same seed, same
    weights."""
    chosen = names if names is not None else list(TINY_MODELS)
    lavis = "tiny_blip2" in chosen
    wait = start_tiny_blip2_lavis(Path(root) / "tiny_blip2", seed) if lavis else None
    done = [TINY_MODELS[n](Path(root) / n, seed) for n in chosen if n != "tiny_blip2"]
    return done + [wait()] if wait else done
