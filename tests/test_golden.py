"""Golden embeddings: every tiny model, rebuilt from its fixed seed and loaded through the
real code path, still computes what tests/golden/ recorded for a few demo images and
texts (kisbench/models/testing/golden.py). An upgrade of torch, torchvision, Pillow,
open_clip, timm, transformers or LAVIS that changes a model's output fails here.

The LAVIS models need .venv-lavis (made by `make setup`): without it their test FAILS, on
purpose, as in test_models_lavis.py (CI builds it; a skip would hide a broken set-up).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml

from kisbench.errors import ModelError
from kisbench.models import load_model
from kisbench.models.testing import golden
from kisbench.models.testing.builders import TINY_MODELS

pytest_plugins = ["tests.models_fixtures"]  # the tiny_root fixture

REPO = Path(__file__).resolve().parents[1]
GOLDEN = REPO / "tests" / "golden"

# Tolerance on every float array (unit-vector components, cosines, pixel statistics).
# Measured on the CPU in fp32 (x86-64, 2 cores): the same computation repeated 3 times
# differed by 0; torch.set_num_threads(1) (and OMP_NUM_THREADS=1 for the LAVIS worker) vs
# the default 2 threads, and 4 threads, by at most 1.8e-7 (tiny_align); one image and one
# text at a time instead of one batch (other kernel shapes, as another CPU may choose) by
# at most 8.6e-7 (tiny_blip2_hf texts). 1e-5 leaves over 10x that margin, and is far below
# what a changed computation gives (a golden value moved by 1e-3 fails; a different
# seed, interpolation or activation moves values by 1e-2 and more).
ATOL = 1e-5

UPGRADE = (
    "a library upgrade changed what this model computes; if intended, regenerate with "
    f"`{golden.COMMAND}` and say so in the commit"
)


def check(key: str, actual: dict[str, np.ndarray]) -> None:
    expected = golden.load(GOLDEN, key)
    problems = golden.differences(expected, actual, ATOL)
    assert not problems, f"{key}: " + "; ".join(problems) + f" -- {UPGRADE}"


@pytest.fixture(scope="module")
def paths() -> list[Path]:
    return golden.demo_images()


@pytest.fixture(scope="module")
def main_root(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The main-environment tiny models built with the goldens' seed: the session's shared
    build (tiny_root, seed 0) when the seeds agree, else a build of our own."""
    if golden.SEED == 0:
        return request.getfixturevalue("tiny_root")
    root = tmp_path_factory.mktemp("golden_main")
    golden.build(root, golden.MAIN_ENV_KEYS)
    return root


@pytest.fixture(scope="module")
def lavis_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from kisbench.models.blip2_lavis import lavis_python

    try:
        lavis_python()
    except ModelError as err:
        pytest.fail(f"{err} (this test needs the LAVIS virtualenv; CI builds it)")
    root = tmp_path_factory.mktemp("golden_lavis")
    golden.build(root, golden.LAVIS_KEYS)
    return root


def test_goldens_exist_for_exactly_the_tiny_models() -> None:
    # a new builder (or a new params entry in golden.ENTRIES) without a golden fails here
    assert set(golden.BUILDER.values()) == set(TINY_MODELS), (
        "golden.ENTRIES must load every tiny model of builders.TINY_MODELS and no other"
    )
    saved = {p.stem for p in GOLDEN.glob("*.npz")}
    assert saved == set(golden.ENTRIES), (
        f"tests/golden has {sorted(saved)}, the tiny models are {sorted(golden.ENTRIES)}: "
        f"generate the missing ones with `{golden.COMMAND} --model KEY`"
    )
    assert set(golden.read_meta(GOLDEN)["models"]) == set(golden.ENTRIES)


def test_golden_entries_are_the_params_entries() -> None:
    """The goldens load the tiny models as params.yaml (and so `make smoke`) does."""
    models = yaml.safe_load((REPO / "params.yaml").read_text(encoding="utf-8"))["models"]
    tiny = {k for k, v in models.items() if "data/models/" in str(v)}
    assert tiny == set(golden.ENTRIES)
    for key in tiny:
        assert golden.entry(key, Path("data/models")) == models[key], key


def test_goldens_record_the_inputs_they_were_made_from(paths: list[Path]) -> None:
    meta = golden.read_meta(GOLDEN)
    assert meta["image_ids"] == [p.stem for p in paths]
    assert meta["texts"] == golden.TEXTS
    assert meta["seed"] == golden.SEED
    assert meta["command"] == golden.COMMAND
    # the long text is cut by every model: truncation is part of what is pinned
    for key in golden.ENTRIES:
        assert golden.load(GOLDEN, key)["truncated"].tolist() == [False, False, False, True]


def test_golden_files_stay_small() -> None:
    for path in GOLDEN.glob("*.npz"):
        assert path.stat().st_size < 32_000, f"{path.name}: {path.stat().st_size} bytes"


# (N, Q, D): LAVIS' ITC mode keeps all 32 queries per image, the tiny HF BLIP-2 its 8;
# every other model one vector per image.
MULTI_VECTOR = {"tiny_blip2_itc": [4, 32, 256], "tiny_blip2_hf": [4, 8, 16]}


def test_multi_vector_layouts_are_pinned() -> None:
    for key in golden.ENTRIES:
        shape = golden.load(GOLDEN, key)["images_shape"].tolist()
        if key in MULTI_VECTOR:
            assert shape == MULTI_VECTOR[key], (key, shape)
        else:
            assert len(shape) == 2 and shape[0] == 4, (key, shape)


@pytest.mark.parametrize("key", golden.MAIN_ENV_KEYS)
def test_tiny_model_computes_its_golden(key: str, main_root: Path, paths: list[Path]) -> None:
    model = load_model(key, golden.entry(key, main_root), device="cpu", precision="fp32")
    check(key, golden.to_golden(golden.embed(model, paths, golden.TEXTS)))


@pytest.mark.parametrize("key", golden.LAVIS_KEYS)
def test_lavis_tiny_model_computes_its_golden(
    key: str, lavis_root: Path, paths: list[Path]
) -> None:
    model = load_model(key, golden.entry(key, lavis_root), device="cpu", precision="fp32")
    check(key, golden.to_golden(golden.embed(model, paths, golden.TEXTS)))


def test_a_changed_value_is_reported_with_its_difference() -> None:
    expected = golden.load(GOLDEN, "tiny_clip")
    moved = dict(expected, images=expected["images"].copy())
    moved["images"][1, 3] += 1e-3
    problems = golden.differences(expected, moved, ATOL)
    assert len(problems) == 1 and problems[0].startswith("images: max abs difference 0.001 >")
    assert "(at (1, 3)" in problems[0]
