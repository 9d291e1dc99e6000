"""The embed and rank stages as processes: kill -9 and resume, torchrun, skipped targets."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from kisbench import layout
from kisbench.data import store
from kisbench.evaluation.layout import RANKS_INFO, ranks_dir
from tests import imagefiles as gen
from tests import tinymodel

REPO = Path(__file__).resolve().parents[1]


def workspace(root: Path, n_images: int, **embed: object) -> Path:
    """A minimal project folder: params.yaml, one collection ``c``, the tiny model."""
    ws = root / "ws"
    gen.write_photos(ws / layout.images_dir("c"), n_images)
    tinymodel.build(ws / layout.TINY_MODELS)
    params = {
        "run": {"models": ["tiny_clip"], "collections": ["c"]},
        "models": {
            "tiny_clip": {"family": "open_clip", "model": "local-dir:data/models/tiny_clip"}
        },
        "collections": {"c": {}},
        "embed": {"device": "cpu", "batch_size": 4, "chunk_size": 8, "workers": 1, **embed},
    }
    (ws / "params.yaml").write_text(yaml.safe_dump(params), encoding="utf-8")
    return ws


def env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1"}


def embed(ws: Path, *extra: str, launcher: list[str] | None = None) -> dict:
    cmd = [*(launcher or [sys.executable]), "-m", "stages.embed_images"]
    cmd += ["--model", "tiny_clip", "--collection", "c", *extra]
    proc = subprocess.run(cmd, cwd=ws, env=env(), capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = Path(extra[extra.index("--out") + 1]) if "--out" in extra else None
    folder = ws / (out or layout.features_dir("tiny_clip", "c"))
    return json.loads((folder / store.META).read_text(encoding="utf-8"))


def finished_chunks(partial: Path) -> int:
    return len(list(partial.glob("*/chunk-*.json"))) if partial.is_dir() else 0


@pytest.mark.slow
def test_kill_9_then_resume_gives_the_uninterrupted_result(tmp_path):
    ws = workspace(tmp_path, 160)  # 20 chunks of 8
    partial = ws / layout.partial_dir("tiny_clip", "c")
    out = ws / layout.features_dir("tiny_clip", "c")
    cmd = [sys.executable, "-m", "stages.embed_images", "--model", "tiny_clip", "--collection", "c"]
    proc = subprocess.Popen(cmd, cwd=ws, env=env(), stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    while finished_chunks(partial) < 3:
        assert proc.poll() is None, "the stage ended before it could be killed"
        assert time.monotonic() < deadline
        time.sleep(0.01)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    done = finished_chunks(partial)
    assert 3 <= done < 20
    assert not out.exists()  # no output folder that looks complete

    meta = embed(ws)
    assert meta["resumed_images"] == 8 * done  # only the chunk in flight was lost
    assert not partial.exists()
    reference = embed(ws, "--out", "ref", "--partial", "ref.partial")
    assert reference["resumed_images"] == 0
    a, b = store.load(out), store.load(ws / "ref")
    assert a.ids == b.ids and len(a.ids) == 160
    assert a.vectors.tobytes() == b.vectors.tobytes()


@pytest.mark.slow
def test_torchrun_two_processes_equal_one(tmp_path):
    ws = workspace(tmp_path, 44, workers=0)  # 6 chunks: 3 per process, the last one short
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
    shared = embed(ws, "--out", "two", launcher=[*torchrun, "--nproc-per-node", "2"])
    single = embed(ws, "--out", "one", "--partial", "one.partial")
    assert shared["processes"] == 2 and single["processes"] == 1
    a, b = store.load(ws / "two"), store.load(ws / "one")
    assert a.ids == b.ids and len(a.ids) == 44
    assert a.vectors.tobytes() == b.vectors.tobytes()


def test_rank_stage_counts_skipped_targets_as_never_found(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    params = {
        "run": {"models": ["m"], "collections": ["c"]},
        "models": {},
        "collections": {"c": {}},
    }
    params["rank"] = {"device": "cpu", "top_k": 2}
    Path("params.yaml").write_text(yaml.safe_dump(params), encoding="utf-8")
    eye = np.eye(4, dtype=np.float32)
    features = layout.features_dir("m", "c")
    store.save(features, ["00001", "00002", "00004", "00005"], eye, {"kind": "images"})
    store.write_skipped(
        features / store.SKIPPED, [("00003", "x/00003.png", "empty file (0 bytes)")]
    )
    labels = layout.labels_path("c")
    labels.parent.mkdir()
    labels.write_text("ID,short_label\n00001,a\n00003,b\n00004,c\n", encoding="utf-8")
    queries = np.stack([eye[0], eye[1], eye[2]])  # the third query's best image is its target
    store.save(layout.queries_dir("m", "c") / "short", ["00001", "00003", "00004"], queries, {})

    from stages.rank import app

    result = CliRunner().invoke(app, ["--model", "m", "--collection", "c"])
    assert result.exit_code == 0, result.output
    ranks = pd.read_csv(ranks_dir("m", "c") / "short.csv", dtype={"query_id": str})
    assert dict(zip(ranks["query_id"], ranks["rank"], strict=True)) == {
        "00001": 1,
        "00003": 5,  # 4 images embedded: never found is 4 + 1
        "00004": 1,
    }
    info = json.loads((ranks_dir("m", "c") / RANKS_INFO).read_text())
    assert info["skipped_targets"] == {"00003": "empty file (0 bytes)"}


def test_rank_stage_still_refuses_unknown_ids(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    params = {
        "run": {"models": ["m"], "collections": ["c"]},
        "models": {},
        "collections": {"c": {}},
    }
    Path("params.yaml").write_text(yaml.safe_dump(params), encoding="utf-8")
    store.save(layout.features_dir("m", "c"), ["00088"], np.ones((1, 2), np.float32), {})
    layout.labels_path("c").parent.mkdir()
    layout.labels_path("c").write_text("ID,short_label\n88,a\n", encoding="utf-8")
    from stages.rank import app

    result = CliRunner().invoke(app, ["--model", "m", "--collection", "c"])
    assert result.exit_code == 1
    assert "did you mean '00088'" in result.output


def test_embed_queries_of_a_partial_labelset(tmp_path):
    """An empty label is no query: each labelset holds only its own targets, in file order,
    each vector its own text's (the one long label is the text of a short one, so the two
    vectors must be equal)."""
    ws = workspace(tmp_path, 4)
    ids = sorted(p.stem for p in (ws / layout.images_dir("c")).iterdir())
    labels = ws / layout.labels_path("c")
    labels.parent.mkdir()
    labels.write_text(
        "ID,short_label,long_label\n"
        f"{ids[0]},a red square,\n{ids[1]},a blue circle,a blue circle\n{ids[2]},,only long\n",
        encoding="utf-8",
    )
    cmd = [
        sys.executable,
        "-m",
        "stages.embed_queries",
        "--model",
        "tiny_clip",
        "--collection",
        "c",
    ]
    proc = subprocess.run(cmd, cwd=ws, env=env(), capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    short = store.load(ws / layout.queries_dir("tiny_clip", "c") / "short")
    long = store.load(ws / layout.queries_dir("tiny_clip", "c") / "long")
    assert short.ids == [ids[0], ids[1]] and long.ids == [ids[1], ids[2]]
    assert short.meta["count"] == 2 and long.meta["count"] == 2
    np.testing.assert_allclose(long.vectors[0], short.vectors[1], atol=1e-6)
    assert not np.allclose(long.vectors[1], short.vectors[1], atol=1e-3)
