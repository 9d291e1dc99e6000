"""The embedding loop: bad images, resuming, determinism, both decoding paths."""

from __future__ import annotations

import csv
import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

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


@pytest.mark.parametrize(
    ("decode", "draft", "gap"),
    [("pil", False, 2.0), ("pil", True, 2.0), ("pil", True, 1.0), ("device", True, 2.0)],
)
def test_every_path_matches_the_models_own_preprocessing(
    model, mixed, tmp_path, decode, draft, gap
):
    """Same refusals and, for every image, cosine >= 0.999 with the model's reference
    preprocessing (its own transform on the Pillow picture)."""
    ids, paths = mixed
    kw = {"decode": decode, "draft": draft, "draft_gap": gap, "on_unreadable": "skip"}
    meta = run(model, ids, paths, tmp_path, "o", **kw)
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


def _pictures(batches: Any) -> list[tuple[list[int], bytes | None, dict[int, str]]]:
    return [
        (b.positions, None if b.pixels is None else b.pixels.numpy().tobytes(), b.failures)
        for b in batches
    ]


def test_in_step_threads_make_the_pictures_the_worker_processes_make(model, mixed):
    """The CPU path (threads decoding each batch in step with the model) and the GPU path's
    worker processes and the main-process path give the same bytes and the same refusals,
    batch by batch and in order."""
    from kisbench.embedding.loaders import pil_batches

    _, paths = mixed
    plan = [list(range(s, min(len(paths), s + 5))) for s in range(0, len(paths), 5)]
    kw = {"draft": (64, 64), "max_pixels": 10_000_000}
    main = _pictures(pil_batches(paths, plan, model.image_transform, workers=0, **kw))
    procs = _pictures(pil_batches(paths, plan, model.image_transform, workers=2, **kw))
    threads = _pictures(
        pil_batches(paths, plan, model.image_transform, workers=3, in_step=True, **kw)
    )
    assert threads == procs == main
    # every position comes back once, as a picture or a refusal (the 4 bad files)
    refused = sorted(i for _, _, f in main for i in f)
    kept = sorted(i for p, _, _ in main for i in p)
    assert len(refused) == 4 and sorted(kept + refused) == list(range(len(paths)))


def test_cpu_embedding_decodes_in_step_like_the_main_process(model, mixed, tmp_path):
    """On a CPU device the default path is in-step threads: the embeddings are byte for byte
    those of decoding in the main process (workers 0)."""
    ids, paths = mixed
    one = run(model, ids, paths, tmp_path, "one", workers=0, on_unreadable="skip")
    many = run(model, ids, paths, tmp_path, "many", workers=None, on_unreadable="skip")
    # one thread per CPU (at most 16): none is left for the main loop, which waits
    assert (one["workers"], many["workers"]) == (0, min(16, os.cpu_count() or 2))
    a, b = store.load(tmp_path / "one"), store.load(tmp_path / "many")
    assert a.ids == b.ids
    assert a.vectors.tobytes() == b.vectors.tobytes()


@pytest.mark.parametrize(
    ("gap", "decoded"),
    [(2.0, (1280, 720)), (1.7, (1280, 720)), (1.6, (640, 360)), (1.0, (640, 360))],
)
def test_draft_gap_sets_how_far_the_decoder_may_reduce(gap, decoded):
    """A 1280 x 720 JPEG for a 224 x 224 input: Pillow may halve it (640 x 360) only while
    both sides stay at least gap x 224, i.e. for gap <= 360 / 224 = 1.6."""
    from kisbench.data.images import load_rgb
    from kisbench.models.pixels import PixelSpec

    spec = PixelSpec(224, 224, "shortest", "bicubic", (0.5,) * 3, (0.5,) * 3)
    assert spec.draft_size(gap) == (int(np.ceil(gap * 224)),) * 2
    data = gen.jpeg_bytes(gen.picture(1280, 720, seed=1))
    assert load_rgb(data, draft=spec.draft_size(gap)).size == decoded


def test_the_draft_gap_names_the_partials_only_where_it_changes_pixels(model, mixed):
    from kisbench.embedding.extract import partial_key

    ids, paths = mixed
    cpu = torch.device("cpu")

    def key(decode: str, **kw: Any) -> str:
        return partial_key(model, ids, paths, EmbedOptions(**kw), decode, cpu)[0]

    assert key("pil", draft_gap=1.0) != key("pil", draft_gap=2.0)
    assert key("pil", draft=False, draft_gap=1.0) == key("pil", draft=False, draft_gap=2.0)
    assert key("device", draft_gap=1.0) == key("device", draft_gap=2.0)
