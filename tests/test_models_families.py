"""Every main-environment family, through the same loading code as the real weights, on
its tiny random-weight stand-in: shapes, norms, one space, batch-size invariance,
precision, and truncation that is reported exactly when it changes the embedding."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from kisbench.data import store
from kisbench.embedding.extract import embed_images
from kisbench.models import load_model
from tests.models_support import cosine_rows, images

pytest_plugins = ["tests.models_fixtures"]  # the tiny_root fixture

ENTRIES = {
    "tiny_clip": {"family": "open_clip", "model": "local-dir:{root}/tiny_clip"},
    "tiny_siglip": {"family": "open_clip", "model": "local-dir:{root}/tiny_siglip"},
    "tiny_align": {"family": "align", "source": "{root}/tiny_align"},
    "tiny_blip2_hf": {"family": "blip2_hf", "source": "{root}/tiny_blip2_hf", "context_length": 35},
}
MULTI_VECTOR = {"tiny_blip2_hf"}


def entry(key: str, root: Path) -> dict:
    return {k: v.format(root=root) if isinstance(v, str) else v for k, v in ENTRIES[key].items()}


@pytest.fixture(scope="module", params=list(ENTRIES))
def loaded(request: pytest.FixtureRequest, tiny_root: Path):
    key = request.param
    return key, load_model(key, entry(key, tiny_root), device="cpu", precision="fp32")


def test_shapes_norms_and_one_space(loaded) -> None:
    key, model = loaded
    pixels = torch.stack([model.image_transform(im) for im in images(3)])
    img = model.encode_images(pixels)
    txt = model.encode_texts(["a dog on the grass", "red car", "sunset over the river"])
    assert img.dtype == np.float32 and txt.dtype == np.float32
    assert len(img) == 3 and txt.shape[0] == 3 and txt.ndim == 2
    assert img.ndim == (3 if key in MULTI_VECTOR else 2)
    assert img.shape[-1] == txt.shape[-1], "image and text vectors must share one space"
    np.testing.assert_allclose(np.linalg.norm(img, axis=-1), 1.0, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(txt, axis=-1), 1.0, atol=1e-5)
    # random weights still give different images different vectors
    assert not np.allclose(img[0], img[1])


def test_same_image_same_embedding_across_batch_sizes(loaded, tmp_path: Path) -> None:
    key, model = loaded
    paths = []
    for i, im in enumerate(images(5, seed=1)):
        paths.append(tmp_path / f"{i}.png")
        im.save(paths[-1])
    ids = [p.stem for p in paths]
    for bs in (1, 2, 5):
        embed_images(
            model, ids, paths, tmp_path / f"bs{bs}", batch_size=bs, workers=0, progress=False
        )
    one = store.load(tmp_path / "bs1").vectors
    for bs in (2, 5):
        other = store.load(tmp_path / f"bs{bs}").vectors
        assert other.shape == one.shape
        np.testing.assert_allclose(other, one, atol=2e-5)
    assert store.load(tmp_path / "bs2").meta["batch_size"] == 2


def test_texts_batch_invariant(loaded) -> None:
    _, model = loaded
    texts = ["a dog", "a red car parked in front of a white house with a green door", "fish"]
    together = model.encode_texts(texts)
    alone = np.concatenate([model.encode_texts([t]) for t in texts])
    np.testing.assert_allclose(together, alone, atol=2e-5)


def test_truncation_reported_exactly_when_the_tail_is_ignored(loaded) -> None:
    """Words past the text context cannot change the embedding; words within it do.
    So: truncated(x) iff x and x-with-another-tail embed alike."""
    _, model = loaded
    long_base = "dog " * 600
    short_base = "a dog on the grass"
    texts = [long_base + "red car", long_base + "blue fish", short_base, short_base + " fish"]
    flags = model.truncated(texts)
    assert flags == [True, True, False, False]
    emb = model.encode_texts(texts)
    assert cosine_rows(emb[:1], emb[1:2])[0] > 1 - 1e-6  # cut tails: same vector
    assert cosine_rows(emb[2:3], emb[3:4])[0] < 1 - 1e-4  # kept tails: different


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_precision_is_honoured(precision: str, tiny_root: Path) -> None:
    for key in ENTRIES:
        low = load_model(key, entry(key, tiny_root), device="cpu", precision=precision)
        ref = load_model(key, entry(key, tiny_root), device="cpu", precision="fp32")
        assert low.provenance()["dtype"] == precision
        assert ref.provenance()["dtype"] == "fp32"
        pixels = torch.stack([ref.image_transform(im) for im in images(2)])
        a, b = low.encode_images(pixels), ref.encode_images(pixels)
        assert a.dtype == np.float32  # stored as float32 whatever the compute precision
        assert cosine_rows(a, b).min() > 0.98, key
        t = ["a dog on the grass"]
        assert cosine_rows(low.encode_texts(t), ref.encode_texts(t)).min() > 0.98, key


@pytest.mark.parametrize("key", ["tiny_clip", "tiny_siglip"])
def test_open_clip_truncation_flag_at_the_context_boundary(key: str, tiny_root: Path) -> None:
    """Around the context length: a text is cut iff its last word does not reach the
    library's own token ids, i.e. replacing it changes nothing ("dog" and "the" are one
    token each in both tokenizers)."""
    model = load_model(key, entry(key, tiny_root), device="cpu")
    texts = ["a " * n + "dog" for n in range(40, 90)]
    flags = model.truncated(texts)
    for text, flag in zip(texts, flags, strict=True):
        same = torch.equal(model.tokenizer([text]), model.tokenizer([text[:-3] + "the"]))
        assert flag == same, text
    assert any(flags) and not all(flags)
