"""Groups, the open_clip_all catalog, the generated models block and `kisbench sweep`
(docs/sweep.md). The sweep itself runs the real `dvc repro` in a scratch workspace (slow)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from kisbench import config
from kisbench.config.groups import expand
from kisbench.errors import InputError
from kisbench.tools import catalog, sweep

REPO = Path(__file__).resolve().parents[1]

MODELS = {
    "a": {"family": "open_clip", "model": "ViT-B-32-quickgelu", "pretrained": "openai"},
    "b": {"family": "align", "source": "kakaobrain/align-base"},
    "c": {"family": "open_clip", "model": "ViT-H-14", "pretrained": "laion2b_s32b_b79k"},
}


def params(**over: object) -> dict:
    raw = {
        "run": {"models": ["a"], "collections": ["demo"]},
        "models": MODELS,
        "collections": {"demo": {"xmax": 50}},
        "groups": {"g1": ["c", "a"], "g2": ["a", "b"]},
    }
    raw.update(over)
    return raw


def test_groups_expand_in_order_each_key_once() -> None:
    cfg = config.parse(params())
    assert cfg.groups == {"g1": ["c", "a"], "g2": ["a", "b"]}
    # worked by hand: g1 gives c, a; b is new; g2 adds nothing new but b (already there)
    assert expand(["g1", "b", "g2"], cfg.groups, cfg.models) == ["c", "a", "b"]
    assert expand(["b", "a"], cfg.groups, cfg.models) == ["b", "a"]
    built = {"open_clip_all": lambda: ["x", "a"]}
    assert expand(["open_clip_all", "g2"], cfg.groups, cfg.models, built) == ["x", "a", "b"]
    with pytest.raises(InputError, match="neither a model key nor a group.*did you mean 'g1'"):
        expand(["g11"], cfg.groups, cfg.models)


def test_groups_are_checked_against_the_models() -> None:
    with pytest.raises(InputError) as err:
        config.parse(params(groups={"g1": ["a", "zz"], "c": ["a"], "open_clip_all": ["a"]}))
    text = str(err.value)
    assert "groups.g1: unknown model key 'zz'" in text
    assert "groups.c: 'c' is also a model key" in text
    assert "groups.open_clip_all: 'open_clip_all' is a built-in group" in text
    with pytest.raises(InputError, match="groups.g: expected a non-empty list"):
        config.parse(params(groups={"g": []}))


def test_a_group_in_run_models_says_what_to_run_instead() -> None:
    raw = params(run={"models": ["g1"], "collections": ["demo"]})
    with pytest.raises(InputError) as err:
        config.parse(raw)
    text = str(err.value)
    assert "run.models names the group 'g1'" in text
    assert "kisbench sweep g1" in text and "run.models: [c, a]" in text
    raw = params(run={"models": ["open_clip_all"], "collections": ["demo"]})
    with pytest.raises(InputError, match="kisbench models add open_clip_all"):
        config.parse(raw)


def test_kisbench_check_reports_a_group_in_run_models_once(tmp_path: Path) -> None:
    from kisbench.tools.check import check_params

    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params(run={"models": ["g1"], "collections": ["demo"]})))
    problems, cfg, _ = check_params(path)
    assert cfg is None
    about = [p.message for p in problems if "g1" in p.message and "run.models" in p.message]
    assert len(about) == 1 and "kisbench sweep g1" in about[0], about


def test_the_repository_groups_name_existing_models() -> None:
    cfg = config.load_params(REPO / "params.yaml")
    assert len(cfg.groups["thesis"]) == 9  # the thesis compared nine models
    for name, members in cfg.groups.items():
        assert set(members) <= set(cfg.models), name


def _independent_weight_files() -> tuple[int, set[str]]:
    """Pairs and distinct weight files straight from open_clip's own table of tags (not
    through the catalog's helpers): a tag's file is its hub path, else its URL."""
    from open_clip import pretrained

    table = pretrained._PRETRAINED
    pairs = [(m, t) for m, tags in table.items() for t in tags]
    files = {tags[t].get("hf_hub") or tags[t].get("url") for m, tags in table.items() for t in tags}
    return len(pairs), files


def test_open_clip_all_has_one_model_per_weight_file() -> None:
    import open_clip

    pairs = catalog.open_clip_all()
    n_pairs, weight_files = _independent_weight_files()
    assert n_pairs == len(open_clip.list_pretrained())
    assert len(pairs) == len(weight_files)
    assert {p.weights for p in pairs} == weight_files
    if open_clip.__version__ == "3.3.0":  # counted by hand from the registry (docs/sweep.md)
        assert (n_pairs, len(pairs)) == (196, 167)
    keys = [p.key for p in pairs]
    assert len(set(keys)) == len(keys)
    assert all(config.core.NAME.fullmatch(k) and k.startswith("oc_") for k in keys)
    chosen = {(p.model, p.pretrained) for p in pairs}
    # A -quickgelu twin: one checkpoint; the architecture that matches the weights is kept.
    assert ("ViT-B-32-quickgelu", "openai") in chosen and ("ViT-B-32", "openai") not in chosen
    # LAION's ViT-H-14 (GELU) has no twin: kept as it is, with no alias.
    laion = [p for p in pairs if (p.model, p.pretrained) == ("ViT-H-14", "laion2b_s32b_b79k")]
    assert len(laion) == 1 and laion[0].aliases == ()
    # Two architecture names on one hub repo.
    so400m = {("ViT-SO400M-14-SigLIP-378", "webli"), ("ViT-SO400M-14-SigLIP-384", "webli")}
    assert len(so400m & chosen) == 1
    every = {(m, t) for p in pairs for m, t in [(p.model, p.pretrained), *p.aliases]}
    assert every == set(open_clip.list_pretrained())


def test_open_clip_all_reuses_the_hand_written_keys() -> None:
    pairs = {(p.model, p.pretrained): p.key for p in catalog.open_clip_all(MODELS)}
    assert pairs[("ViT-B-32-quickgelu", "openai")] == "a"
    assert pairs[("ViT-H-14", "laion2b_s32b_b79k")] == "c"
    hub = {"s": {"family": "open_clip", "model": "hf-hub:timm/ViT-SO400M-14-SigLIP-384"}}
    keys = [p.key for p in catalog.open_clip_all(hub)]
    assert keys.count("s") == 1


PARAMS_TEXT = """\
# the file's own comment
run:
  models: [a]   # result: models
  collections: [demo]

# Models: hand-written entries.
models:
  a:            # first model
    family: open_clip
    model: ViT-B-32-quickgelu
    pretrained: openai
  # a comment inside the section, kept
  b:
    family: align
    source: kakaobrain/align-base

# Collections come next.
collections:
  demo:
    xmax: 50
"""


def _pairs() -> list[catalog.Pair]:
    return [
        catalog.Pair("a", "ViT-B-32-quickgelu", "openai", "w1", (("ViT-B-32", "openai"),)),
        catalog.Pair("oc_rn50_yes", "RN50", "yes", "w2", ()),  # a tag YAML would read as true
        catalog.Pair("oc_vit_l_14_x", "ViT-L-14", "x", "w3", ()),
    ]


def test_the_generated_block_is_idempotent_and_keeps_every_other_line() -> None:
    once = catalog.write_block(PARAMS_TEXT, "open_clip_all", _pairs(), "9.9")
    twice = catalog.write_block(once, "open_clip_all", _pairs(), "9.9")
    assert once == twice
    original = PARAMS_TEXT.splitlines()
    lines = once.splitlines()
    # every original line is still there, in order, and the block sits inside `models`,
    # before the blank line and comment that introduce `collections`
    begin = lines.index("  " + catalog.BEGIN.format(group="open_clip_all"))
    end = lines.index("  " + catalog.END.format(group="open_clip_all"))
    assert lines[:begin] + lines[end + 1 :] == original
    assert original[begin - 1] == "    source: kakaobrain/align-base"
    raw = yaml.safe_load(once)
    assert list(raw["models"]) == ["a", "b", "oc_rn50_yes", "oc_vit_l_14_x"]
    assert raw["models"]["oc_rn50_yes"] == {
        "family": "open_clip",
        "model": "RN50",
        "pretrained": "yes",
    }
    assert raw["collections"] == {"demo": {"xmax": 50}}
    # the hand-written `a` is not generated again
    assert sum(line.startswith("  a:") for line in lines) == 1
    # an update replaces the block: fewer entries, still once
    fewer = catalog.write_block(once, "open_clip_all", _pairs()[:2], "9.9")
    assert (
        "oc_vit_l_14_x" not in fewer and fewer.count(catalog.END.format(group="open_clip_all")) == 1
    )
    assert catalog.remove_block(fewer) == PARAMS_TEXT


def test_set_run_list_replaces_only_that_key() -> None:
    flow = "run:\n  models: [a, b,\n           c]\n  collections: [demo]  # kept\nx: 1\n"
    out = sweep.set_run_list(flow, "models", ["k"])
    assert yaml.safe_load(out) == {"run": {"models": ["k"], "collections": ["demo"]}, "x": 1}
    assert out.splitlines()[2:] == flow.splitlines()[3:]
    block = "run:\n  models:\n  - a\n  - b\n  collections:\n  - demo\nmodels: {}\n"
    out = sweep.set_run_list(block, "collections", ["d1", "d2"])
    assert yaml.safe_load(out)["run"] == {"models": ["a", "b"], "collections": ["d1", "d2"]}
    assert out.endswith("models: {}\n")


def test_last_error_is_the_stages_own_message() -> None:
    log = (
        "Running stage 'embed-images@m-demo':\n"
        "Traceback (most recent call last):\n  ValueError: inner\n"
        "error: model 'm': weights not in the cache\n"
        "ERROR: failed to reproduce 'embed-images@m-demo': exited with 1\n"
    )
    assert sweep.last_error(log) == "error: model 'm': weights not in the cache"
    assert sweep.last_error("x\nERROR: dvc failed\n") == "ERROR: dvc failed"
    assert sweep.last_error("") == "no output"


def test_largest_first_unknown_sizes_last() -> None:
    sizes = {"s": 10, "l": 1000, "u": None, "m": 100, "v": None}
    assert sweep.order_largest(["u", "s", "l", "v", "m"], sizes) == ["l", "m", "s", "u", "v"]


def test_parameter_count_on_the_meta_device_matches_the_built_model(tmp_path: Path) -> None:
    import open_clip

    from kisbench.models.testing.builders import TINY_MODELS

    for name in ("tiny_clip", "tiny_siglip", "tiny_siglip2", "tiny_pe_core", "tiny_mobileclip2"):
        if name not in TINY_MODELS:
            continue
        folder = TINY_MODELS[name](tmp_path / name, 0)
        built = open_clip.create_model(f"local-dir:{folder}", pretrained=None)
        expected = sum(p.numel() for p in built.parameters())
        assert sweep.parameter_count({"family": "open_clip", "model": f"local-dir:{folder}"}) == (
            expected
        ), name
    assert sweep.parameter_count({"family": "blip2_lavis", "model_type": "pretrain_vitL"}) is None


def _fake_cache(root: Path, repo: str, size: int) -> None:
    folder = root / ("models--" + repo.replace("/", "--"))
    (folder / "blobs").mkdir(parents=True)
    (folder / "refs").mkdir()
    commit = "0" * 39 + str(len(repo) % 10)
    (folder / "refs" / "main").write_text(commit)
    blob = folder / "blobs" / ("a" * 64)
    blob.write_bytes(b"x" * size)
    snap = folder / "snapshots" / commit
    snap.mkdir(parents=True)
    (snap / "model.safetensors").symlink_to(os.path.relpath(blob, snap))


def test_remove_weights_deletes_only_the_named_repos(tmp_path: Path) -> None:
    _fake_cache(tmp_path, "org/big", 5000)
    _fake_cache(tmp_path, "org/tokenizer", 10)
    assert sweep.remove_hub_weights({"org/big"}, tmp_path) == 5000
    assert not (tmp_path / "models--org--big").exists()
    assert (tmp_path / "models--org--tokenizer" / "blobs").is_dir()
    assert sweep.remove_hub_weights({"org/absent"}, tmp_path) == 0


def test_weight_repos_come_from_meta_json(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    from kisbench import layout

    for model, weights in (
        ("hubby", {"source": "hf-hub", "repo": "org/hubby", "tokenizer": {"repo": "org/tok"}}),
        ("local", {"source": "local-dir", "path": "data/models/x"}),
    ):
        folder = layout.features_dir(model, "demo")
        folder.mkdir(parents=True)
        (folder / "meta.json").write_text(json.dumps({"weights": weights}))
    assert sweep.weight_repos("hubby", ["demo"]) == {"org/hubby"}
    assert sweep.weight_repos("local", ["demo"]) == set()


@pytest.mark.slow
def test_a_sweep_survives_a_broken_model_and_retries_only_it(tmp_path: Path) -> None:
    from kisbench.tools.smoke import deep_merge, make_workspace

    over = yaml.safe_load((REPO / "params.smoke.yaml").read_text(encoding="utf-8"))
    missing = {"family": "open_clip", "model": "local-dir:data/models/missing"}
    over = deep_merge(
        over,
        {"run": {"models": ["tiny_clip", "tiny_align"]}, "models": {"tiny_missing": missing}},
    )
    ws = make_workspace(REPO, tmp_path / "ws", over)
    before = (ws / "params.yaml").read_bytes()
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "DVC_NO_ANALYTICS": "1"}
    command = [sys.executable, "-m", "kisbench.tools.main", "sweep"]
    command += ["tiny_missing", "tiny_clip", "tiny_align"]

    def run() -> subprocess.CompletedProcess[str]:
        return subprocess.run(command, cwd=ws, env=env, capture_output=True, text=True, timeout=900)

    first = run()
    assert first.returncode == 1, first.stdout + first.stderr  # one failed
    table = pd.read_csv(ws / "metrics" / "sweep.csv", keep_default_na=False).set_index("key")
    # largest first (tiny_clip has more parameters than tiny_align); unknown size last
    assert list(table.index) == ["tiny_missing", "tiny_clip", "tiny_align"]
    assert table.loc["tiny_clip", "status"] == "ok" and table.loc["tiny_align", "status"] == "ok"
    assert table.loc["tiny_missing", "status"] == "failed"
    assert "data/models/missing" in table.loc["tiny_missing", "reason"]
    assert "[1/3] tiny_clip" in first.stdout and "[3/3] tiny_missing" in first.stdout
    for model in ("tiny_clip", "tiny_align"):
        assert (ws / "data" / "features" / model / "demo" / "embeddings.npy").is_file()
        assert (ws / "data" / "ranks" / model / "demo").is_dir()
    assert (ws / "params.yaml").read_bytes() == before  # put back byte for byte
    assert not (ws / "dvc.lock").exists()  # as it was: none
    report = (ws / "reports" / "sweep.md").read_text(encoding="utf-8")
    assert "2 ok, 1 failed, 0 skipped" in report
    assert "dvc exp run -S 'run.models=[tiny_clip,tiny_align]'" in report
    assert report.count("\n| tiny_") == 3

    second = run()
    assert second.returncode == 1
    assert "2 ok from an earlier sweep, 1 to run" in second.stdout
    assert "[1/1] tiny_missing" in second.stdout and "tiny_clip (" not in second.stdout
    again = pd.read_csv(ws / "metrics" / "sweep.csv", keep_default_na=False).set_index("key")
    for model in ("tiny_clip", "tiny_align"):  # not run again
        assert again.loc[model, "finished"] == table.loc[model, "finished"]
    assert again.loc["tiny_missing", "finished"] >= table.loc["tiny_missing", "finished"]
    assert (ws / "params.yaml").read_bytes() == before


def test_models_add_on_the_repository_params_is_a_marked_idempotent_block(tmp_path: Path) -> None:
    path = tmp_path / "params.yaml"
    original = (REPO / "params.yaml").read_text(encoding="utf-8")
    path.write_text(original, encoding="utf-8")
    sweep.add(group="open_clip_all", params=path, remove=False)
    once = path.read_text(encoding="utf-8")
    sweep.add(group="open_clip_all", params=path, remove=False)
    assert path.read_text(encoding="utf-8") == once
    cfg = config.load_params(path)  # the schema and the group checks accept it
    added = [k for k in cfg.models if k not in yaml.safe_load(original)["models"]]
    _, weight_files = _independent_weight_files()
    assert added and all(k.startswith("oc_") for k in added)
    assert len(added) < len(weight_files)  # some weights already have hand-written keys
    assert catalog.remove_block(once) == original
    sweep.add(group="open_clip_all", params=path, remove=True)
    assert path.read_text(encoding="utf-8") == original
