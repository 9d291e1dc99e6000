"""params.yaml read into typed sections: misspelt keys, wrong types, defaults, the real files,
and which keys are cache keys."""

from __future__ import annotations

import dataclasses
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from kisbench import config
from kisbench.config import cache_keys, collection_entry, load_params, parse
from kisbench.config.embed import PRECISIONS as EMBED_PRECISIONS
from kisbench.config.embed import Embed
from kisbench.config.evaluation import FUSION_METHODS, METRICS
from kisbench.errors import InputError, ModelError
from kisbench.tools.smoke import deep_merge

REPO = Path(__file__).resolve().parents[1]

MINIMAL = {
    "run": {"models": ["m"], "collections": ["c"]},
    "models": {"m": {"family": "open_clip", "model": "x"}},
    "collections": {"c": {"xmax": 20}},
}


def write(tmp_path: Path, params: dict[str, Any], name: str = "BAD.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(params), encoding="utf-8")
    return path


def problems(tmp_path: Path, **sections: Any) -> str:
    """The error message of MINIMAL with ``sections`` merged in, loaded from BAD.yaml."""
    with pytest.raises(InputError) as err:
        load_params(write(tmp_path, deep_merge(MINIMAL, sections)))
    return str(err.value)


def test_misspelt_key_names_the_file_the_key_and_the_closest_key(tmp_path):
    message = problems(tmp_path, embed={"on_unreadble": "skip"})
    expected = "unknown key 'embed.on_unreadble' (did you mean 'on_unreadable'?)"
    assert message == f"{tmp_path / 'BAD.yaml'}: {expected}"


def test_misspelt_key_in_a_collection_entry(tmp_path):
    message = problems(tmp_path, collections={"c": {"x_max": 20}})
    assert "unknown key 'collections.c.x_max' (did you mean 'xmax'?)" in message


def test_misspelt_section(tmp_path):
    message = problems(tmp_path, embedd={"batch_size": 8})
    assert message.startswith(str(tmp_path / "BAD.yaml"))
    assert "unknown section 'embedd' (did you mean 'embed'?)" in message


def test_a_key_without_a_close_match_lists_the_valid_ones(tmp_path):
    message = problems(tmp_path, rank={"zzz": 1})
    assert "unknown key 'rank.zzz' (valid: device, top_k)" in message


@pytest.mark.parametrize(
    ("sections", "expected"),
    [
        ({"embed": {"batch_size": "many"}}, "embed.batch_size: expected an integer, got 'many'"),
        ({"rank": {"top_k": True}}, "rank.top_k: expected an integer, got true (a boolean)"),
        ({"embed": {"device": ["cpu"]}}, "embed.device: expected a string, got ['cpu'] (a list)"),
        ({"evaluate": {"seed": None}}, "evaluate.seed: expected an integer, got null"),
        ({"embed": {"draft": "yes"}}, "embed.draft: expected true or false, got 'yes'"),
        ({"fusion": {"rrf_k": "60"}}, "fusion.rrf_k: expected a number, got '60'"),
        ({"run": {"models": "m"}}, "run.models: expected a list of strings, got 'm'"),
        ({"render": {"example_ids": [42]}}, "render.example_ids: expected a list of strings"),
        ({"collections": {"c": {"xmax": 2.5}}}, "collections.c.xmax: expected an integer or null"),
        ({"embed": []}, "embed: expected a mapping of keys, got [] (a list)"),
    ],
)
def test_a_value_of_the_wrong_type_names_key_type_and_value(tmp_path, sections, expected):
    message = problems(tmp_path, **sections)
    assert message.startswith(f"{tmp_path / 'BAD.yaml'}: ")
    assert expected in message


@pytest.mark.parametrize(
    ("sections", "expected"),
    [
        (
            {"embed": {"precision": "fp33"}},
            "embed.precision: expected one of auto, fp32, fp16, bf16, got 'fp33' "
            "(did you mean 'fp32'?)",
        ),
        ({"embed": {"decode": "gpu"}}, "embed.decode: expected one of auto, device, pil"),
        ({"reset": {"ties": "right"}}, "reset.ties: expected one of left, exclude, half"),
        ({"evaluate": {"headline": "MRR"}}, "evaluate.headline: expected one of r@1"),
        ({"fusion": {"methods": ["rrf", "zcore"]}}, "got 'zcore' (did you mean 'zscore'?)"),
        ({"embed": {"batch_size": 0}}, "embed.batch_size: expected at least 1, got 0"),
        ({"embed": {"workers": -1}}, "embed.workers: expected at least 0, got -1"),
    ],
)
def test_values_outside_their_choices_or_range(tmp_path, sections, expected):
    assert expected in problems(tmp_path, **sections)


def test_every_problem_is_reported_at_once(tmp_path):
    message = problems(
        tmp_path,
        embedd={},
        embed={"batch_size": True, "on_unreadble": "skip"},
        rank={"top_k": "ten"},
        models={"n": {"model": "x"}},
    )
    lines = message.splitlines()
    assert len(lines) == 5, message
    assert all(line.startswith(f"{tmp_path / 'BAD.yaml'}: ") for line in lines)
    for part in ("'embedd'", "'embed.on_unreadble'", "embed.batch_size", "rank.top_k"):
        assert part in message
    assert "missing key 'models.n.family'" in message


def test_accepted_values_are_converted_and_typed(tmp_path):
    cfg = load_params(
        write(
            tmp_path,
            deep_merge(
                MINIMAL,
                {
                    "fusion": {"rrf_k": 10},  # an int where a number is expected
                    "embed": {"workers": None, "precision": "bf16"},
                    "collections": {"d": None, "e": {"xmax": None}},
                },
            ),
        )
    )
    assert cfg.fusion.rrf_k == 10.0 and isinstance(cfg.fusion.rrf_k, float)
    assert cfg.embed.workers is None and cfg.embed.precision == "bf16"
    assert cfg.collections["d"] == config.Collection(xmax=500)
    assert cfg.collections["e"].xmax is None
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.embed.batch_size = 1  # type: ignore[misc]


def test_defaults_apply_where_a_section_or_key_is_missing(tmp_path):
    cfg = load_params(write(tmp_path, MINIMAL))
    assert cfg.embed == Embed()
    assert (cfg.embed.batch_size, cfg.embed.chunk_size, cfg.embed.on_unreadable) == (
        64,
        4096,
        "fail",
    )
    assert (cfg.rank.device, cfg.rank.top_k) == ("auto", 10)
    assert (cfg.evaluate.headline, cfg.evaluate.bootstrap, cfg.evaluate.top_models) == (
        "mrr",
        10000,
        5,
    )
    assert cfg.fusion.methods == ["rrf", "zscore", "minmax"] and cfg.fusion.memory_mb == 512
    assert (cfg.render.examples, cfg.render.workers) == (3, None)
    assert (cfg.reset.ties, cfg.reset.min_judgements, cfg.reset.models) == ("left", 2, [])
    assert cfg.run.reset == []
    # An empty section (`embed:` alone) is the defaults too.
    assert load_params(write(tmp_path, {**MINIMAL, "embed": None})).embed == Embed()


@pytest.mark.parametrize("section", ["run", "models", "collections"])
def test_run_models_and_collections_are_required(tmp_path, section):
    params = {k: v for k, v in MINIMAL.items() if k != section}
    with pytest.raises(InputError, match=f"BAD.yaml: missing section '{section}'"):
        load_params(write(tmp_path, params))


def test_run_needs_models_and_collections(tmp_path):
    with pytest.raises(InputError) as err:
        load_params(write(tmp_path, {**MINIMAL, "run": {"reset": []}}))
    assert "missing key 'run.models'" in str(err.value)
    assert "missing key 'run.collections'" in str(err.value)


def test_model_entries_are_checked_only_for_their_family(tmp_path):
    # A family's own argument names are the registry's to check, not this layer's.
    odd = {**MINIMAL, "models": {"m": {"family": "nope", "modle": "x"}}}
    assert load_params(write(tmp_path, odd)).models["m"] == {"family": "nope", "modle": "x"}
    message = problems(tmp_path, models={"n": None, "o": {"family": 3}, "Bad-Key": {}})
    assert "models.n: expected a mapping with a 'family', got null" in message
    assert "models.o.family: expected a string, got 3" in message
    assert "models.Bad-Key: a key uses only a-z, 0-9 and _" in message


def test_a_duplicate_key_is_an_error_not_a_silent_override(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text(
        "run: {models: [m], collections: [c]}\nmodels: {}\ncollections: {c: }\n"
        "embed: {batch_size: 8}\nembed: {device: cpu}\n",
        encoding="utf-8",
    )
    with pytest.raises(InputError, match="not valid YAML.*duplicate key 'embed'"):
        load_params(path)


def test_a_collection_without_an_entry_takes_the_defaults(tmp_path):
    cfg = load_params(write(tmp_path, MINIMAL, "params.yaml"))
    assert collection_entry(cfg, "c") == config.Collection(xmax=20)
    # docs/collections.md: no entry means every key's default, xmax 500
    assert collection_entry(cfg, "zz") == config.Collection(xmax=500)
    with pytest.raises(InputError, match="'Z-z': a name uses only .*params.yaml defines: c"):
        collection_entry(cfg, "Z-z")


def test_model_entry_takes_a_loaded_file(tmp_path):
    from kisbench.models import model_entry

    cfg = load_params(write(tmp_path, MINIMAL, "params.yaml"))
    assert model_entry(cfg, "m", lock=tmp_path / "no.lock.yaml") == MINIMAL["models"]["m"]
    with pytest.raises(ModelError, match="unknown model key 'x'"):
        model_entry(cfg, "x", lock=tmp_path / "no.lock.yaml")


def read_yaml(path: Path) -> dict[str, Any]:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def test_the_real_params_files_load():
    real = load_params(REPO / "params.yaml")
    assert set(real.run.models) <= set(real.models)
    assert set(real.run.collections) <= set(real.collections)
    assert set(real.reset.models) <= set(real.models)
    smoke = read_yaml(REPO / "params.smoke.yaml")
    merged = deep_merge(read_yaml(REPO / "params.yaml"), smoke)
    assert parse(merged).run.models == smoke["run"]["models"]
    every = deep_merge(merged, read_yaml(REPO / "tests" / "every_family.yaml"))
    cfg = parse(every)
    assert cfg.embed.device == "cpu" and set(cfg.run.models) <= set(cfg.models)
    # The override files alone hold only known keys of the right types.
    for path in (REPO / "params.smoke.yaml", REPO / "tests" / "every_family.yaml"):
        parse(deep_merge(MINIMAL, read_yaml(path)), source=str(path))


def test_the_section_modules_are_loaded_by_name():
    """Every stage imports kisbench.config: it imports only the rules and the sections every
    stage reads, and finds the others (kisbench/config/__init__.py says why)."""
    from kisbench import imports

    direct = set(imports.direct_imports("kisbench.config", REPO))
    assert direct <= {
        "kisbench",
        "kisbench.errors",
        "kisbench.config.core",
        "kisbench.config.schema",
    }
    owners = {s: config.schema_module(s) for s in config.ALL_SECTIONS}
    assert owners["embed"] == "kisbench.config.embed"
    assert owners["rank"] == owners["render"] == "kisbench.config.evaluation"
    assert owners["reset"] == "kisbench.config.reset"
    assert {owners[s] for s in config.REQUIRED} == {"kisbench.config.core"}
    # A loaded file holds every section, those of the modules found by name too.
    cfg = parse(MINIMAL)
    assert all(getattr(cfg, s) is not None for s in config.ALL_SECTIONS)


def test_every_key_says_whether_it_is_a_cache_key():
    for name, cls in config.SECTIONS.items():
        for f in [*dataclasses.fields(cls), *dataclasses.fields(config.Collection)]:
            assert isinstance(f.metadata["cache_key"], bool), (name, f.name)
            assert len(f.metadata["why"]) > 10, (name, f.name)
    assert cache_keys("models") == ["models"] and cache_keys("collections") == ["collections"]
    with pytest.raises(ValueError, match="embedd"):
        cache_keys("embedd")


def test_speed_and_memory_keys_are_not_cache_keys_and_numeric_ones_are():
    speed = {"embed.workers", "embed.chunk_size", "fusion.memory_mb", "render.workers"}
    keys = {k for s in config.ALL_SECTIONS for k in cache_keys(s)}
    assert not speed & keys
    for key in ("embed.batch_size", "embed.device", "embed.precision", "embed.decode"):
        assert key in keys
    assert "rank.device" in keys and "fusion.device" in keys
    assert cache_keys("rank") == ["rank.device", "rank.top_k"]


def comment_labels(text: str) -> dict[str, str]:
    """``section.key`` -> "result" or "same" from params.yaml's comments: the key's own
    line, else the comment lines right above it."""
    labels, section, above = {}, None, []
    for line in text.splitlines():
        top = re.match(r"([a-z_]+):", line)
        key = re.match(r"  ([a-z_]+):", line)
        comment = line.split("#", 1)[1] if "#" in line else ""
        if top:
            section, above = top.group(1), []
        elif key and section in config.SECTIONS:
            said = comment or " ".join(above)
            if "same result:" in said:
                labels[f"{section}.{key.group(1)}"] = "same"
            elif "result:" in said:
                labels[f"{section}.{key.group(1)}"] = "result"
            above = []
        elif line.strip().startswith("#"):
            above.append(comment)
        else:
            above = []
    return labels


def test_params_yaml_comments_agree_with_the_cache_keys():
    labels = comment_labels((REPO / "params.yaml").read_text(encoding="utf-8"))
    for section, cls in config.SECTIONS.items():
        keys = cache_keys(section)
        for f in dataclasses.fields(cls):
            dotted = f"{section}.{f.name}"
            assert dotted in labels, f"params.yaml: {dotted} has no result/same result comment"
            assert (labels[dotted] == "result") == (dotted in keys), dotted


def test_choice_lists_agree_with_the_code_that_uses_them():
    from kisbench.data.images import DEFAULT_MAX_PIXELS
    from kisbench.devices import PRECISIONS
    from kisbench.evaluation import fusion
    from kisbench.evaluation.metrics import metric_names

    assert METRICS == tuple(metric_names())
    assert FUSION_METHODS == fusion.METHODS
    assert EMBED_PRECISIONS == ("auto", *PRECISIONS)
    assert Embed().max_pixels == DEFAULT_MAX_PIXELS


def test_library_options_are_built_from_the_sections():
    from kisbench.embedding.extract import EmbedOptions
    from kisbench.reset.data import ResetSettings

    assert EmbedOptions.from_params(Embed()) == EmbedOptions().checked()
    with pytest.raises(InputError, match="unknown key 'embed.batch'"):
        EmbedOptions.from_params({"batch": 8})
    cfg = parse(deep_merge(MINIMAL, {"reset": {"models": ["m"], "ties": "half"}}))
    settings = ResetSettings.from_params(cfg)
    assert (settings.models, settings.ties, settings.triplets) == (
        ["m"],
        "half",
        Path("data/reset/triplets.csv"),
    )
    with pytest.raises(InputError, match="reset.models: unknown model"):
        ResetSettings.from_params(parse(deep_merge(MINIMAL, {"reset": {"models": ["z"]}})))


def test_render_settings_come_from_the_sections():
    from kisbench.report.render import Settings

    params = deep_merge(MINIMAL, {"run": {"collections": ["c", "d"]}, "render": {"workers": 2}})
    params["collections"]["d"] = {"xmax": None}
    s = Settings.from_params(parse(params))
    assert s.xmax == {"c": 20}  # d: no cut
    assert (s.headline, s.n_boot, s.top_n, s.workers) == ("mrr", 10000, 5, 2)


def test_a_stage_with_a_misspelt_key_exits_1_with_the_message(tmp_path):
    params = deep_merge(MINIMAL, {"rank": {"top_kk": 5, "device": "cpu"}})
    write(tmp_path, params)
    env = {**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "stages.rank", "--model", "m", "--collection", "c"]
        + ["--params", "BAD.yaml"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 1, proc.stderr
    assert "error: BAD.yaml: unknown key 'rank.top_kk' (did you mean 'top_k'?)" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_chunk_size_leaves_the_embeddings_alone(tmp_path):
    """chunk_size is no cache key: chunks are whole batches, so the batches, hence the
    numbers, are the same for any chunk size (unreadable images included)."""
    from kisbench.data import store
    from kisbench.data.collections import list_images
    from kisbench.embedding.extract import embed_images
    from tests import imagefiles as gen
    from tests import tinymodel

    model = tinymodel.load(tinymodel.build(tmp_path / "models"))
    gen.write_photos(tmp_path / "images", 10)
    gen.write(tmp_path / "images", gen.bad_files())
    ids, paths = list_images(tmp_path / "images")
    vectors = []
    for chunk in (4, 12):
        out = tmp_path / f"chunk{chunk}"
        kw = {"batch_size": 4, "chunk_size": chunk, "workers": 0, "on_unreadable": "skip"}
        embed_images(model, ids, paths, out, progress=False, **kw)
        vectors.append(store.load(out).vectors.tobytes())
    assert vectors[0] == vectors[1]
