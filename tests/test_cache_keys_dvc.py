"""What DVC itself says after an edit, on a copy of the smoke run (one tiny model of every
family): an edit of one family's adapter changes only that family's embed stages; the tiny
model builders, the report, the labelling tool and the later stages' params schemas and
paths change none; a speed-only parameter changes no stage but the check (which reads the
whole params file and whose gate stays the same)."""

from __future__ import annotations

import json
import re

import pytest
import yaml

from kisbench.tools.smoke import dvc

pytestmark = pytest.mark.slow

EMBED = re.compile(r"^embed-(images|queries)@(.+)-demo$")


@pytest.fixture(scope="module")
def workspace(smoke_copy):
    ws = smoke_copy("cache_keys")
    assert dvc(ws, "status", "--json").stdout.strip() in ("{}", ""), "the copy must be clean"
    return ws


def changed_after(ws, edits: dict[str, str]) -> set[str]:
    """Append to files, let the cheap code-keys stage run, and return the stages DVC then
    calls changed; the files are restored afterwards (and the keys with them)."""
    before = {rel: (ws / rel).read_text(encoding="utf-8") for rel in edits}
    try:
        for rel, extra in edits.items():
            (ws / rel).write_text(before[rel] + extra, encoding="utf-8")
        dvc(ws, "repro", "--single-item", "code-keys")
        status = json.loads(dvc(ws, "status", "--json").stdout or "{}")
        return set(status)
    finally:
        for rel, text in before.items():
            (ws / rel).write_text(text, encoding="utf-8")
        dvc(ws, "repro", "--single-item", "code-keys")


def embed_models(stages: set[str]) -> set[str]:
    return {m.group(2) for s in stages if (m := EMBED.match(s))}


def families(ws) -> dict[str, str]:
    params = yaml.safe_load((ws / "params.yaml").read_text())
    return {m: params["models"][m]["family"] for m in params["run"]["models"]}


@pytest.mark.parametrize(
    ("adapter", "family_names"),
    [
        ("kisbench/models/openclip.py", {"open_clip"}),
        ("kisbench/models/blip2_hf.py", {"blip2_hf"}),
        ("kisbench/models/hfmodels.py", {"align", "blip2_hf"}),  # shared by both
        ("kisbench/models/lavis_worker.py", {"blip2_lavis"}),
    ],
)
def test_an_adapter_edit_changes_only_its_familys_embed_stages(workspace, adapter, family_names):
    expected = {m for m, f in families(workspace).items() if f in family_names}
    assert expected, "the smoke run must have a model of this family"
    stages = changed_after(workspace, {adapter: "\n# an edit\n"})
    assert embed_models(stages) == expected
    # budgets: the query-length study's queries; sentences: the labels' sentences
    kinds = ("images", "queries", "budgets", "sentences")
    both = {f"embed-{kind}@{m}-demo" for m in expected for kind in kinds}
    assert stages == both, f"only the embed stages of {sorted(expected)} may change: {stages}"


def test_test_builders_report_and_labeltool_change_no_embed_stage(workspace):
    stages = changed_after(
        workspace,
        {
            "kisbench/models/testing/builders.py": "\n# an edit\n",
            "kisbench/report/figures.py": "\n# an edit\n",
            "kisbench/labeltool/server.py": "\n# an edit\n",
        },
    )
    assert not embed_models(stages), stages
    assert stages == {"render"}  # the report's code is render's own dependency


def test_later_stages_params_schema_and_paths_change_no_embed_stage(workspace):
    """A key added to rank/evaluate/fusion/render, or a path of a stage after embedding, is
    an edit of a file that no embed stage and no family key imports."""
    stages = changed_after(
        workspace,
        {
            "kisbench/config/evaluation.py": "\n# an edit\n",
            "kisbench/config/reset.py": "\n# an edit\n",
            "kisbench/evaluation/layout.py": "\n# an edit\n",
            "kisbench/report/layout.py": "\n# an edit\n",
        },
    )
    assert not embed_models(stages), stages
    assert {"evaluate", "fusion", "render"} <= stages, stages


def test_shared_embedding_code_changes_every_embed_stage(workspace):
    stages = changed_after(workspace, {"kisbench/models/base.py": "\n# an edit\n"})
    assert embed_models(stages) == set(families(workspace))


def test_a_speed_only_parameter_reruns_nothing(workspace):
    params = workspace / "params.yaml"
    before = params.read_text(encoding="utf-8")
    data = yaml.safe_load(before)
    try:
        data["embed"]["workers"] = 3
        data["render"]["workers"] = 1
        data["fusion"]["memory_mb"] = 64
        params.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
        # Only the check, which reads the whole file (any key may be misspelt), re-runs:
        # seconds, and its gate is unchanged, so nothing after it does.
        status = set(json.loads(dvc(workspace, "status", "--json").stdout or "{}"))
        assert status <= {"check@demo"}, status
        proc = dvc(workspace, "repro")
        ran = set(re.findall(r"Running stage '([^']+)'", proc.stdout))
        assert ran <= {"check@demo"}, proc.stdout
        # ...while a key that can change the result does change the embed stages:
        data["embed"]["batch_size"] = 7
        params.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
        status = set(json.loads(dvc(workspace, "status", "--json").stdout or "{}"))
        assert embed_models(status) == set(families(workspace))
    finally:
        params.write_text(before, encoding="utf-8")
