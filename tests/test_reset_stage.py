"""The reset-distances and reset stage CLIs end to end, on a generated RESET-format data
set and generated keyframe embeddings (written with kisbench.data.store.save), in a scratch
working directory laid out like the repository."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from kisbench import layout
from kisbench.data import store
from kisbench.evaluation.layout import METRICS
from kisbench.reset.layout import RESET_EXTENDED, RESET_FIGURE, RESET_TABLE, reset_distances_dir
from stages import reset as reset_stage
from stages import reset_distances
from tests.reset_fixture import PAPER, assert_nan_exactly_where_missing, make_reset
from tests.reset_reference import thesis_reference

REPO = Path(__file__).resolve().parents[1]
MODELS = {"clip_b32": 1, "siglip_so400m": 3}  # keys of params.yaml; the second multi-vector
COLLECTION = "reset_fixture"


@pytest.fixture
def workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    fx = make_reset(tmp_path / "data" / "reset", seed=5, models=MODELS)
    params = yaml.safe_load((REPO / "params.yaml").read_text(encoding="utf-8"))
    params["collections"][COLLECTION] = None
    params["reset"] |= {
        "participants": "data/reset/participants.csv",
        "judgements": "data/reset/triplet_judgements.csv",
        "triplets": "data/reset/triplets.csv",
        "models": list(MODELS),
        "bootstrap": 100,
    }
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params), encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    for model, (ids, vectors) in fx.embeddings.items():
        store.save(layout.features_dir(model, COLLECTION), ids, vectors, {"model": model})
    return fx


def run(app, *args: str):  # noqa: ANN001, ANN201 - a typer app, a click Result
    return CliRunner().invoke(app, list(args))


def run_all() -> None:
    for model in MODELS:
        r = run(reset_distances.app, "--model", model, "--collection", COLLECTION)
        assert r.exit_code == 0, r.output
    r = run(reset_stage.app, "--collection", COLLECTION)
    assert r.exit_code == 0, r.output


def test_stage_outputs(workspace) -> None:  # noqa: ANN001 - the fixture above
    fx = workspace
    run_all()
    head = json.loads((METRICS / "reset.json").read_text())
    details = json.loads((METRICS / "reset_details.json").read_text())
    ref = thesis_reference(fx, list(MODELS), "left")
    assert set(head["consistency_v1"]) == {*PAPER, *MODELS}
    assert head["missing_keyframes"] == len(fx.missing)
    for x, value in head["consistency_v1"].items():
        assert value == pytest.approx(np.mean(ref[x]["v1"]), abs=1e-6), x
        v2 = details["extractors"][x]["variant2"]["value"]
        assert v2 == pytest.approx(np.mean(ref[x]["v2"]), abs=1e-6), x
    assert details["missing_keyframes"]["names"] == fx.missing
    assert details["missing_keyframes"]["by_model"]["clip_b32"] == fx.missing
    assert details["counts"]["used"] == ref["_used"]
    assert details["counts"]["missing_keyframe"] > 0
    assert details["settings"]["ties"] == "left"

    table = pd.read_csv(RESET_TABLE)
    assert len(table) == len(PAPER) + len(MODELS)
    assert table["consistency_v1"].is_monotonic_decreasing
    assert set(table.loc[table["source"] == "project", "extractor"]) == set(MODELS)
    assert {"v1_general", "v2_scuba", "pearson_raw", "spearman_c1c2_norm"} <= set(table.columns)

    assert RESET_FIGURE.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    ext = pd.read_csv(RESET_EXTENDED, dtype={"triplet_id": str})
    original = pd.read_csv(fx.triplets, dtype={"triplet_id": str})
    assert list(ext.columns[: len(original.columns)]) == list(original.columns)
    pd.testing.assert_frame_equal(ext[original.columns], original)
    for model in MODELS:
        cols = [f"{model}_cosdist_{s}" for s in ("query_candidate1", "query_candidate2")]
        assert set(cols) <= set(ext.columns)
    for model in MODELS:
        assert_nan_exactly_where_missing(ext, model, fx.missing)
    assert not (ext.filter(like="_cosdist_") == 1.11).any().any()


def test_missing_reset_file_is_a_clear_error(workspace) -> None:  # noqa: ANN001
    Path("data/reset/participants.csv").unlink()
    r = run(reset_stage.app, "--collection", COLLECTION)
    assert r.exit_code == 1
    assert "RESET is not public" in r.output
    assert not RESET_TABLE.exists()


def test_missing_distances_is_a_clear_error(workspace) -> None:  # noqa: ANN001
    run_all()
    shutil.rmtree(reset_distances_dir("siglip_so400m", COLLECTION))
    r = run(reset_stage.app, "--collection", COLLECTION)
    assert r.exit_code == 1
    assert "run its reset-distances" in r.output


def test_missing_embeddings_is_a_clear_error(workspace) -> None:  # noqa: ANN001
    shutil.rmtree(layout.features_dir("clip_b32", COLLECTION))
    r = run(reset_distances.app, "--model", "clip_b32", "--collection", COLLECTION)
    assert r.exit_code == 1
    assert "not a complete embedding set" in r.output


def test_reset_from_its_files_alone(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """reset.models: []: RESET's extractors scored from triplets.csv alone, with no
    distances folder, keyframe or embedding, as the thesis' reference scores them."""
    fx = make_reset(tmp_path / "data" / "reset", seed=7, models={})
    params = yaml.safe_load((REPO / "params.yaml").read_text(encoding="utf-8"))
    params["run"]["reset"] = [COLLECTION]
    params["reset"] |= {"models": [], "bootstrap": 50}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params), encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    r = run(reset_stage.app, "--collection", COLLECTION)
    assert r.exit_code == 0, r.output
    head = json.loads((METRICS / "reset.json").read_text())
    assert set(head["consistency_v1"]) == set(PAPER)
    ref = thesis_reference(fx, [], "left")
    for x, value in head["consistency_v1"].items():
        assert value == pytest.approx(np.mean(ref[x]["v1"]), abs=1e-6), x
    assert not Path("data/features").exists() and not Path("data/reset_distances").exists()
