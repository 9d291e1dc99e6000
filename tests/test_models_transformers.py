"""The transformers families against the models' own forward passes: ALIGN as the thesis
called it (AlignProcessor + AlignModel outputs), BLIP-2 retrieval's ITC score as
Blip2ForImageTextRetrieval computes it (the best of the image's query similarities)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import huggingface_hub.constants as hf_constants
import numpy as np
import pytest
import torch
from transformers import (
    AlignModel,
    AlignProcessor,
    AutoImageProcessor,
    AutoTokenizer,
    Blip2ForImageTextRetrieval,
)

from kisbench.evaluation.ranking import rank_targets
from kisbench.models import load_model
from tests.models_support import fake_hub_repo, images

pytest_plugins = ["tests.models_fixtures"]  # the tiny_root fixture

TEXTS = ["a dog on the grass", "sunset over the river and the old castle", "school of fish"]


def test_align_equals_the_models_own_outputs(tiny_root: Path) -> None:
    folder = tiny_root / "tiny_align"
    ours = load_model("a", {"family": "align", "source": str(folder)}, device="cpu")
    processor = AlignProcessor.from_pretrained(folder)
    model = AlignModel.from_pretrained(folder).eval()
    pics = images(3)
    with torch.no_grad():  # the thesis' call: processor(text, images) -> model(**inputs)
        out = model(**processor(text=TEXTS, images=pics, return_tensors="pt"))
    img_ref = torch.nn.functional.normalize(out.image_embeds, dim=-1).numpy()
    txt_ref = torch.nn.functional.normalize(out.text_embeds, dim=-1).numpy()
    pixels = torch.stack([ours.image_transform(im) for im in pics])
    np.testing.assert_allclose(ours.encode_images(pixels), img_ref, atol=1e-5)
    np.testing.assert_allclose(ours.encode_texts(TEXTS), txt_ref, atol=1e-5)


def test_blip2_itc_score_is_the_retrieval_models_own(tiny_root: Path) -> None:
    folder = tiny_root / "tiny_blip2_hf"
    ours = load_model("b", {"family": "blip2_hf", "source": str(folder)}, device="cpu")
    model = Blip2ForImageTextRetrieval.from_pretrained(folder).eval()
    tokenizer = AutoTokenizer.from_pretrained(folder)
    pixels = AutoImageProcessor.from_pretrained(folder)(images(4), return_tensors="pt")[
        "pixel_values"
    ]
    with torch.no_grad():  # (images, texts): the best query's similarity, per the model
        itc = model(
            pixel_values=pixels,
            **tokenizer(TEXTS, padding=True, return_tensors="pt"),
            use_image_text_matching_head=False,
        ).logits_per_image.numpy()
    img, txt = ours.encode_images(pixels), ours.encode_texts(TEXTS)
    assert img.shape == (4, 8, 16) and txt.shape == (3, 16)
    targets = np.array([0, 1, 2])
    result = rank_targets(txt, img, targets, top_k=4)
    np.testing.assert_allclose(result.scores, itc[targets, np.arange(3)], atol=1e-5)
    expected_top = np.argsort(-itc.T, axis=1, kind="stable")
    np.testing.assert_array_equal(result.top, expected_top)


@pytest.mark.parametrize(
    ("family", "name"), [("align", "tiny_align"), ("blip2_hf", "tiny_blip2_hf")]
)
def test_hub_source_loads_from_cache_with_its_commit(
    family: str,
    name: str,
    tiny_root: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    cache = tmp_path / "hub"
    monkeypatch.setattr(hf_constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(hf_constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    folder = tiny_root / name
    commit = "d" * 40
    fake_hub_repo(cache, f"kisbench-test/{name}", {p.name: p for p in folder.iterdir()}, commit)
    hub_model = load_model("h", {"family": family, "source": f"kisbench-test/{name}"}, device="cpu")
    local = load_model("l", {"family": family, "source": str(folder)}, device="cpu")
    pixels = torch.stack([local.image_transform(im) for im in images(2)])
    np.testing.assert_allclose(
        hub_model.encode_images(pixels), local.encode_images(pixels), atol=1e-6
    )
    np.testing.assert_allclose(hub_model.encode_texts(TEXTS), local.encode_texts(TEXTS), atol=1e-6)
    prov = hub_model.provenance()["weights"]
    assert prov["repo"] == f"kisbench-test/{name}" and prov["revision"] == commit
    digest = hashlib.sha256((folder / "model.safetensors").read_bytes()).hexdigest()
    assert prov["files"]["model.safetensors"] == digest
