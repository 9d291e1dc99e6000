"""dvc.yaml against the code: every stage's code deps are exactly its import closure, the
family adapters are in their own models' keys only, and imports point downward.

The closure is computed by kisbench.imports; these tests also check that computation on a
hand-made package, so that a bug there cannot hide a missing dependency.
"""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest
import yaml

from kisbench import config, imports
from kisbench.models.codekey import family_files
from kisbench.models.registry import FAMILIES

REPO = Path(__file__).resolve().parents[1]
CODE_KEY = "data/code/${item.model}.json"


def stages() -> dict[str, dict]:
    """dvc.yaml's stage definitions, a foreach stage's body standing for its stages."""
    raw = yaml.safe_load((REPO / "dvc.yaml").read_text(encoding="utf-8"))["stages"]
    return {name: body.get("do", body) for name, body in raw.items()}


def script(stage: dict) -> str:
    match = re.search(r"python -m (stages\.\w+)", stage["cmd"])
    assert match, f"cannot find the stage script in {stage['cmd']!r}"
    return match.group(1)


def code_deps(stage: dict) -> list[str]:
    return [d for d in stage["deps"] if d.split("/")[0] in ("kisbench", "stages")]


def files_under(dep: str) -> set[Path]:
    path = REPO / dep
    if path.is_dir():
        return {p.relative_to(REPO) for p in path.rglob("*.py") if "__pycache__" not in p.parts}
    return {Path(dep)}


def covered(stage: dict) -> set[Path]:
    out: set[Path] = set()
    for dep in code_deps(stage):
        out |= files_under(dep)
    return out


@pytest.mark.parametrize("name", sorted(stages()))
def test_code_deps_cover_the_import_closure(name):
    stage = stages()[name]
    need = imports.closure([script(stage)], REPO)
    missing = sorted(str(p) for p in need - covered(stage))
    assert not missing, (
        f"stage {name!r} imports these project files, which are not in its deps "
        f"(an edit would leave its outputs stale): {missing}"
    )


@pytest.mark.parametrize("name", sorted(stages()))
def test_code_deps_are_no_broader_than_the_closure(name):
    stage = stages()[name]
    need = imports.closure([script(stage)], REPO)
    for dep in code_deps(stage):
        if name == "code-keys" and dep == "kisbench":
            continue  # it hashes source files it does not import (next test)
        assert (REPO / dep).is_file(), f"stage {name!r}: code dep {dep!r} is not one file"
        assert Path(dep) in need, (
            f"stage {name!r} depends on {dep}, which it does not import: an edit there would "
            "re-run it for nothing"
        )


def test_code_keys_stage_covers_every_family_file():
    stage = stages()["code-keys"]
    for family in FAMILIES.values():
        missing = set(family_files(family, REPO)) - covered(stage)
        assert not missing, f"code-keys does not see {family.name}'s files {sorted(missing)}"


@pytest.mark.parametrize(
    "name", ["embed-images", "embed-queries", "embed-budgets", "embed-sentences", "embed-reset"]
)
def test_embed_stages_take_the_adapter_from_their_model_key_only(name):
    stage = stages()[name]
    assert CODE_KEY in stage["deps"], f"{name} must depend on its model's key {CODE_KEY}"
    adapters = {Path(imports.module_file(f.adapter, REPO)) for f in FAMILIES.values()}
    assert not adapters & covered(stage), f"{name} depends on a family adapter directly"
    assert not any(p.parts[:3] == ("kisbench", "models", "testing") for p in covered(stage))


def test_a_family_key_holds_its_adapter_and_not_the_others():
    for family in FAMILIES.values():
        files = set(family_files(family, REPO))
        assert imports.module_file(family.adapter, REPO) in files
        for other in FAMILIES.values():
            if other.adapter != family.adapter and other.adapter not in family.runs:
                assert imports.module_file(other.adapter, REPO) not in files, (
                    f"{family.name}'s key includes {other.name}'s adapter"
                )
        assert not any(p.parts[:3] == ("kisbench", "models", "testing") for p in files), (
            f"{family.name} imports the tiny test models: they would be part of real models' keys"
        )
    lavis = set(family_files(FAMILIES["blip2_lavis"], REPO))
    assert Path("kisbench/models/lavis_worker.py") in lavis  # run as a process, not imported


# What embeddings are computed from: the embed stages' scripts and every family adapter (its
# models' code keys). A change for a later stage (a render key, an evaluation path) must touch
# none of it, or every model would be re-embedded on the GPU for nothing.
EMBEDDING_SIDE = ("stages.embed_images", "stages.embed_queries")
EMBEDDING_STAGES = (
    "code-keys",
    "embed-images",
    "embed-queries",
    "embed-budgets",
    "embed-sentences",
    "embed-reset",
)
EMBEDDING_SECTIONS = ("run", "models", "collections", "embed")
ABOVE_EMBEDDING = ("evaluation", "reset", "report", "labeltool", "tools")


def schema_file(section: str) -> Path:
    """The file that declares the keys and defaults of a params section."""
    return Path(inspect.getsourcefile(config.SECTIONS[section])).relative_to(REPO)


def embedding_closures() -> dict[str, set[Path]]:
    out = {module: imports.closure([module], REPO) for module in EMBEDDING_SIDE}
    for family in FAMILIES.values():
        out[f"family {family.name}"] = set(family_files(family, REPO))
    return out


@pytest.mark.parametrize("name", sorted(embedding_closures()))
def test_embeddings_depend_on_no_code_of_later_stages(name):
    files = embedding_closures()[name]
    others = {schema_file(s) for s in config.SECTIONS if s not in EMBEDDING_SECTIONS}
    shared = sorted(str(p) for p in files & others)
    assert not shared, (
        f"{name} imports the params schema of other stages' sections {shared}: a key added "
        "there would re-embed every model"
    )
    later = sorted(
        str(p)
        for p in files
        if p.parts[:2] in {("kisbench", layer) for layer in ABOVE_EMBEDDING}
        or p.parts[:3] == ("kisbench", "models", "testing")
    )
    assert not later, f"{name} imports code of the layers above embedding: {later}"
    if name.startswith("stages."):
        assert schema_file("embed") in files, (
            f"{name} must import the embed section's schema: its defaults decide the result"
        )


def outputs(name: str) -> set[Path]:
    """A stage's outs, metrics and plots, with a placeholder for each matrix value."""
    stage = stages()[name]
    out: set[Path] = set()
    for kind in ("outs", "metrics", "plots"):
        for item in stage.get(kind, []):
            for path in [item] if isinstance(item, str) else item:
                path = path.replace("${item.model}", "M").replace("${item.collection}", "C")
                out.add(Path(path.replace("${item}", "C")))
    return out


def test_the_root_layout_holds_no_path_of_a_later_stage():
    """kisbench/layout.py is in every embed stage's closure: the paths of the stages after
    embedding live with the layers that write them."""
    from kisbench import layout

    def overlap(path: Path, paths: set[Path]) -> bool:
        return any(path == p or path in p.parents or p in path.parents for p in paths)

    ours = {p for name in EMBEDDING_STAGES for p in outputs(name)}
    later = {p for name in stages() if name not in EMBEDDING_STAGES for p in outputs(name)}
    for name, value in vars(layout).items():
        if inspect.isfunction(value) and value.__module__ == layout.__name__:
            required = [
                p for p in inspect.signature(value).parameters.values() if p.default is p.empty
            ]
            value = value(*["M", "C"][-len(required) :])
        if isinstance(value, Path) and overlap(value, later):
            assert overlap(value, ours), (
                f"kisbench.layout.{name} ({value}) is a path of a stage after embedding"
            )


def test_the_reset_figure_is_among_the_report_figures():
    from kisbench.report.layout import FIGURES
    from kisbench.reset.layout import RESET_FIGURE

    assert RESET_FIGURE.parent == FIGURES


# The dataclass sections of params that each stage's script reads: their defaults decide its
# result, so the module that declares each (kisbench.config.schema_module) must be in the
# stage's closure. kisbench.config loads the section modules it does not need by name.
SECTIONS_READ = {
    "code-keys": ["run", "reset"],
    "check": ["run", "collections", "embed", "reset"],
    "embed-images": ["run", "embed"],
    "embed-queries": ["run", "embed"],
    "embed-budgets": ["run", "embed", "length"],
    "embed-reset": ["run", "embed"],
    "tidy": ["run", "reset"],
    "rank": ["rank"],
    "evaluate": ["run", "evaluate"],
    "fusion": ["run", "fusion", "evaluate"],
    "simulate": ["run", "simulate", "evaluate"],
    "length": ["run", "rank", "evaluate", "length"],
    "embed-sentences": ["run", "embed"],
    "rank-sentences": ["rank", "sentences", "temporal"],
    "sentences": ["run", "evaluate", "sentences", "temporal"],
    "render": ["run", "evaluate", "render", "collections"],
    "reset-distances": ["reset", "collections"],
    "reset": ["reset"],
}


def test_every_stage_is_listed_with_the_sections_it_reads():
    assert set(SECTIONS_READ) == set(stages())


@pytest.mark.parametrize("name", sorted(SECTIONS_READ))
def test_a_stage_imports_the_schema_of_every_section_it_reads(name):
    need = imports.closure([script(stages()[name])], REPO)
    for section in SECTIONS_READ[name]:
        schema = imports.module_file(config.schema_module(section), REPO)
        assert schema in need, (
            f"stage {name!r} reads params {section!r} but does not import {schema}: a change "
            f"of its defaults would leave the stage's outputs stale"
        )


# The layers, lowest first: a module may import its own layer and the ones below.
LAYERS = ["", "data", "models", "embedding", "evaluation", "reset", "report", "labeltool", "tools"]
# Packages of the root layer, like its modules (kisbench/*.py).
ROOT_PACKAGES = {"config"}


def layer(module: str) -> int:
    parts = module.split(".")
    if (
        len(parts) == 1
        or parts[1] in ROOT_PACKAGES
        or (REPO / "kisbench" / f"{parts[1]}.py").is_file()
    ):
        return 0  # kisbench itself and its root modules
    return LAYERS.index(parts[1])


def package_modules() -> list[str]:
    out = []
    for path in sorted((REPO / "kisbench").rglob("*.py")):
        rel = path.relative_to(REPO).with_suffix("")
        parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
        out.append(".".join(parts))
    return out


def test_every_subpackage_has_a_layer():
    subpackages = {m.split(".")[1] for m in package_modules() if m.count(".") >= 1}
    roots = {p.stem for p in (REPO / "kisbench").glob("*.py")} | ROOT_PACKAGES
    assert subpackages - roots <= set(LAYERS), subpackages - roots - set(LAYERS)


@pytest.mark.parametrize("module", package_modules())
def test_imports_point_downward(module):
    for imported in imports.direct_imports(module, REPO):
        if not imported.startswith("kisbench."):
            assert not imported.startswith(("stages", "benchmarks")), (
                f"the package must not import {imported}: it is not installed"
            )
            continue
        assert layer(imported) <= layer(module), (
            f"{module} (layer {LAYERS[layer(module)] or 'root'}) imports {imported} "
            f"(layer {LAYERS[layer(imported)]}): imports must point downward"
        )
        if imported.startswith("kisbench.models.testing"):
            assert module.startswith(("kisbench.models.testing", "kisbench.tools")), (
                f"{module} imports the tiny test models"
            )


def test_closure_of_a_hand_made_package(tmp_path):
    """The closure finder against a package written here, with the answer worked out by
    hand: lazy imports count, TYPE_CHECKING imports and importlib strings do not, parents'
    __init__ files count, relative imports resolve."""
    pkg = tmp_path / "kisbench"
    (pkg / "sub").mkdir(parents=True)
    files = {
        "kisbench/__init__.py": "",
        "kisbench/a.py": (
            "from typing import TYPE_CHECKING\nimport importlib\nfrom kisbench import b\n"
            "if TYPE_CHECKING:\n    from kisbench import typing_only\n"
            "def f():\n    from kisbench.sub import lazy\n"
            "    importlib.import_module('kisbench.by_name')\n"
        ),
        "kisbench/b.py": "from .sub.deep import x\n",
        "kisbench/typing_only.py": "",
        "kisbench/by_name.py": "",
        "kisbench/unused.py": "",
        "kisbench/sub/__init__.py": "",
        "kisbench/sub/lazy.py": "import numpy\n",
        "kisbench/sub/deep.py": "from ..unused2 import y\nx = 1\n",
        "kisbench/unused2.py": "y = 2\n",
    }
    for rel, text in files.items():
        (tmp_path / rel).write_text(text)
    got = {str(p) for p in imports.closure(["kisbench.a"], tmp_path)}
    assert got == {
        "kisbench/__init__.py",
        "kisbench/a.py",
        "kisbench/b.py",
        "kisbench/sub/__init__.py",
        "kisbench/sub/lazy.py",
        "kisbench/sub/deep.py",
        "kisbench/unused2.py",
    }


# The sections each stage reads whole (all their output-affecting keys must be its params);
# embed-queries reads only the text side of `embed`.
READS = {
    "embed-images": ["embed"],
    "embed-reset": ["embed"],
    "rank": ["rank"],
    "evaluate": ["evaluate"],
    "fusion": ["fusion"],
    "embed-budgets": ["length"],
    "length": ["length"],
    "rank-sentences": ["rank", "sentences", "temporal"],
    "render": ["evaluate", "render", "collections"],
    "reset": ["reset"],
}
QUERY_SIDE = {"embed.device", "embed.precision", "embed.batch_size"}


def declared_params(stage: dict) -> set[str]:
    out: set[str] = set()
    for item in stage.get("params", []):
        assert isinstance(item, str), f"params from other files are not expected: {item!r}"
        out.add(re.sub(r"\.\$\{item\.model\}$", "", item))
    return out


def expand(keys: set[str]) -> set[str]:
    """A whole section (``reset``) stands for each of its cache keys."""
    out: set[str] = set()
    for key in keys:
        section = key.split(".")[0]
        whole = "." not in key and config.cache_keys(section) != [section]
        out |= set(config.cache_keys(section)) if whole else {key}
    return out


@pytest.mark.parametrize("name", sorted(stages()))
def test_params_are_cache_keys_only(name):
    every = {k for s in config.ALL_SECTIONS for k in config.cache_keys(s)}
    for key in expand(declared_params(stages()[name])):
        assert key in every, (
            f"stage {name!r} depends on {key!r}, which is no key that can change a result "
            "(kisbench/config/ says why): a change there would re-run it for nothing"
        )


@pytest.mark.parametrize("name", sorted(READS))
def test_params_cover_every_cache_key_a_stage_reads(name):
    declared = expand(declared_params(stages()[name]))
    for section in READS[name]:
        missing = set(config.cache_keys(section)) - declared
        assert not missing, f"stage {name!r} reads {sorted(missing)} but does not depend on them"
    if name.startswith("embed"):
        assert "models" in declared  # its own entry, models.${item.model}


def test_query_embedding_depends_on_its_side_of_embed():
    declared = expand(declared_params(stages()["embed-queries"]))
    assert declared & set(config.cache_keys("embed")) == QUERY_SIDE
    assert QUERY_SIDE <= set(config.cache_keys("embed"))
