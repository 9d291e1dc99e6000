"""The embedding loop: bad images, resuming, determinism, both decoding paths."""

from __future__ import annotations

import csv
import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from kisbench.data import store
from kisbench.data.collections import list_images
from kisbench.embedding.extract import EmbedOptions, embed_images, embed_texts
from kisbench.errors import InputError
from kisbench.evaluation.metrics import summarize
from kisbench.evaluation.ranking import rank_table
from tests import imagefiles as gen
from tests import tinymodel

BAD = {"empty": "empty file", "truncated": "truncated", "not_an_image": "not an image"}
BAD["bomb"] = "too large"


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tinymodel.build(tmp_path_factory.mktemp("models"))


@pytest.fixture(scope="module")
def model(model_dir: Path) -> Any:
    return tinymodel.load(model_dir)


@pytest.fixture(scope="module")
def mixed(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[str], list[Path]]:
    """12 photos, the 10 odd files the rules embed, the 4 bad ones they refuse."""
    folder = tmp_path_factory.mktemp("mixed")
    gen.write_photos(folder, 12)
    gen.write(folder, gen.odd_files())
    gen.write(folder, gen.bad_files())
    return list_images(folder)


def run(model: Any, ids: list[str], paths: list[Path], tmp: Path, name: str, **kw: Any) -> dict:
    kw = {"batch_size": 4, "chunk_size": 8, "workers": 0, "progress": False, **kw}
    return embed_images(model, ids, paths, tmp / name, partial=tmp / f"{name}.partial", **kw)


def test_fail_lists_every_unreadable_image_and_keeps_the_work(model, mixed, tmp_path):
    ids, paths = mixed
    with pytest.raises(InputError) as err:
        run(model, ids, paths, tmp_path, "out")
    message = str(err.value)
    assert message.startswith(f"4 of {len(ids)} images cannot be embedded")
    for name, reason in BAD.items():
        line = next(ln for ln in message.splitlines() if f"{name}." in ln)
        assert reason in line
    assert not (tmp_path / "out").exists()  # nothing half-written
    # Switching to skip reuses every chunk: nothing is embedded twice.
    meta = run(model, ids, paths, tmp_path, "out", on_unreadable="skip")
    assert meta["resumed_images"] == len(ids)
    assert (meta["count"], meta["skipped"]) == (len(ids) - 4, 4)
    result = store.load(tmp_path / "out")
    assert result.ids == [i for i in ids if i not in BAD]
    assert store.read_skipped(tmp_path / "out").keys() == set(BAD)
    with open(tmp_path / "out" / store.SKIPPED, encoding="utf-8") as f:
        rows = {r["id"]: r for r in csv.DictReader(f)}
    for name, reason in BAD.items():
        assert reason in rows[name]["reason"] and rows[name]["path"].endswith(name + ".png") == (
            name == "bomb"
        )
    assert not (tmp_path / "out.partial").exists()  # cleaned up on success


@pytest.mark.parametrize(("decode", "draft"), [("pil", False), ("pil", True), ("device", True)])
def test_every_path_matches_the_models_own_preprocessing(model, mixed, tmp_path, decode, draft):
    """Same refusals and, for every image, cosine >= 0.999 with the model's reference
    preprocessing (its own transform on the Pillow picture)."""
    ids, paths = mixed
    meta = run(model, ids, paths, tmp_path, "o", decode=decode, draft=draft, on_unreadable="skip")
    assert meta["decode"] == decode
    result = store.load(tmp_path / "o")
    assert store.read_skipped(tmp_path / "o").keys() == set(BAD)
    worst, cosine = tinymodel.worst_agreement(model, result, ids, paths)
    assert cosine >= 0.999, (worst, cosine)


def test_resume_after_interruption_is_identical(model, tmp_path):
    folder = tmp_path / "images"
    gen.write_photos(folder, 30)
    ids, paths = list_images(folder)
    whole = run(model, ids, paths, tmp_path, "whole")

    class Interrupted(RuntimeError):
        pass

    class DiesAfter:
        """The model, but the 6th batch never finishes (as if the process were killed)."""

        def __init__(self, inner: Any, batches: int) -> None:
            self.inner, self.left = inner, batches

        def __getattr__(self, name: str) -> Any:
            return getattr(self.inner, name)

        def encode_images(self, pixels: Any) -> np.ndarray:
            self.left -= 1
            if self.left < 0:
                raise Interrupted
            return self.inner.encode_images(pixels)

    with pytest.raises(Interrupted):
        run(DiesAfter(model, 5), ids, paths, tmp_path, "resumed")
    # 5 batches of 4 = 2 whole chunks of 8 saved; the third chunk was in flight.
    meta = run(model, ids, paths, tmp_path, "resumed")
    assert meta["resumed_images"] == 16
    a, b = store.load(tmp_path / "whole"), store.load(tmp_path / "resumed")
    assert a.ids == b.ids == ids
    assert np.array_equal(a.vectors, b.vectors)
    assert whole["count"] == meta["count"] == 30


def test_a_stale_partial_is_never_reused(model, tmp_path):
    folder = tmp_path / "images"
    gen.write_photos(folder, 20)
    ids, paths = list_images(folder)

    class Stop(RuntimeError):
        pass

    class DiesAfter:
        def __init__(self, inner: Any) -> None:
            self.inner, self.calls = inner, 0

        def __getattr__(self, name: str) -> Any:
            return getattr(self.inner, name)

        def encode_images(self, pixels: Any) -> np.ndarray:
            self.calls += 1
            if self.calls > 2:
                raise Stop
            return self.inner.encode_images(pixels)

    with pytest.raises(Stop):
        run(DiesAfter(model), ids, paths, tmp_path, "out")
    stale = list((tmp_path / "out.partial").iterdir())
    assert len(stale) == 1 and (stale[0] / "chunk-0000000.json").is_file()
    # An image changes: the saved chunk would be wrong, so nothing is reused.
    gen.write_photos(folder, 1, start=3, size=(120, 160))
    os.utime(paths[3], ns=(1, 1))
    meta = run(model, ids, paths, tmp_path, "out")
    assert meta["resumed_images"] == 0
    fresh = tinymodel.reference_embedding(model, paths[3])
    assert float(store.load(tmp_path / "out").vectors[3] @ fresh) > 0.999


def test_same_inputs_give_identical_embeddings_ranks_and_metrics(model, tmp_path):
    folder = tmp_path / "images"
    gen.write_photos(folder, 24)
    ids, paths = list_images(folder)
    texts = [f"a picture number {i} with colours" for i in range(len(ids))]
    outcomes = []
    for name in ("first", "second"):
        run(model, ids, paths, tmp_path, name, batch_size=8, chunk_size=16)
        images = store.load(tmp_path / name)
        queries = embed_texts(model, texts, batch_size=64)
        table = rank_table(images.vectors, images.ids, queries, ids, "short", top_k=5)
        metrics = summarize(table["rank"].to_numpy(), len(ids))
        outcomes.append((images.vectors.copy(), table, metrics))
    (v1, t1, m1), (v2, t2, m2) = outcomes
    assert v1.tobytes() == v2.tobytes()
    assert t1.equals(t2)
    assert m1 == m2


def test_batches_never_straddle_chunks(model, tmp_path):
    folder = tmp_path / "images"
    gen.write_photos(folder, 11)
    ids, paths = list_images(folder)
    meta = run(model, ids, paths, tmp_path, "out", batch_size=4, chunk_size=5)
    assert meta["chunk_size"] == 8  # rounded up to whole batches
    assert store.load(tmp_path / "out").vectors.shape[0] == 11


@pytest.mark.parametrize(
    ("params", "named"),
    [
        ({"batch_size": 0}, "embed.batch_size"),
        ({"chunk_size": "many"}, "embed.chunk_size"),
        ({"decode": "gpu"}, "embed.decode"),
        ({"on_unreadable": "ignore"}, "embed.on_unreadable"),
        ({"store_dtype": "int8"}, "embed.store_dtype"),
        ({"workers": -1}, "embed.workers"),
    ],
)
def test_bad_embed_params_are_named(params, named):
    with pytest.raises(InputError, match=named):
        EmbedOptions.from_params(params)


def test_params_defaults_and_unknown_keys():
    opts = EmbedOptions.from_params({"device": "cpu", "workers": None, "batch_size": 32})
    assert (opts.batch_size, opts.workers, opts.on_unreadable) == (32, None, "fail")


def test_device_path_in_small_steps_gives_the_same_result(model, mixed, tmp_path, monkeypatch):
    """The device path decodes a batch in slices of bounded size; slicing changes nothing."""
    ids, paths = mixed
    kw = {"decode": "device", "on_unreadable": "skip"}
    run(model, ids, paths, tmp_path, "whole", **kw)
    from kisbench.embedding import loaders

    monkeypatch.setattr(loaders, "STEP_PIXELS", 1)  # one picture per step
    run(model, ids, paths, tmp_path, "sliced", **kw)
    a, b = store.load(tmp_path / "whole"), store.load(tmp_path / "sliced")
    assert a.ids == b.ids
    assert a.vectors.tobytes() == b.vectors.tobytes()
