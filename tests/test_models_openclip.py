"""open_clip family: hub repositories and pretrained tags resolved through the Hugging Face
cache (a fabricated one, offline), pinned revisions, provenance, SigLIP's padding."""

from __future__ import annotations

import copy
import hashlib
import json
from pathlib import Path

import huggingface_hub.constants as hf_constants
import numpy as np
import open_clip
import pytest
import torch
import yaml
from open_clip import pretrained as oc_pretrained

from kisbench.models import load_model, weights
from kisbench.models.testing.builders import TINY_CLIP, make_tiny_clip
from tests.models_support import fake_hub_repo, images

pytest_plugins = ["tests.models_fixtures"]  # the tiny_root fixture

COMMIT_A = "a" * 40
COMMIT_B = "b" * 40


@pytest.fixture
def hub_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty Hugging Face cache, used offline."""
    cache = tmp_path / "hub"
    cache.mkdir()
    monkeypatch.setattr(hf_constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(hf_constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return cache


def embed(model, n: int = 3) -> tuple[np.ndarray, np.ndarray]:
    pixels = torch.stack([model.image_transform(im) for im in images(n)])
    return model.encode_images(pixels), model.encode_texts(["a dog", "sunset over the river"])


def sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def test_hub_repo_loads_from_cache_with_its_commit(hub_cache: Path, tiny_root: Path) -> None:
    folder = tiny_root / "tiny_clip"
    files = {p.name: p for p in folder.iterdir()}
    fake_hub_repo(hub_cache, "kisbench-test/tiny-clip", files, COMMIT_A)
    hub_model = load_model("h", {"family": "open_clip", "model": "hf-hub:kisbench-test/tiny-clip"})
    local = load_model("l", {"family": "open_clip", "model": f"local-dir:{folder}"})
    for a, b in zip(embed(hub_model), embed(local), strict=True):
        np.testing.assert_allclose(a, b, atol=1e-6)
    prov = hub_model.provenance()["weights"]
    assert prov["repo"] == "kisbench-test/tiny-clip"
    assert prov["revision"] == COMMIT_A
    assert prov["files"]["open_clip_model.safetensors"] == sha256(
        folder / "open_clip_model.safetensors"
    )


def test_pinned_revision_loads_that_commit(hub_cache: Path, tmp_path: Path) -> None:
    old, new = make_tiny_clip(tmp_path / "old", seed=1), make_tiny_clip(tmp_path / "new", seed=2)
    repo = "kisbench-test/pinned"
    fake_hub_repo(hub_cache, repo, {p.name: p for p in old.iterdir()}, COMMIT_B)
    fake_hub_repo(hub_cache, repo, {p.name: p for p in new.iterdir()}, COMMIT_A)  # main
    pinned = load_model(
        "p", {"family": "open_clip", "model": f"hf-hub:{repo}", "revision": COMMIT_B}
    )
    main = load_model("m", {"family": "open_clip", "model": f"hf-hub:{repo}"})
    reference = load_model("r", {"family": "open_clip", "model": f"local-dir:{old}"})
    np.testing.assert_allclose(embed(pinned)[0], embed(reference)[0], atol=1e-6)
    assert not np.allclose(embed(main)[0], embed(reference)[0], atol=1e-3)
    assert pinned.provenance()["weights"]["revision"] == COMMIT_B
    assert pinned.provenance()["weights"]["revision_requested"] == COMMIT_B
    assert main.provenance()["weights"]["revision"] == COMMIT_A


def test_siglip_hub_repo_takes_the_tokenizer_its_config_names(
    hub_cache: Path,
    tiny_root: Path,
) -> None:
    folder = tiny_root / "tiny_siglip"
    config = json.loads((folder / "open_clip_config.json").read_text())
    tok_repo = config["model_cfg"]["text_cfg"]["hf_tokenizer_name"]
    tok_files = {p.name: p for p in folder.iterdir() if p.name.startswith("tokenizer")}
    model_files = {p.name: p for p in folder.iterdir() if p.name.startswith("open_clip")}
    fake_hub_repo(hub_cache, tok_repo, tok_files, COMMIT_B)
    fake_hub_repo(hub_cache, "kisbench-test/tiny-siglip-32", model_files, COMMIT_A)
    hub_model = load_model(
        "h", {"family": "open_clip", "model": "hf-hub:kisbench-test/tiny-siglip-32"}
    )
    local = load_model("l", {"family": "open_clip", "model": f"local-dir:{folder}"})
    for a, b in zip(embed(hub_model), embed(local), strict=True):
        np.testing.assert_allclose(a, b, atol=1e-6)
    assert hub_model.provenance()["weights"]["tokenizer"] == {
        "repo": tok_repo,
        "revision": COMMIT_B,
    }


def test_siglip_text_is_padded_to_the_full_context(tiny_root: Path) -> None:
    model = load_model("s", {"family": "open_clip", "model": f"local-dir:{tiny_root}/tiny_siglip"})
    tokens = model.tokenizer(["a dog"])
    assert model.context_length == 64
    assert tokens.shape == (1, 64)
    pad = model.tokenizer.tokenizer.pad_token_id
    assert (tokens[0] != pad).sum() < 10 and (tokens[0, -20:] == pad).all()


@pytest.fixture
def tagged_architecture(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A built-in-style architecture name and a pretrained tag whose weights live on the
    (fabricated) hub, as open_clip's tags for the thesis models do."""
    name = "kisbench-tiny-tagged"
    cfg_file = tmp_path / "configs" / f"{name}.json"
    cfg_file.parent.mkdir()
    cfg_file.write_text(json.dumps(TINY_CLIP["model_cfg"]))
    monkeypatch.setattr(
        open_clip.factory, "_MODEL_CONFIG_PATHS", list(open_clip.factory._MODEL_CONFIG_PATHS)
    )
    monkeypatch.setattr(open_clip.factory, "_MODEL_CONFIGS", dict(open_clip.factory._MODEL_CONFIGS))
    open_clip.add_model_config(cfg_file.parent)
    table = copy.deepcopy(oc_pretrained._PRETRAINED)
    # OpenAI-like: weights trained with QuickGELU, which the architecture name lacks
    table[name] = {
        "faketag": oc_pretrained._pcfg(
            hf_hub="kisbench-test/tagged/", quick_gelu=True, resize_mode="squash"
        )
    }
    monkeypatch.setattr(oc_pretrained, "_PRETRAINED", table)
    return name


def test_pretrained_tag_matches_open_clips_own_loading(
    hub_cache: Path, tagged_architecture: str, tmp_path: Path
) -> None:
    name = tagged_architecture
    torch.manual_seed(3)
    model = open_clip.create_model(name, force_quick_gelu=True)
    state = {k: v.detach().clone().contiguous() for k, v in model.state_dict().items()}
    from safetensors.torch import save_file

    weights_file = tmp_path / "open_clip_model.safetensors"
    save_file(state, str(weights_file))
    fake_hub_repo(hub_cache, "kisbench-test/tagged", {weights_file.name: weights_file}, COMMIT_A)

    ours = load_model("t", {"family": "open_clip", "model": name, "pretrained": "faketag"})
    # open_clip's own path for a tag, told to honour the tag's QuickGELU
    ref, _, ref_pre = open_clip.create_model_and_transforms(
        name, pretrained="faketag", force_quick_gelu=True
    )
    assert repr(ours.image_transform) == repr(ref_pre)
    assert "squash" in repr(ref_pre) or "Resize(size=(64, 64)" in repr(ref_pre)
    pixels = torch.stack([ref_pre(im) for im in images(3)])
    with torch.no_grad():
        expected = torch.nn.functional.normalize(ref.eval().encode_image(pixels), dim=-1)
    np.testing.assert_allclose(ours.encode_images(pixels), expected.numpy(), atol=1e-5)
    assert ours.provenance()["weights"]["revision"] == COMMIT_A


def test_tag_table_copy_equals_open_clips() -> None:
    for (model, tag), hf_hub in weights.OPEN_CLIP_TAGS.items():
        assert open_clip.get_pretrained_cfg(model, tag)["hf_hub"] == hf_hub, (model, tag)


def test_every_params_tag_is_checked_without_importing_open_clip() -> None:
    params = yaml.safe_load(Path("params.yaml").read_text())
    for key, entry in params["models"].items():
        if entry["family"] == "open_clip" and entry.get("pretrained"):
            assert (entry["model"], entry["pretrained"]) in weights.OPEN_CLIP_TAGS, key


def test_clip_b32_entry_uses_quickgelu_as_openais_weights_need() -> None:
    entry = yaml.safe_load(Path("params.yaml").read_text())["models"]["clip_b32"]
    assert open_clip.get_pretrained_cfg(entry["model"], entry["pretrained"])["quick_gelu"]
    assert open_clip.get_model_config(entry["model"])["quick_gelu"]
