"""The weights lock (weights.lock.yaml, kisbench/models/lock.py): a hub model's first run
locks the commit main points to, later runs load exactly that commit even after main
moves, `kisbench weights update` moves it on purpose, a params pin that disagrees is an
error, and local models are never locked. Offline: a fabricated hub cache holds two
commits, A and B, of one tiny ALIGN repository (different weights)."""

from __future__ import annotations

import http.server
import json
import threading
from collections.abc import Iterator
from pathlib import Path

import huggingface_hub.constants as hf_constants
import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from kisbench.errors import ModelError
from kisbench.models import load_model, lock, model_entry, weights
from kisbench.models.spec import ModelSpec
from kisbench.models.testing.builders import make_tiny_align
from kisbench.tools.main import app
from tests.models_support import fake_hub_repo

REPO_ID = "kisbench/tiny-align"
COMMIT_A = "a" * 40
COMMIT_B = "b" * 40
KEY = "hub_align"
TEXTS = ["a dog on the grass", "school of fish"]


@pytest.fixture(scope="module")
def snapshots(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The two commits' contents: the same tiny ALIGN with other random weights."""
    root = tmp_path_factory.mktemp("tiny_align_commits")
    return {
        COMMIT_A: make_tiny_align(root / "a", seed=1),
        COMMIT_B: make_tiny_align(root / "b", seed=2),
    }


@pytest.fixture(scope="module")
def reference(snapshots: dict[str, Path]) -> dict[str, np.ndarray]:
    """Each commit's text embeddings, loaded from its folder (no hub, no lock)."""
    return {
        commit: load_model("ref", {"family": "align", "source": str(folder)}).encode_texts(TEXTS)
        for commit, folder in snapshots.items()
    }


@pytest.fixture
def hub_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, snapshots: dict[str, Path]) -> Path:
    """A Hugging Face cache with commits A and B of REPO_ID, refs/main -> B, used offline."""
    cache = tmp_path / "hub"
    monkeypatch.setattr(hf_constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(hf_constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    for commit in (COMMIT_A, COMMIT_B):  # the last one laid out is main
        fake_hub_repo(cache, REPO_ID, {p.name: p for p in snapshots[commit].iterdir()}, commit)
    return cache


def move_main(cache: Path, commit: str) -> None:
    """What a later download does when the hub's main has moved."""
    (cache / f"models--{REPO_ID.replace('/', '--')}" / "refs" / "main").write_text(commit)


@pytest.fixture
def params(tmp_path: Path) -> dict:
    return {"models": {KEY: {"family": "align", "source": REPO_ID}}}


def write_params(tmp_path: Path, params: dict) -> Path:
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params))
    return path


def loaded(params: dict, lock_file: Path) -> tuple[str, np.ndarray]:
    """Load the model as a stage does; its provenance's commit and its text embeddings."""
    model = load_model(KEY, model_entry(params, KEY, lock_file), device="cpu")
    return model.provenance()["weights"]["revision"], model.encode_texts(TEXTS)


def test_first_run_locks_main_and_writes_the_file(hub_cache: Path, params: dict, tmp_path: Path):
    lock_file = tmp_path / "weights.lock.yaml"
    assert lock.ensure(params["models"], [KEY], lock_file) == {KEY: COMMIT_B}
    text = lock_file.read_text()
    assert text.startswith(lock.HEADER) and "kisbench weights update" in text
    assert yaml.safe_load(text) == {KEY: {"repo": REPO_ID, "revision": COMMIT_B}}
    before = lock_file.stat().st_mtime_ns
    assert lock.ensure(params["models"], [KEY], lock_file) == {KEY: COMMIT_B}
    assert lock_file.stat().st_mtime_ns == before  # nothing added, nothing written


def test_later_runs_load_the_locked_commit_after_main_moves(
    hub_cache: Path, params: dict, tmp_path: Path, reference: dict[str, np.ndarray]
):
    lock_file = tmp_path / "weights.lock.yaml"
    lock.ensure(params["models"], [KEY], lock_file)
    move_main(hub_cache, COMMIT_A)
    assert lock.ensure(params["models"], [KEY], lock_file) == {KEY: COMMIT_B}
    revision, texts = loaded(params, lock_file)
    assert revision == COMMIT_B
    np.testing.assert_allclose(texts, reference[COMMIT_B], atol=1e-6)
    assert not np.allclose(texts, reference[COMMIT_A], atol=1e-3)
    # without the lock the same entry would now load main, i.e. A
    unlocked = load_model(KEY, params["models"][KEY], device="cpu")
    assert unlocked.provenance()["weights"]["revision"] == COMMIT_A


def test_update_command_moves_the_lock_on_purpose(
    hub_cache: Path, params: dict, tmp_path: Path, reference: dict[str, np.ndarray]
):
    lock_file = tmp_path / "weights.lock.yaml"
    params_file = write_params(tmp_path, params)
    lock.ensure(params["models"], [KEY], lock_file)
    move_main(hub_cache, COMMIT_A)
    files = ["--params", str(params_file), "--lock", str(lock_file)]
    shown = CliRunner().invoke(app, ["weights", "show", *files])
    assert shown.exit_code == 0, shown.output
    assert f"{COMMIT_B}  main  {COMMIT_A} (moved)" in shown.output
    result = CliRunner().invoke(app, ["weights", "update", *files])
    assert result.exit_code == 0, result.output
    assert f"{KEY}: {COMMIT_B} -> {COMMIT_A}" in result.output
    assert lock.read(lock_file) == {KEY: {"repo": REPO_ID, "revision": COMMIT_A}}
    assert lock.ensure(params["models"], [KEY], lock_file) == {KEY: COMMIT_A}  # the cache key
    revision, texts = loaded(params, lock_file)
    assert revision == COMMIT_A
    np.testing.assert_allclose(texts, reference[COMMIT_A], atol=1e-6)


def test_params_revision_that_disagrees_with_the_lock_is_an_error(
    hub_cache: Path, params: dict, tmp_path: Path
):
    lock_file = tmp_path / "weights.lock.yaml"
    lock.ensure(params["models"], [KEY], lock_file)  # locks B
    params["models"][KEY]["revision"] = COMMIT_A
    expected = rf"model '{KEY}': params.yaml pins revision {COMMIT_A} .*kisbench weights update"
    with pytest.raises(ModelError, match=expected):
        model_entry(params, KEY, lock_file)
    with pytest.raises(ModelError, match=expected):
        lock.ensure(params["models"], [KEY], lock_file)
    assert lock.update(params["models"], [KEY], lock_file) == {KEY: (COMMIT_B, COMMIT_A)}
    assert model_entry(params, KEY, lock_file)["revision"] == COMMIT_A


def test_a_changed_repo_is_an_error_until_updated(hub_cache: Path, params: dict, tmp_path: Path):
    lock_file = tmp_path / "weights.lock.yaml"
    lock.ensure(params["models"], [KEY], lock_file)
    params["models"][KEY]["source"] = "kisbench/other-align"
    with pytest.raises(ModelError, match=r"names hub repository kisbench/other-align"):
        model_entry(params, KEY, lock_file)


def test_a_revision_pinned_in_params_is_what_gets_locked(
    hub_cache: Path, params: dict, tmp_path: Path
):
    lock_file = tmp_path / "weights.lock.yaml"
    params["models"][KEY]["revision"] = COMMIT_A  # main is B
    assert lock.ensure(params["models"], [KEY], lock_file) == {KEY: COMMIT_A}
    assert model_entry(params, KEY, lock_file) == params["models"][KEY]
    assert loaded(params, lock_file)[0] == COMMIT_A


def test_local_models_and_lavis_are_never_locked(tmp_path: Path, snapshots: dict[str, Path]):
    models = {
        "folder": {"family": "align", "source": str(snapshots[COMMIT_A])},
        "clip_dir": {"family": "open_clip", "model": "local-dir:data/models/tiny_clip"},
        "lavis": {"family": "blip2_lavis", "model_type": "pretrain_vitL", "mode": "thesis"},
    }
    lock_file = tmp_path / "weights.lock.yaml"
    assert lock.ensure(models, list(models), lock_file) == dict.fromkeys(models)
    assert lock.update(models, list(models), lock_file) == {}
    assert lock.read(lock_file) == {}
    for key, entry in models.items():
        assert lock.hub_repo(ModelSpec.from_params(key, entry)) is None
        assert model_entry({"models": models}, key, lock_file) == entry


def test_nothing_is_locked_when_neither_hub_nor_cache_knows(
    hub_cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    models = {"gone": {"family": "align", "source": "kisbench/not-cached"}}
    lock_file = tmp_path / "weights.lock.yaml"
    assert lock.ensure(models, ["gone"], lock_file) == {"gone": None}
    assert not lock_file.exists()
    monkeypatch.chdir(tmp_path)
    write_params(tmp_path, {"models": models})
    result = CliRunner().invoke(app, ["weights", "update"])
    assert result.exit_code == 1
    assert "gone: cannot resolve" in result.output
    assert lock.read(lock_file) == {}


def test_an_unreachable_hub_resolves_from_the_cache(
    hub_cache: Path, params: dict, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setattr(hf_constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # refused at once
    spec = ModelSpec.from_params(KEY, params["models"][KEY])
    assert lock.resolve(spec) == COMMIT_B
    assert lock.resolve(spec, COMMIT_A) == COMMIT_A


class FakeHub(http.server.BaseHTTPRequestHandler):
    """The hub's model-info API for REPO_ID: main is commit C; other revisions do not exist."""

    def do_GET(self) -> None:  # http.server's name for the GET handler
        if self.path.split("?")[0] == f"/api/models/{REPO_ID}/revision/main":
            body, status, headers = {"id": REPO_ID, "sha": "c" * 40}, 200, {}
        else:
            body, status = {"error": "Invalid rev id"}, 404
            headers = {"X-Error-Code": "RevisionNotFound"}
        data = json.dumps(body).encode()
        self.send_response(status)
        for name, value in {"Content-Type": "application/json", **headers}.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def fake_hub(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    server = http.server.HTTPServer(("127.0.0.1", 0), FakeHub)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setattr(hf_constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{server.server_port}")
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()


def test_an_answering_hub_is_asked_not_the_cache(
    hub_cache: Path, params: dict, tmp_path: Path, fake_hub: str
):
    lock_file = tmp_path / "weights.lock.yaml"
    assert lock.ensure(params["models"], [KEY], lock_file) == {KEY: "c" * 40}
    spec = ModelSpec.from_params(KEY, params["models"][KEY])
    with pytest.raises(ModelError, match=r"has no revision 'v9'"):
        lock.resolve(spec, "v9")


@pytest.mark.parametrize(
    ("key", "repo"),
    [
        ("clip_b32", "timm/vit_base_patch32_clip_224.openai"),
        ("siglip_so400m", "timm/ViT-SO400M-14-SigLIP-384"),
        ("align", "kakaobrain/align-base"),
        ("blip2_itm_g", "Salesforce/blip2-itm-vit-g"),
        ("laion_h14", "laion/CLIP-ViT-H-14-laion2B-s32B-b79K"),
        ("blip2_vitl", None),
        ("tiny_align", None),
        ("tiny_clip", None),
    ],
)
def test_hub_repo_of_the_experiments_models(key: str, repo: str | None):
    entry = yaml.safe_load(Path("params.yaml").read_text())["models"][key]
    assert lock.hub_repo(ModelSpec.from_params(key, entry)) == repo


def test_every_open_clip_all_model_is_locked_at_open_clips_own_repository():
    """Tags outside weights.OPEN_CLIP_TAGS (most of open_clip_all) are looked up in open_clip's
    table, so a sweep's embeddings are pinned to a commit like the presets'."""
    import open_clip

    from kisbench.tools import catalog

    pairs = catalog.open_clip_all()
    outside = 0
    for pair in pairs:
        entry = catalog.entry(pair)
        hf_hub = open_clip.get_pretrained_cfg(entry["model"], entry["pretrained"])["hf_hub"]
        assert lock.hub_repo(ModelSpec.from_params(pair.key, entry)) == hf_hub.split("/")[0] + (
            "/" + hf_hub.split("/")[1]
        ), pair.key
        outside += (entry["model"], entry["pretrained"]) not in weights.OPEN_CLIP_TAGS
    assert outside > 100  # the fallback, not the table, answered for most of them
    unknown = {"family": "open_clip", "model": "ViT-B-32", "pretrained": "no_such_tag"}
    assert lock.hub_repo(ModelSpec.from_params("x", unknown)) is None


def test_entries_are_written_in_key_order_and_read_back(tmp_path: Path):
    lock_file = tmp_path / "weights.lock.yaml"
    entries = {
        "zeta": {"repo": "org/z", "revision": "1" * 40},
        "alpha": {"repo": "org/a", "revision": "0" * 40, "ref": "v2"},
    }
    lock.write(lock_file, entries)
    assert lock.read(lock_file) == entries
    body = lock_file.read_text().removeprefix(lock.HEADER)
    assert body.index("alpha:") < body.index("zeta:")


@pytest.mark.parametrize(
    "text",
    ["m: {repo: org/x, revision: main}\n", "m: [1, 2]\n", "- a\n", "m: {repo: org/x\n"],
)
def test_a_broken_lock_file_is_a_clear_error(tmp_path: Path, text: str):
    lock_file = tmp_path / "weights.lock.yaml"
    lock_file.write_text(text)
    with pytest.raises(ModelError, match=str(lock_file)):
        lock.read(lock_file)


def test_the_committed_lock_file_is_valid():
    text = Path("weights.lock.yaml").read_text()
    assert text.startswith(lock.HEADER)
    lock.read(Path("weights.lock.yaml"))
