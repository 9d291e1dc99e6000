"""The model presets of params.yaml against the installed open_clip's own registry (offline),
and the ``cards`` section against the models: a misspelt or renamed preset fails here, not
on a GPU machine hours into a sweep."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import open_clip
import pytest
import torch
import yaml

from kisbench.config import load_params, parse
from kisbench.config.cards import Card, card_of
from kisbench.errors import InputError
from kisbench.models import lock, weights
from kisbench.models.spec import ModelSpec

REPO = Path(__file__).resolve().parents[1]
PARAMS = REPO / "params.yaml"
MINIMAL = {
    "run": {"models": ["m"], "collections": ["c"]},
    "models": {"m": {"family": "x"}},
    "collections": {},
}


def open_clip_repos() -> set[str]:
    """Every hub repository that some pretrained cfg of the installed open_clip points to."""
    repos = set()
    for model, tag in open_clip.list_pretrained():
        hf_hub = open_clip.get_pretrained_cfg(model, tag).get("hf_hub")
        if hf_hub:
            repos.add(weights.split_hub_path(hf_hub)[0])
    return repos


def preset_problems(entry: dict[str, Any], repos: set[str]) -> list[str]:
    """What is wrong with an open_clip params entry as a preset of the installed open_clip
    (empty: it would load, given its weights)."""
    name = str(entry["model"])
    if name.startswith(weights.LOCAL_DIR):
        return []
    if name.startswith(weights.HF_HUB):
        repo = name.removeprefix(weights.HF_HUB).strip("/")
        return [] if repo in repos else [f"no open_clip pretrained cfg points to {repo}"]
    tag = entry.get("pretrained")
    if tag is None:
        return [f"{name}: neither hf-hub:, local-dir: nor a pretrained tag"]
    if (name, tag) not in open_clip.list_pretrained():
        known = open_clip.list_pretrained_tags_by_model(name)
        return [f"({name}, {tag}) is not in open_clip's registry (tags of {name}: {known})"]
    cfg = open_clip.get_pretrained_cfg(name, tag)
    problems = []
    if not (cfg.get("hf_hub") or cfg.get("url")):
        problems.append(f"({name}, {tag}) has no weights (neither hf_hub nor url)")
    # open_clip 3.x only warns when the tag wants QuickGELU and the name lacks it
    if cfg.get("quick_gelu") and not open_clip.get_model_config(name).get("quick_gelu"):
        problems.append(f"({name}, {tag}) was trained with QuickGELU: use {name}-quickgelu")
    return problems


def open_clip_entries() -> dict[str, dict[str, Any]]:
    models = yaml.safe_load(PARAMS.read_text(encoding="utf-8"))["models"]
    return {k: e for k, e in models.items() if e["family"] == "open_clip"}


def tagged() -> dict[str, dict[str, Any]]:
    return {k: e for k, e in open_clip_entries().items() if e.get("pretrained")}


@pytest.fixture(scope="module")
def repos() -> set[str]:
    return open_clip_repos()


@pytest.mark.parametrize("key", sorted(open_clip_entries()))
def test_every_open_clip_preset_is_in_the_installed_registry(key: str, repos: set[str]) -> None:
    assert preset_problems(open_clip_entries()[key], repos) == [], key


def test_a_misspelt_or_wrong_preset_is_caught(repos: set[str]) -> None:
    good = {"family": "open_clip", "model": "ViT-B-16-SigLIP2-256", "pretrained": "webli"}
    assert preset_problems(good, repos) == []
    typo = {**good, "model": "ViT-B-16-SigLIP2-265"}
    assert "not in open_clip's registry" in preset_problems(typo, repos)[0]
    wrong_tag = {**good, "pretrained": "webli2"}
    assert "tags of ViT-B-16-SigLIP2-256: ['webli']" in preset_problems(wrong_tag, repos)[0]
    gelu = {"family": "open_clip", "model": "ViT-L-14-336", "pretrained": "openai"}
    assert "ViT-L-14-336-quickgelu" in preset_problems(gelu, repos)[0]
    hub = {"family": "open_clip", "model": "hf-hub:timm/ViT-B-16-SigLIP2-265"}
    assert "no open_clip pretrained cfg points to" in preset_problems(hub, repos)[0]
    assert preset_problems({**hub, "model": "hf-hub:timm/ViT-B-16-SigLIP2-256"}, repos) == []


def test_the_issue_18_presets_are_there() -> None:
    # issue #18's list, written out by hand: (open_clip name, tag)
    wanted = {
        ("ViT-B-16-SigLIP2-256", "webli"),
        ("ViT-L-16-SigLIP2-384", "webli"),
        ("ViT-SO400M-14-SigLIP2-378", "webli"),
        ("ViT-SO400M-16-SigLIP2-512", "webli"),
        ("ViT-gopt-16-SigLIP2-384", "webli"),
        ("PE-Core-B-16", "meta"),
        ("PE-Core-L-14-336", "meta"),
        ("PE-Core-bigG-14-448", "meta"),
        ("ViT-H-14-worldwide-quickgelu", "metaclip2_worldwide"),
        ("MobileCLIP2-S0", "dfndr2b"),
        ("MobileCLIP2-B", "dfndr2b"),
        ("MobileCLIP2-L-14", "dfndr2b"),
        ("EVA02-E-14-plus", "laion2b_s9b_b144k"),
        ("ViT-L-14-quickgelu", "dfn2b"),
        ("ViT-L-14-336-quickgelu", "openai"),
        ("ViT-L-14", "datacomp_xl_s13b_b90k"),
        ("xlm-roberta-base-ViT-B-32", "laion5b_s13b_b90k"),
        ("ViT-L-14-quickgelu", "openai"),
        ("ViT-H-14", "laion2b_s32b_b79k"),
    }
    have = {(e["model"], e["pretrained"]) for e in tagged().values()}
    assert wanted <= have, sorted(wanted - have)


def test_text_contexts_are_those_the_issue_states() -> None:
    # issue #18: PE-Core reads 32 tokens (72 for bigG); SigLIP 2 64 (Gemma); CLIP 77
    expected = {"pe_core_b16": 32, "pe_core_l14_336": 32, "pe_core_bigg14_448": 72}
    expected |= {k: 64 for k in tagged() if k.startswith("siglip2_")}
    expected |= {"clip_l14": 77, "clip_l14_336": 77, "mobileclip2_s0": 77}
    for key, n in expected.items():
        cfg = open_clip.get_model_config(tagged()[key]["model"])
        assert cfg["text_cfg"]["context_length"] == n, key


# Architectures whose text tower is a transformers model: building them reads its config
# from the hub (xlm-roberta-base), so offline they are checked by name only.
HF_TEXT = {
    k
    for k, e in tagged().items()
    if "hf_model_name" in open_clip.get_model_config(e["model"])["text_cfg"]
}


@pytest.mark.parametrize("key", sorted(set(tagged()) - HF_TEXT))
def test_every_tagged_preset_builds_its_architecture(key: str) -> None:
    """open_clip and timm build the architecture (no weights, no memory: the meta device),
    with QuickGELU exactly where the tag's weights were trained with it."""
    entry = tagged()[key]
    with torch.device("meta"):
        model = open_clip.create_model(entry["model"], device="meta")
    assert sum(p.numel() for p in model.parameters()) > 10_000_000, key
    gelu = any(type(m).__name__ == "QuickGELU" for m in model.modules())
    wants = bool(
        open_clip.get_pretrained_cfg(entry["model"], entry["pretrained"]).get("quick_gelu")
    )
    assert gelu == wants, key


def test_hf_text_presets_name_a_known_text_tower() -> None:
    assert HF_TEXT == {"xlmr_b32"}
    text_cfg = open_clip.get_model_config(tagged()["xlmr_b32"]["model"])["text_cfg"]
    assert text_cfg["hf_model_name"] == text_cfg["hf_tokenizer_name"] == "xlm-roberta-base"


def test_every_tag_preset_is_locked_by_its_hub_repo() -> None:
    for key, entry in tagged().items():
        repo = lock.hub_repo(ModelSpec.from_params(key, entry))
        hf_hub = open_clip.get_pretrained_cfg(entry["model"], entry["pretrained"])["hf_hub"]
        assert repo == weights.split_hub_path(hf_hub)[0], key


# -- run.models and cards --------------------------------------------------------------------


def test_run_models_and_card_keys_are_models() -> None:
    p = load_params(PARAMS)
    assert set(p.run.models) <= set(p.models)
    assert set(p.cards) <= set(p.models), sorted(set(p.cards) - set(p.models))
    real = {k for k in p.models if not k.startswith("tiny_")}
    assert real <= set(p.cards), f"models without a card: {sorted(real - set(p.cards))}"


def test_hub_cards_point_at_the_repository_the_weights_come_from() -> None:
    p = load_params(PARAMS)
    for key, card in p.cards.items():
        repo = lock.hub_repo(ModelSpec.from_params(key, p.models[key]))
        if card.url.startswith("https://huggingface.co/"):
            assert card.url == f"https://huggingface.co/{repo}", key


def test_cards_parse_with_defaults_and_reject_mistakes() -> None:
    cards = {"m": {"licence": "MIT", "url": "https://example.org/card"}}
    cfg = parse({**MINIMAL, "cards": cards})
    assert card_of(cfg, "m") == Card(licence="MIT", url="https://example.org/card")
    assert card_of(cfg, "m").licence_status == "unverified" and card_of(cfg, "m").used_by == []
    assert card_of(cfg, "other") is None
    assert parse(MINIMAL).cards == {}
    bad = {
        "m": {"licence": "MIT", "url": "example.org", "licence_status": "checked"},
        "n": {"licence": "MIT", "url": "https://x", "usedby": ["x"]},
        "o": {"url": "https://x"},
    }
    with pytest.raises(InputError) as err:
        parse({**MINIMAL, "cards": bad})
    message = str(err.value)
    assert "cards.m.licence_status: expected one of card, unverified" in message
    assert "unknown key 'cards.n.usedby' (did you mean 'used_by'?)" in message
    assert "missing key 'cards.o.licence'" in message


def test_a_cards_url_must_be_a_web_address() -> None:
    with pytest.raises(InputError, match="cards.m.url: expected a web address"):
        parse({**MINIMAL, "cards": {"m": {"licence": "MIT", "url": "huggingface.co/x"}}})


def test_a_card_of_no_model_is_an_error() -> None:
    cards = {"mm": {"licence": "MIT", "url": "https://x"}}
    with pytest.raises(
        InputError, match=r"cards.mm: unknown model key 'mm' \(did you mean 'm'\?\)"
    ):
        parse({**MINIMAL, "cards": cards})
