"""The CUDA paths: nvJPEG decoding, second stream, pinned memory, half precision, ranking.

Skipped (and reported) without a CUDA device; the same code is checked on the CPU by
test_extract.py (device path with libjpeg-turbo) and test_ranking_speed_paths.py.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from kisbench.data import store
from kisbench.data.collections import list_images
from kisbench.embedding.extract import embed_images
from kisbench.evaluation.ranking import on_device, rank_targets
from tests import imagefiles as gen
from tests import tinymodel
from tests.test_ranking_speed_paths import brute_force, data

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]
BAD = {"empty", "truncated", "not_an_image", "bomb"}


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tinymodel.build(tmp_path_factory.mktemp("models"))


@pytest.fixture(scope="module")
def mixed(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[str], list[Path]]:
    folder = tmp_path_factory.mktemp("mixed")
    gen.write_photos(folder, 40, size=(640, 480))
    gen.write(folder, gen.odd_files())
    gen.write(folder, gen.bad_files())
    return list_images(folder)


@pytest.mark.parametrize(("decode", "precision"), [("device", "fp32"), ("pil", "fp32")])
def test_cuda_paths_match_the_models_own_preprocessing(
    model_dir, mixed, tmp_path, decode, precision
):
    ids, paths = mixed
    model = tinymodel.load(model_dir, "cuda", precision=precision)
    meta = embed_images(
        model,
        ids,
        paths,
        tmp_path / "o",
        partial=tmp_path / "p",
        decode=decode,
        on_unreadable="skip",
        batch_size=16,
        chunk_size=32,
        progress=False,
    )
    assert meta["decode"] == decode
    assert store.read_skipped(tmp_path / "o").keys() == BAD
    worst, cosine = tinymodel.worst_agreement(model, store.load(tmp_path / "o"), ids, paths)
    assert cosine >= 0.999, (worst, cosine)


def test_auto_is_the_device_path_in_half_precision(model_dir, mixed, tmp_path):
    ids, paths = mixed
    half = tinymodel.load(model_dir, "cuda", precision="auto")
    assert half.dtype == torch.bfloat16
    meta = embed_images(
        half,
        ids,
        paths,
        tmp_path / "o",
        partial=tmp_path / "p",
        on_unreadable="skip",
        progress=False,
    )
    assert meta["decode"] == "device"
    full = tinymodel.load(model_dir, "cuda", precision="fp32")
    worst, cosine = tinymodel.worst_agreement(full, store.load(tmp_path / "o"), ids, paths)
    assert cosine >= 0.99, (worst, cosine)


def test_cuda_runs_are_identical(model_dir, mixed, tmp_path):
    ids, paths = mixed
    model = tinymodel.load(model_dir, "cuda", precision="auto")
    for name in ("a", "b"):
        embed_images(
            model,
            ids,
            paths,
            tmp_path / name,
            partial=tmp_path / f"{name}.p",
            on_unreadable="skip",
            batch_size=16,
            chunk_size=32,
            progress=False,
        )
    assert (
        store.load(tmp_path / "a").vectors.tobytes() == store.load(tmp_path / "b").vectors.tobytes()
    )


@pytest.mark.parametrize("p", [None, 4])
def test_ranking_on_the_gpu_matches_brute_force(p):
    queries, images, targets = data(seed=5, p=p)
    expected, _ = brute_force(queries, images, targets)
    streamed = rank_targets(queries, images, targets, device="cuda", chunk_bytes=3000)
    resident = rank_targets(queries, on_device(images, "cuda"), targets, device="cuda")
    np.testing.assert_array_equal(streamed.ranks, expected)
    np.testing.assert_array_equal(resident.ranks, expected)
