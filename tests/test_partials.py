"""Orphan partial chunks: removed once their output is complete, kept while a killed run
waits to be resumed; through DVC, also when it restores the output from its run cache."""

from __future__ import annotations

import json

import numpy as np
import pytest

from kisbench import layout
from kisbench.data import store
from kisbench.embedding.partials import orphans, remove_orphans
from kisbench.tools.smoke import dvc


def chunks(root, model, collection, key="k1", count=3):
    """What a killed run leaves: finished chunks under its key."""
    work = root / layout.partial_dir(model, collection) / key
    work.mkdir(parents=True)
    for i in range(count):
        np.save(work / f"chunk-{i:05d}.npy", np.zeros((2, 4), np.float32))
        (work / f"chunk-{i:05d}.json").write_text(json.dumps({"start": 2 * i}))
    return work.parent


def output(root, model, collection):
    store.save(root / layout.features_dir(model, collection), ["a", "b"], np.eye(2), {})


def test_a_partial_is_an_orphan_once_its_output_is_complete(tmp_path):
    waiting = chunks(tmp_path, "m1", "c")  # killed; DVC deleted its output before the run
    restored = chunks(tmp_path, "m2", "c")  # killed, then its output restored
    output(tmp_path, "m2", "c")
    other = chunks(tmp_path, "m3", "c")  # not a pair of this experiment
    output(tmp_path, "m3", "c")
    pairs = [("m1", "c"), ("m2", "c")]
    assert orphans(pairs, tmp_path) == [restored]
    assert remove_orphans(pairs, tmp_path) == [restored]
    assert not restored.exists() and waiting.is_dir() and other.is_dir()
    assert remove_orphans(pairs, tmp_path) == []  # nothing left to do


def test_a_half_written_output_does_not_make_an_orphan(tmp_path):
    part = chunks(tmp_path, "m", "c")
    folder = tmp_path / layout.features_dir("m", "c")
    folder.mkdir(parents=True)
    (folder / store.IDS).write_text("a\n")  # no embeddings.npy, no meta.json
    assert remove_orphans([("m", "c")], tmp_path) == [] and part.is_dir()


def test_the_shared_folder_goes_when_empty(tmp_path):
    chunks(tmp_path, "m", "c")
    output(tmp_path, "m", "c")
    remove_orphans([("m", "c")], tmp_path)
    assert not (tmp_path / layout.partial_dir("m", "c")).parent.exists()


@pytest.mark.slow
def test_dvc_restore_from_the_run_cache_leaves_no_orphan(smoke_copy):
    """The state a killed embed-images run leaves (its output deleted by DVC, its chunks in
    data/partial), then `dvc repro`: DVC restores the output from its run cache without running
    the stage, and the tidy stage removes the chunks."""
    ws = smoke_copy("partials")
    model = "tiny_clip"
    out = ws / layout.features_dir(model, "demo")
    before = (out / store.EMBEDDINGS).read_bytes()
    for name in list(out.iterdir()):
        name.unlink()
    out.rmdir()
    part = chunks(ws, model, "demo", key="killed")
    proc = dvc(ws, "repro")
    assert f"Stage 'embed-images@{model}-demo' is cached - skipping run" in proc.stdout
    assert not part.exists(), "the run-cache restore left the killed run's chunks"
    assert "Running stage 'tidy'" in proc.stdout
    assert (out / store.EMBEDDINGS).read_bytes() == before
    assert json.loads(dvc(ws, "status", "--json").stdout or "{}") == {}
