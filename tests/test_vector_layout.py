"""The image vectors' layout is the model's declaration, recorded in meta.json and read back
from there, not guessed from an array's shape: every family declares what it returns, the
store refuses a set whose array disagrees with its declaration, sets written before the
declaration load by the legacy rule, and every family's provenance has the common record."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from kisbench.data import store
from kisbench.data.store import ONE_VECTOR, SEVERAL_VECTORS, EmbeddingSet, VectorLayout
from kisbench.embedding.extract import embed_images
from kisbench.errors import InputError, ModelError
from kisbench.evaluation.fusion import align_inputs, fuse
from kisbench.evaluation.ranking import rank_targets, score_matrix
from kisbench.models import load_model
from kisbench.models.blip2_lavis import lavis_python
from kisbench.models.testing.builders import make_tiny_blip2_lavis
from kisbench.reset.consistency import unit_vectors
from tests.models_support import images

pytest_plugins = ["tests.models_fixtures"]  # the tiny_root fixture

# Every tiny model (both LAVIS modes) and the layout it must declare.
ENTRIES = {
    "tiny_clip": ({"family": "open_clip", "model": "local-dir:{root}/tiny_clip"}, ONE_VECTOR),
    "tiny_siglip": ({"family": "open_clip", "model": "local-dir:{root}/tiny_siglip"}, ONE_VECTOR),
    "tiny_align": ({"family": "align", "source": "{root}/tiny_align"}, ONE_VECTOR),
    "tiny_blip2_hf": ({"family": "blip2_hf", "source": "{root}/tiny_blip2_hf"}, SEVERAL_VECTORS),
    "tiny_blip2_thesis": (
        {"family": "blip2_lavis", "mode": "thesis", "local_dir": "{lavis}"},
        ONE_VECTOR,
    ),
    "tiny_blip2_itc": (
        {"family": "blip2_lavis", "mode": "itc", "local_dir": "{lavis}"},
        SEVERAL_VECTORS,
    ),
}
# The record that every family's provenance (and so every meta.json) starts with.
COMMON_KEYS = {"key", "family", "args", "library", "weights", "preprocess", "dtype", "device"}


@pytest.fixture(scope="module")
def tiny_lavis(tmp_path_factory: pytest.TempPathFactory) -> Path:
    try:
        lavis_python()
    except ModelError as err:  # as tests/test_models_lavis.py: a missing set-up fails
        pytest.fail(f"{err} (these tests need the LAVIS virtualenv; CI builds it)")
    return make_tiny_blip2_lavis(tmp_path_factory.mktemp("tiny_lavis") / "tiny_blip2", seed=0)


@pytest.fixture(scope="module", params=list(ENTRIES))
def loaded(request: pytest.FixtureRequest, tiny_root: Path):
    key = request.param
    entry, expected = ENTRIES[key]
    places = {"root": tiny_root}
    if entry["family"] == "blip2_lavis":
        places["lavis"] = request.getfixturevalue("tiny_lavis")
    args = {k: v.format(**places) if isinstance(v, str) else v for k, v in entry.items()}
    return key, load_model(key, args, device="cpu", precision="fp32"), expected


def test_declared_layout_is_what_the_model_returns(loaded) -> None:
    key, model, expected = loaded
    assert model.vectors == expected, key
    pixels = torch.stack([model.image_transform(im) for im in images(2)])
    vectors = model.encode_images(pixels)
    assert model.vectors.matches(vectors.shape), (key, vectors.shape)
    assert vectors.ndim == (3 if expected.several else 2)
    assert model.encode_texts(["a dog"]).ndim == 2  # a text is one vector in every family
    if expected.several:
        assert vectors.shape[1] == model.provenance()["queries_per_image"]


def test_provenance_has_the_common_record(loaded) -> None:
    key, model, expected = loaded
    prov = model.provenance()
    assert COMMON_KEYS | {"vectors", "context_length"} <= set(prov), key
    assert prov["key"] == key and prov["family"] == model.spec.family
    assert prov["dtype"] == "fp32" and prov["device"] == "cpu"
    assert prov["vectors"] == expected.to_meta()
    assert prov["preprocess"] == repr(model.image_transform)
    assert isinstance(prov["library"], str) and prov["library"]
    # The learned temperature the simulate stage starts from (docs/simulation.md): each
    # family's own where it has one, None where the features have none.
    scale = prov["logit_scale"]
    has_scale = model.spec.family in ("open_clip", "align") or getattr(model, "mode", "") == "itc"
    assert (isinstance(scale, float) and scale > 0) if has_scale else scale is None, (key, scale)
    json.dumps(prov)  # it goes into meta.json as it is


def test_embedded_set_records_and_keeps_the_layout(loaded, tmp_path: Path) -> None:
    key, model, expected = loaded
    paths = []
    for i, im in enumerate(images(3, seed=2)):
        paths.append(tmp_path / f"{i}.png")
        im.save(paths[-1])
    embed_images(model, [p.stem for p in paths], paths, tmp_path / "out", workers=0, progress=False)
    meta = json.loads((tmp_path / "out" / store.META).read_text(encoding="utf-8"))
    assert meta["vectors"] == expected.to_meta()
    loaded_set = store.load(tmp_path / "out")
    assert loaded_set.layout == expected and loaded_set.multi_vector == expected.several


def test_a_model_returning_another_layout_than_declared_fails(
    tiny_root: Path, tmp_path: Path
) -> None:
    entry = {"family": "open_clip", "model": f"local-dir:{tiny_root}/tiny_clip"}
    model = load_model("tiny_clip", entry, device="cpu")

    class SeveralInDisguise:
        """The model, but its images come back as (B, 2, D) while it declares one vector."""

        def __init__(self, inner) -> None:
            self.inner = inner

        def __getattr__(self, name: str):
            return getattr(self.inner, name)

        def encode_images(self, pixels: torch.Tensor) -> np.ndarray:
            v = self.inner.encode_images(pixels)
            return np.stack([v, v], axis=1)

    path = tmp_path / "0.png"
    images(1)[0].save(path)
    with pytest.raises(ModelError, match="declares one vector"):
        embed_images(
            SeveralInDisguise(model), ["0"], [path], tmp_path / "out", workers=0, progress=False
        )
    assert not (tmp_path / "out").exists()


def _write_raw(folder: Path, vectors: np.ndarray, meta: dict) -> Path:
    """An embedding set laid out by hand, past the checks of ``store.save``."""
    folder.mkdir(parents=True)
    np.save(folder / store.EMBEDDINGS, vectors)
    store.write_ids(folder / store.IDS, [f"i{n}" for n in range(len(vectors))])
    (folder / store.META).write_text(json.dumps(meta), encoding="utf-8")
    return folder


def test_declared_several_with_a_2d_array_is_an_error_naming_the_folder(tmp_path: Path) -> None:
    meta = {"kind": "images", "vectors": SEVERAL_VECTORS.to_meta()}
    folder = _write_raw(tmp_path / "features", np.zeros((3, 4), np.float32), meta)
    with pytest.raises(InputError, match=r"features.*several vectors per image.*\(3, 4\)"):
        store.load(folder)
    # and save never writes such a set
    with pytest.raises(InputError, match="several"):
        store.save(tmp_path / "other", ["a", "b", "c"], np.zeros((3, 4), np.float32), meta)
    assert not (tmp_path / "other").exists()


def test_declared_one_with_a_3d_array_is_an_error(tmp_path: Path) -> None:
    meta = {"kind": "images", "vectors": ONE_VECTOR.to_meta()}
    folder = _write_raw(tmp_path / "features", np.zeros((3, 2, 4), np.float32), meta)
    with pytest.raises(InputError, match=r"features.*one vector per image.*\(3, 2, 4\)"):
        store.load(folder)


@pytest.mark.parametrize(
    "bad",
    [
        {"per_image": "many", "scoring": "cosine"},
        {"per_image": "one", "scoring": "max_over_vectors"},  # not a pair the ranking knows
        {"per_image": "one"},
        "one",
    ],
)
def test_a_malformed_declaration_is_an_error(tmp_path: Path, bad) -> None:
    folder = _write_raw(tmp_path / "f", np.zeros((2, 4), np.float32), {"vectors": bad})
    with pytest.raises(InputError, match="'vectors'"):
        store.load(folder)


def test_layout_pairs() -> None:
    assert ONE_VECTOR == VectorLayout("one", "cosine") and ONE_VECTOR.ndim == 2
    assert SEVERAL_VECTORS == VectorLayout("several", "max_over_vectors")
    assert SEVERAL_VECTORS.ndim == 3 and SEVERAL_VECTORS.several
    with pytest.raises(ValueError, match="unsupported"):
        VectorLayout("several", "cosine")
    assert VectorLayout.from_meta(SEVERAL_VECTORS.to_meta()) == SEVERAL_VECTORS


@pytest.mark.parametrize("shape, expected", [((3, 4), ONE_VECTOR), ((3, 2, 4), SEVERAL_VECTORS)])
def test_the_legacy_rule_loads_a_set_written_before_the_declaration(
    tmp_path: Path, shape: tuple[int, ...], expected: VectorLayout
) -> None:
    # meta.json as the embed stage wrote it before "vectors" existed
    old_meta = {"key": "m", "family": "open_clip", "dtype": "fp32", "kind": "images"}
    folder = _write_raw(tmp_path / "old", np.ones(shape, np.float32), old_meta)
    old = store.load(folder)
    assert old.layout == expected and old.multi_vector == expected.several
    assert "vectors" not in old.meta


def test_the_legacy_rule_refuses_other_shapes(tmp_path: Path) -> None:
    folder = _write_raw(tmp_path / "old", np.ones((3, 2, 2, 4), np.float32), {})
    with pytest.raises(InputError, match="4 dimensions"):
        store.load(folder)


def test_queries_are_one_vector_whatever_the_model_does_with_images(tmp_path: Path) -> None:
    # embed-queries copies the model's provenance, "vectors" included, into a query set
    meta = {"kind": "queries", "vectors": SEVERAL_VECTORS.to_meta()}
    store.save(tmp_path / "q", ["a", "b"], np.zeros((2, 4), np.float32), meta)
    queries = store.load(tmp_path / "q")
    assert queries.layout == ONE_VECTOR and not queries.multi_vector
    folder = _write_raw(tmp_path / "bad", np.zeros((2, 3, 4), np.float32), meta)
    with pytest.raises(InputError, match="one vector per text"):
        store.load(folder)


def test_ranking_checks_a_declared_layout() -> None:
    q = np.eye(2, dtype=np.float32)
    flat, multi = np.eye(2, dtype=np.float32), np.eye(2, dtype=np.float32)[:, None, :]
    targets = np.array([0, 1])
    assert rank_targets(q, flat, targets, layout=ONE_VECTOR).ranks.tolist() == [1, 1]
    assert rank_targets(q, multi, targets, layout=SEVERAL_VECTORS).ranks.tolist() == [1, 1]
    with pytest.raises(InputError, match="several vectors"):
        rank_targets(q, flat, targets, layout=SEVERAL_VECTORS)
    with pytest.raises(InputError, match="one vector"):
        score_matrix(q, multi, layout=ONE_VECTOR)


def test_reset_unit_vectors_follow_the_declared_layout() -> None:
    multi = np.array([[[1.0, 0.0], [0.0, 1.0]]])
    assert unit_vectors(multi, SEVERAL_VECTORS)[0] == pytest.approx([2**-0.5, 2**-0.5])
    with pytest.raises(InputError, match="one vector"):
        unit_vectors(multi, ONE_VECTOR)


def test_fusion_takes_each_models_declared_layout() -> None:
    def images_set(vectors: np.ndarray, layout: VectorLayout) -> EmbeddingSet:
        meta = {"kind": "images", "vectors": layout.to_meta()}
        return EmbeddingSet(ids=["x", "y"], vectors=vectors, meta=meta)

    def query_set(rows: list[list[float]]) -> EmbeddingSet:
        meta = {"kind": "queries", "vectors": SEVERAL_VECTORS.to_meta()}
        return EmbeddingSet(ids=["y"], vectors=np.array(rows, np.float32), meta=meta)

    eye = np.eye(2, dtype=np.float32)
    images_by_model = {
        "flat": images_set(eye, ONE_VECTOR),
        "multi": images_set(np.stack([eye, eye[::-1]], axis=1), SEVERAL_VECTORS),
    }
    queries = {"flat": query_set([[0, 1]]), "multi": query_set([[0, 1]])}
    inputs = align_inputs(images_by_model, queries)
    assert inputs.layouts == [ONE_VECTOR, SEVERAL_VECTORS]
    single = fuse(inputs, methods=("rrf",)).query("method == 'single'")
    # flat: y is the best image; multi: x's second vector ties y's first, and a tie counts
    # against the target (the ranking's pessimistic policy)
    assert dict(zip(single["members"], single["rank"], strict=True)) == {"flat": 1, "multi": 2}
    bad = {"multi": EmbeddingSet(ids=["y"], vectors=np.zeros((1, 2, 2), np.float32), meta={})}
    with pytest.raises(InputError, match="several vectors per query"):
        align_inputs({"multi": images_by_model["multi"]}, bad)
