"""The tiny offline stand-ins of the 2025-26 architectures (SigLIP 2, Perception Encoder,
MobileCLIP2; kisbench/models/testing/builders.py), loaded through the open_clip adapter's
``local-dir:`` path like the real weights: they embed to unit vectors of their configured
size, keep the real models' switches, and count and cut tokens as their tokenizers do."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from open_clip.tokenizer import SimpleTokenizer
from tokenizers import Tokenizer

from kisbench.models import load_model
from kisbench.models.testing.builders import make_all
from tests.models_support import images

NEW = ("tiny_siglip2", "tiny_pe_core", "tiny_mobileclip2")


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("tiny_new")
    make_all(folder, seed=0, names=list(NEW))
    return folder


def config(root: Path, key: str) -> dict[str, Any]:
    return json.loads((root / key / "open_clip_config.json").read_text(encoding="utf-8"))


def load(root: Path, key: str) -> Any:
    entry = {"family": "open_clip", "model": f"local-dir:{root / key}"}
    return load_model(key, entry, device="cpu", precision="fp32")


@pytest.mark.parametrize("key", NEW)
def test_stand_in_embeds_to_unit_vectors_of_its_configured_size(root: Path, key: str) -> None:
    cfg = config(root, key)
    dim, size = cfg["model_cfg"]["embed_dim"], cfg["preprocess_cfg"]["size"]
    model = load(root, key)
    pixels = torch.stack([model.image_transform(im) for im in images(4)])
    assert pixels.shape == (4, 3, size, size)
    vectors = model.encode_images(pixels)
    texts = model.encode_texts(["a dog on the grass", "sunset over the river", "Café 北京"])
    for array, n in ((vectors, 4), (texts, 3)):
        assert array.shape == (n, dim) and array.dtype == np.float32
        np.testing.assert_allclose(np.linalg.norm(array, axis=1), 1.0, atol=1e-5)
        cosines = array @ array.T
        # random weights, but not a constant: different inputs give different vectors
        assert cosines[~np.eye(n, dtype=bool)].max() < 0.999, key


# What the real models do, written out from open_clip 3.3.0's configs of ViT-B-16-SigLIP2-256,
# PE-Core-B-16 and MobileCLIP2-S0 and their tags: the stand-ins must keep all of it.
REAL = {
    "tiny_siglip2": {
        "text": {
            "context_length": 64,
            "act_kwargs": {"approximate": "tanh"},
            "pool_type": "last",
            "no_causal_mask": True,
            "tokenizer_kwargs": {"clean": "canonicalize"},
        },
        "preprocess": {"resize_mode": "squash", "interpolation": "bicubic", "mean": [0.5] * 3},
    },
    "tiny_pe_core": {
        "text": {"context_length": 32, "vocab_size": 49408},
        "preprocess": {"resize_mode": "squash", "interpolation": "bilinear", "std": [0.5] * 3},
    },
    "tiny_mobileclip2": {
        "text": {"context_length": 77, "no_causal_mask": True},
        "preprocess": {"resize_mode": "shortest", "mean": [0.0] * 3, "std": [1.0] * 3},
    },
}


@pytest.mark.parametrize("key", NEW)
def test_stand_in_keeps_the_real_models_switches(root: Path, key: str) -> None:
    cfg = config(root, key)
    text, preprocess = cfg["model_cfg"]["text_cfg"], cfg["preprocess_cfg"]
    for name, value in REAL[key]["text"].items():
        assert text[name] == value, (key, name)
    for name, value in REAL[key]["preprocess"].items():
        assert preprocess[name] == value, (key, name)
    assert text["width"] <= 64 and text["layers"] <= 2  # and yet tiny


# -- SigLIP 2: the Gemma-style tokenizer ----------------------------------------------------

PAD, EOS, BOS, UNK = 0, 1, 2, 3  # Gemma's ids


def raw_ids(root: Path, text: str) -> list[int]:
    """The ids of the tokenizer file itself (tokenizers, not transformers nor open_clip)."""
    return Tokenizer.from_file(str(root / "tiny_siglip2" / "tokenizer.json")).encode(text).ids


def crossing(count: Any, limit: int) -> tuple[str, str]:
    """The longest "river river ..." text with at most ``limit`` tokens, and the next one."""
    texts = [" ".join(["river"] * n) for n in range(1, 200)]
    fits = [t for t in texts if count(t) <= limit]
    over = [t for t in texts if count(t) > limit]
    return fits[-1], over[0]


def test_siglip2_counts_and_cuts_tokens_as_its_tokenizer_file_does(root: Path) -> None:
    model = load(root, "tiny_siglip2")
    assert model.context_length == 64
    short, long = crossing(lambda t: len(raw_ids(root, t)), 64)
    assert raw_ids(root, short)[-1] == EOS and BOS not in raw_ids(root, short)
    assert model.truncated([short, long]) == [False, True]
    tokens = model.tokenizer([short, long])
    assert tokens.shape == (2, 64)
    n = len(raw_ids(root, short))
    assert tokens[0, :n].tolist() == raw_ids(root, short)
    assert (tokens[0, n:] == PAD).all()  # padded on the right: the tower pools the last place
    # cut to the context with <eos> still last, as transformers truncates with specials
    assert tokens[1].tolist() == raw_ids(root, long)[:63] + [EOS]


def test_siglip2_tokenizer_falls_back_to_bytes_and_keeps_case(root: Path) -> None:
    ids = raw_ids(root, "北京 Dog dog")
    assert UNK not in ids  # byte fallback: any text tokenizes
    pieces = Tokenizer.from_file(str(root / "tiny_siglip2" / "tokenizer.json")).encode("北").tokens
    assert pieces[:3] == ["<0xE5>", "<0x8C>", "<0x97>"]  # "北" is E5 8C 97 in UTF-8
    assert raw_ids(root, "Dog") != raw_ids(root, "dog")  # Gemma does not lower-case
    model = load(root, "tiny_siglip2")
    # but open_clip canonicalises SigLIP 2's text first (lower case, no punctuation)
    np.testing.assert_allclose(
        model.encode_texts(["Dog, on grass!"]), model.encode_texts(["dog on grass"]), atol=1e-6
    )


# -- PE-Core: CLIP's tokenizer at a 32-token context ----------------------------------------


def test_pe_core_counts_and_cuts_at_32_tokens(root: Path) -> None:
    model = load(root, "tiny_pe_core")
    assert model.context_length == 32
    # "river" is one BPE token of CLIP's vocabulary, so n words are n + 2 tokens with
    # <start_of_text> and <end_of_text>: 30 words fit 32, 31 do not
    reference = SimpleTokenizer()
    fits, over = " ".join(["river"] * 30), " ".join(["river"] * 31)
    assert int((reference([fits], context_length=200) > 0).sum()) == 32
    assert model.truncated([fits, over]) == [False, True]
    tokens = model.tokenizer([over])
    assert tokens.shape == (1, 32)
    sot, eot = reference.sot_token_id, reference.eot_token_id
    assert tokens[0, 0] == sot and tokens[0, -1] == eot  # the tower pools at <end_of_text>
