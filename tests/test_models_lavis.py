"""BLIP-2 through LAVIS (the thesis' model), in its own virtualenv, on a tiny random-weight
build loaded by LAVIS' own builder and checkpoint loader.

Needs .venv-lavis (made by `make setup`): without it these tests FAIL, on purpose (CI
builds it; a skipped test would hide a broken set-up).
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch

from kisbench.data import store
from kisbench.embedding.extract import embed_images
from kisbench.errors import ModelError
from kisbench.evaluation.ranking import rank_targets
from kisbench.models import load_model
from kisbench.models.blip2_lavis import lavis_python
from kisbench.models.testing.builders import make_tiny_blip2_lavis
from tests.models_support import cosine_rows, images

TEXTS = [
    "A dog on the grass.",
    "Orange sunset above Prague castle, river canal in the front!",
    "fish " * 60,  # past LAVIS' 50-word caption limit
    "dog " * 40,  # 42 tokens: past the 35 tokens of itc mode, within 50 words
    "dog " * 30,  # 32 tokens
]


@pytest.fixture(scope="module")
def tiny_lavis(tmp_path_factory: pytest.TempPathFactory) -> Path:
    try:
        lavis_python()
    except ModelError as err:
        pytest.fail(f"{err} (these tests need the LAVIS virtualenv; CI builds it)")
    return make_tiny_blip2_lavis(tmp_path_factory.mktemp("tiny_lavis") / "tiny_blip2", seed=0)


@pytest.fixture(scope="module")
def image_files(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    folder = tmp_path_factory.mktemp("images")
    paths = []
    for i, im in enumerate(images(4, seed=5)):
        paths.append(folder / f"{i}.png")
        im.save(paths[-1])
    return paths


@pytest.fixture(scope="module")
def reference(tiny_lavis: Path, image_files: list[Path], tmp_path_factory) -> dict:
    out = tmp_path_factory.mktemp("ref") / "ref.npz"
    script = Path(__file__).with_name("lavis_reference.py")
    proc = subprocess.run(
        [
            str(lavis_python()),
            str(script),
            str(tiny_lavis),
            str(out),
            *map(str, image_files),
            "--",
            *TEXTS,
        ],
        capture_output=True,
        text=True,
        env={**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONWARNINGS": "ignore"},
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    with np.load(out, allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


def _model(tiny: Path, mode: str, precision: str = "fp32"):
    entry = {"family": "blip2_lavis", "mode": mode, "local_dir": str(tiny)}
    return load_model(f"tiny_blip2_{mode}", entry, device="cpu", precision=precision)


@pytest.fixture(scope="module")
def thesis(tiny_lavis: Path):
    return _model(tiny_lavis, "thesis")


@pytest.fixture(scope="module")
def itc(tiny_lavis: Path):
    return _model(tiny_lavis, "itc")


def _pixels(model, paths: list[Path]) -> torch.Tensor:
    from kisbench.data.images import load_rgb

    return torch.stack([model.image_transform(load_rgb(p)) for p in paths])


def test_preprocessing_equals_lavis_blip_image_eval(thesis, image_files, reference) -> None:
    np.testing.assert_allclose(_pixels(thesis, image_files).numpy(), reference["pixels"], atol=1e-6)


def test_thesis_mode_takes_exactly_the_thesis_features(thesis, image_files, reference) -> None:
    img = thesis.encode_images(_pixels(thesis, image_files))
    txt = thesis.encode_texts(TEXTS)
    assert img.shape == reference["thesis_images"].shape and img.ndim == 2
    np.testing.assert_allclose(img, reference["thesis_images"], atol=1e-5)
    np.testing.assert_allclose(txt, reference["thesis_texts"], atol=1e-5)
    assert img.shape[1] == txt.shape[1]
    np.testing.assert_allclose(np.linalg.norm(img, axis=1), 1.0, atol=1e-5)


def test_itc_mode_keeps_every_query_and_projects(itc, image_files, reference) -> None:
    img = itc.encode_images(_pixels(itc, image_files))
    txt = itc.encode_texts(TEXTS)
    assert img.shape == (len(image_files), 32, 256) and txt.shape == (len(TEXTS), 256)
    np.testing.assert_allclose(img, reference["itc_images"], atol=1e-5)
    np.testing.assert_allclose(txt, reference["itc_texts"], atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(img, axis=-1), 1.0, atol=1e-5)
    assert itc.provenance()["queries_per_image"] == 32


def test_itc_score_is_the_best_query(itc, image_files, reference) -> None:
    """The ranker's score of each text against its target image equals the best of the
    target's 32 query similarities, computed here from the reference features."""
    img = itc.encode_images(_pixels(itc, image_files))
    txt = itc.encode_texts(TEXTS[:4])
    targets = np.array([0, 1, 2, 3])
    result = rank_targets(txt, img, targets, top_k=0)
    ref_img, ref_txt = reference["itc_images"].astype(np.float64), reference["itc_texts"]
    best = np.array([(ref_img[t] @ ref_txt[m]).max() for m, t in enumerate(targets)])
    np.testing.assert_allclose(result.scores, best, atol=1e-5)
    full = np.einsum("npd,md->mnp", ref_img, ref_txt[:4].astype(np.float64)).max(-1)
    expected_ranks = 1 + (full >= full[np.arange(4), targets][:, None] - 1e-6).sum(1) - 1
    np.testing.assert_array_equal(result.ranks, expected_ranks)


def test_truncation_flags(thesis, itc) -> None:
    # thesis: only LAVIS' 50-word caption limit cuts; itc: also 35 tokens
    assert thesis.truncated(TEXTS) == [False, False, True, False, False]
    assert itc.truncated(TEXTS) == [False, False, True, True, False]
    emb = thesis.encode_texts(["fish " * 60 + "red", "fish " * 60 + "blue"])
    assert cosine_rows(emb[:1], emb[1:])[0] > 1 - 1e-6


def test_same_image_same_embedding_across_batch_sizes(itc, image_files, tmp_path) -> None:
    ids = [p.stem for p in image_files]
    for bs in (1, 4):
        embed_images(
            itc, ids, image_files, tmp_path / f"bs{bs}", batch_size=bs, workers=0, progress=False
        )
    np.testing.assert_allclose(
        store.load(tmp_path / "bs1").vectors, store.load(tmp_path / "bs4").vectors, atol=2e-5
    )


def test_precision_is_honoured(tiny_lavis, thesis, image_files) -> None:
    low = _model(tiny_lavis, "thesis", precision="bf16")
    assert low.provenance()["dtype"] == "bf16" and thesis.provenance()["dtype"] == "fp32"
    pixels = _pixels(thesis, image_files)
    a, b = low.encode_images(pixels), thesis.encode_images(pixels)
    assert a.dtype == np.float32
    assert not np.array_equal(a, b)  # the ViT really ran in bf16
    assert cosine_rows(a, b).min() > 0.98


def test_unknown_mode_is_refused(tiny_lavis) -> None:
    with pytest.raises(ModelError, match="mode must be one of thesis, itc"):
        _model(tiny_lavis, "both")


def test_metadata_from_the_worker(tiny_lavis, thesis, itc) -> None:
    """The worker's metadata against the tiny model's configs and a hand count of its ViT."""
    vision = json.loads((tiny_lavis / "vision.json").read_text())
    bert = json.loads((tiny_lavis / "bert-base-uncased" / "config.json").read_text())
    a, b = thesis.provenance()["metadata"], itc.provenance()["metadata"]
    assert a["image_size"] == b["image_size"] == [224, 224] and a["resize"] == "squash"
    assert a["tokenizer"] == "BertTokenizer bert-base-uncased"
    assert (a["vectors_per_image"], a["embedding_dim"]) == (1, bert["hidden_size"])
    assert (b["vectors_per_image"], b["embedding_dim"]) == (32, 256)  # LAVIS' ITC layout
    assert b["context_length"] == 35 and a["context_length"] == bert["max_position_embeddings"]
    # itc adds the two projections (hidden -> 256, with bias) to the towers, not the total
    proj = bert["hidden_size"] * 256 + 256
    pa, pb = a["parameters"], b["parameters"]
    assert pb["image"] - pa["image"] == proj and pb["text"] - pa["text"] == proj
    assert pa["total"] == pb["total"] and pa["shared"] == pb["shared"] > 0
    # the image encoder is the ViT (counted here by hand) and then the Q-Former
    w, grid = vision["width"], (224 // vision["patch_size"]) ** 2
    t = grid + 1
    vit = grid * w * 3 * vision["patch_size"] ** 2 + vision["layers"] * (
        4 * t * w * w + 2 * t * t * w + 8 * t * w * w
    )
    assert a["image_gflops"] == b["image_gflops"] > vit / 1e9


def test_token_counts_match_the_bert_tokenizer_itself(tiny_lavis, thesis, itc) -> None:
    """Uncut counts with [CLS] and [SEP], by the checkpoint's BERT tokenizer loaded here
    (texts the caption cleaning leaves alone: lower case, no punctuation, 60 words past
    its 50-word limit); the context: itc's 35-token cut, thesis' BERT positions."""
    from transformers import BertTokenizer

    bert = tiny_lavis / "bert-base-uncased"
    tok = BertTokenizer.from_pretrained(bert)
    texts = ["a dog on the grass", "dog " * 60, "red car"]
    direct = [len(tok(t)["input_ids"]) for t in texts]
    assert thesis.token_counts(texts) == itc.token_counts(texts) == direct
    positions = json.loads((bert / "config.json").read_text())["max_position_embeddings"]
    assert (itc.context_tokens(), thesis.context_tokens()) == (35, positions)


@pytest.mark.parametrize("budget", [3, 8, 20])
def test_a_cut_text_embeds_as_the_text_of_its_first_tokens(thesis, itc, budget) -> None:
    """One token per "dog": 40 dogs cut to B tokens are B - 2 dogs between [CLS] and [SEP]
    (in both modes, thesis' own text path for the plain text)."""
    for model in (thesis, itc):
        cut = model.encode_texts_cut(["dog " * 40], budget)
        np.testing.assert_allclose(cut, model.encode_texts(["dog " * (budget - 2)]), atol=1e-5)
        full = model.encode_texts_cut(TEXTS[:2], model.context_tokens())
        np.testing.assert_allclose(full, model.encode_texts(TEXTS[:2]), atol=1e-5)
        with pytest.raises(ValueError, match="outside"):
            model.encode_texts_cut(TEXTS[:1], model.context_tokens() + 1)
