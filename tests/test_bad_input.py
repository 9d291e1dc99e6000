"""Bad input gives a clear message naming the file (and line), a non-zero exit, and no output."""

from __future__ import annotations

import importlib
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from kisbench.data import store
from kisbench.data.collections import check_targets, list_images, read_labels
from kisbench.errors import InputError, ModelError
from kisbench.models import model_entry


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_labels_read_with_line_numbers(tmp_path):
    labels = read_labels(write(tmp_path / "l.csv", "ID,short_label,long_label\n001,a b,c d e\n"))
    assert labels.ids == ["001"] and labels.texts == {"short": ["a b"], "long": ["c d e"]}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "ID,short_label,long_label\n1,a,b\n1,c,d\n",
            r"line 3: duplicate ID '1' \(first on line 2\)",
        ),
        ("ID,short_label,long_label\n1,a,b\n2, ,\n", r"line 3: no label for ID '2'"),
        ("ID,short_label,long_label\n1,a,b\n,c,d\n", r"line 3: empty ID"),
        ("ID,short_label,long_label\n", "no labels"),
        ("", "is empty"),
        ("id,text\n1,a\n", "no ID column"),
        ("ID,text\n1,a\n", r"no \*_label column"),
        ("ID,short_label,long_label\n1,a\n", "line 2: 2 fields, expected 3"),
    ],
)
def test_bad_labels_files(tmp_path, text, message):
    path = write(tmp_path / "bad.csv", text)
    with pytest.raises(InputError, match=message) as err:
        read_labels(path)
    assert str(path) in str(err.value)


def test_label_id_not_in_collection(tmp_path):
    labels = read_labels(write(tmp_path / "l.csv", "ID,short_label,long_label\n7,a,b\n8,c,d\n"))
    with pytest.raises(InputError, match=r"(?s)1 labelled ID\(s\) are not images.*line 3: '8'"):
        check_targets(labels, ["7", "9"])


def test_missing_and_empty_collections(tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        list_images(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("x")
    with pytest.raises(InputError, match="holds no images"):
        list_images(tmp_path / "empty")


def test_image_ids_are_relative_paths_without_extension(tmp_path):
    (tmp_path / "06925").mkdir()
    for name in ["06925/shot_1.jpg", "00002.PNG", ".hidden.jpg"]:
        Image.new("RGB", (4, 4)).save(tmp_path / name)
    ids, paths = list_images(tmp_path)
    assert ids == ["00002", "06925/shot_1"]
    assert [p.name for p in paths] == ["00002.PNG", "shot_1.jpg"]


def test_two_files_with_one_id(tmp_path):
    Image.new("RGB", (4, 4)).save(tmp_path / "a.jpg")
    Image.new("RGB", (4, 4)).save(tmp_path / "a.png")
    with pytest.raises(InputError, match="share the id 'a'"):
        list_images(tmp_path)


def test_unknown_model_key():
    with pytest.raises(ModelError, match="unknown model key 'nope'.*tiny_clip"):
        model_entry({"models": {"tiny_clip": {}}}, "nope")


@pytest.fixture
def project(tmp_path, repo_root) -> Path:
    """A minimal project folder: params, a 3-image collection, labels, features and queries."""
    shutil.copy(repo_root / "params.yaml", tmp_path / "params.yaml")
    images = tmp_path / "data" / "collections" / "demo" / "images"
    images.mkdir(parents=True)
    for i in range(3):
        Image.new("RGB", (8, 8), (i * 80, 0, 0)).save(images / f"0000{i}.jpg")
    ids = ["00000", "00001", "00002"]
    rng = np.random.default_rng(0)
    vecs = rng.normal(size=(3, 4)).astype(np.float32)
    store.save(tmp_path / "data" / "features" / "tiny_clip" / "demo", ids, vecs, {"count": 3})
    for labelset in ("short", "long"):
        store.save(
            tmp_path / "data" / "queries" / "tiny_clip" / "demo" / labelset,
            ["00000", "00099"],
            vecs[:2],
            {"truncated": 0},
        )
    (tmp_path / "labels").mkdir()
    write(
        tmp_path / "labels" / "demo.csv",
        "ID,short_label,long_label\n00000,red,a red square\n00099,green,a green square\n",
    )
    return tmp_path


def run_stage(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    repo = Path(__file__).resolve().parents[1]
    env = {"PYTHONPATH": str(repo), "HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin"}
    return subprocess.run(
        [sys.executable, "-m", *args], cwd=cwd, env=env, text=True, capture_output=True, timeout=120
    )


def test_rank_stage_refuses_a_label_outside_the_collection(project):
    proc = run_stage(project, "stages.rank", "--model", "tiny_clip", "--collection", "demo")
    assert proc.returncode == 1
    assert "labels/demo.csv" in proc.stderr and "'00099'" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (project / "data" / "ranks").exists()


def test_embed_stage_unknown_model_and_missing_collection(project):
    proc = run_stage(project, "stages.embed_images", "--model", "nope", "--collection", "demo")
    assert proc.returncode == 1 and "unknown model key 'nope'" in proc.stderr
    proc = run_stage(project, "stages.embed_images", "--model", "tiny_clip", "--collection", "zz")
    assert proc.returncode == 1 and "data/collections/zz/images does not exist" in proc.stderr
    shutil.rmtree(project / "data" / "collections" / "demo" / "images")
    proc = run_stage(project, "stages.embed_images", "--model", "tiny_clip", "--collection", "demo")
    assert proc.returncode == 1 and "data/collections/demo/images does not exist" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_every_stage_has_help(repo_root):
    runner = CliRunner()
    stages = sorted((repo_root / "stages").glob("[a-z]*.py"))
    assert len(stages) >= 5
    for stage in stages:
        app = importlib.import_module(f"stages.{stage.stem}").app
        result = runner.invoke(app, ["--help"])
        assert result.exit_code == 0, (stage, result.output)
        assert "Usage" in result.output
