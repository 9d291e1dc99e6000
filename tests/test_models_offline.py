"""Without network and without cached weights, every model of the experiment fails at
once (no ~95 s of hub retries) with a message naming the model, the weights it needs and
how to provide them. Run in subprocesses: the hub client reads its cache location and
offline flag when imported."""

from __future__ import annotations

import http.server
import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import yaml

from kisbench.errors import ModelError
from kisbench.models import hub, load_model
from tests.models_support import fake_hub_repo

pytest_plugins = ["tests.models_fixtures"]  # the tiny_root fixture

REAL_MODELS = yaml.safe_load(Path("params.yaml").read_text())["run"]["models"]
# Each model's stage must end well inside this; it only guards against a hang (the
# measured times are in benchmarks/offline_failure.py).
HANG_GUARD_S = 120

PROBE = """
import json, sys, time, yaml
from kisbench.models import load_model
from kisbench.errors import ModelError
params = yaml.safe_load(open("params.yaml"))
out = {}
for key in sys.argv[1:]:
    try:
        load_model(key, params["models"][key], device="cpu")
        out[key] = "loaded"
    except ModelError as err:
        out[key] = str(err)
print(json.dumps(out))
"""


def empty_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "TORCH_HOME"))}
    env.update(HF_HOME=str(tmp_path / "hf"), TORCH_HOME=str(tmp_path / "torch"), **extra)
    return env


def probe(env: dict[str, str], keys: list[str]) -> dict[str, str]:
    proc = subprocess.run(
        [sys.executable, "-c", PROBE, *keys],
        capture_output=True,
        text=True,
        env=env,
        timeout=HANG_GUARD_S,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


NEEDS = {  # what each message must name, from the model cards / LAVIS' code
    "clip_b32": "timm/vit_base_patch32_clip_224.openai",
    "blip2_vitl": "blip2_pretrained_vitL.pth",
    "align": "kakaobrain/align-base",
    "siglip_so400m": "timm/ViT-SO400M-14-SigLIP-384",
    "siglip_l16": "timm/ViT-L-16-SigLIP-384",
    "siglip_b16": "timm/ViT-B-16-SigLIP-512",
    "dfn5b_h14": "apple/DFN5B-CLIP-ViT-H-14-378",
    "laion_g14": "laion/CLIP-ViT-g-14-laion2B-s34B-b88K",
    "laion_h14": "laion/CLIP-ViT-H-14-laion2B-s32B-b79K",
    "blip2_itm_g": "Salesforce/blip2-itm-vit-g",
}


def check_messages(messages: dict[str, str], why: str) -> None:
    assert set(messages) == set(REAL_MODELS)
    for key, msg in messages.items():
        assert msg.startswith(f"model {key!r}: its weights are not cached"), msg
        assert why in msg, msg
        assert NEEDS[key] in msg, msg
        assert "HF_HOME" in msg and f"dvc pull data/features/{key}" in msg, msg


def test_every_model_fails_fast_with_hf_hub_offline(tmp_path: Path) -> None:
    env = empty_env(tmp_path, HF_HUB_OFFLINE="1")
    check_messages(probe(env, REAL_MODELS), "HF_HUB_OFFLINE is set")


def test_every_model_fails_fast_with_an_unreachable_hub(tmp_path: Path) -> None:
    env = empty_env(tmp_path, HF_ENDPOINT="http://127.0.0.1:9")
    check_messages(probe(env, REAL_MODELS), "does not answer")


def test_lavis_message_names_every_file_it_needs(tmp_path: Path) -> None:
    msg = probe(empty_env(tmp_path, HF_HUB_OFFLINE="1"), ["blip2_vitl"])["blip2_vitl"]
    for need in ("bert-base-uncased", "clip_vit_L.pth", "blip2_pretrained_vitL.pth"):
        assert need in msg


def test_stage_exits_1_with_the_message_and_writes_nothing(tmp_path: Path) -> None:
    out = tmp_path / "queries"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "stages.embed_queries",
            "--model",
            "siglip_b16",
            "--collection",
            "demo",
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        env=empty_env(tmp_path, HF_HUB_OFFLINE="1"),
        timeout=HANG_GUARD_S,
    )
    assert proc.returncode == 1
    assert proc.stderr.startswith("error: model 'siglip_b16': its weights are not cached")
    assert "Traceback" not in proc.stderr
    assert not out.exists()


def test_cached_weights_load_when_the_hub_does_not_answer(tmp_path: Path, tiny_root: Path) -> None:
    """Everything cached, hub unreachable, no HF_HUB_OFFLINE: load from the cache without
    asking the hub (which would retry for minutes)."""
    env = empty_env(tmp_path, HF_ENDPOINT="http://127.0.0.1:9")
    cache = Path(env["HF_HOME"]) / "hub"
    folder = tiny_root / "tiny_clip"
    fake_hub_repo(cache, "kisbench-test/tiny-clip", {p.name: p for p in folder.iterdir()}, "c" * 40)
    params = tmp_path / "params.yaml"
    p = yaml.safe_load(Path("params.yaml").read_text())
    p["models"]["cached"] = {"family": "open_clip", "model": "hf-hub:kisbench-test/tiny-clip"}
    params.write_text(yaml.safe_dump(p))
    script = PROBE.replace('open("params.yaml")', f"open({str(params)!r})")
    proc = subprocess.run(
        [sys.executable, "-c", script, "cached"],
        capture_output=True,
        text=True,
        env=env,
        timeout=HANG_GUARD_S,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert json.loads(proc.stdout.strip().splitlines()[-1]) == {"cached": "loaded"}


def test_reachable_tells_a_refused_port_from_an_answering_server() -> None:
    server = http.server.HTTPServer(("127.0.0.1", 0), http.server.BaseHTTPRequestHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:  # any HTTP answer (here 501, no HEAD handler) means the network is there
        assert hub.reachable(f"http://127.0.0.1:{server.server_port}/")
    finally:
        server.shutdown()
        server.server_close()
    assert not hub.reachable("http://127.0.0.1:9")
    assert not hub.reachable("not a url")


@pytest.mark.parametrize(
    ("path", "commit"),
    [
        ("/c/hub/models--a--b/snapshots/0123abcd/open_clip_config.json", "0123abcd"),
        ("/c/hub/models--a--b/snapshots/0123abcd/sub/file.bin", "0123abcd"),
        ("/some/local/folder/file.bin", None),
    ],
)
def test_snapshot_commit(path: str, commit: str | None) -> None:
    assert hub.snapshot_commit(path) == commit


@pytest.mark.parametrize(
    "entry",
    [
        {"family": "open_clip", "model": "local-dir:data/models/no_such_model"},
        {"family": "align", "source": "data/models/no_such_model"},
        {"family": "blip2_hf", "source": "data/models/no_such_model"},
        {"family": "blip2_lavis", "mode": "thesis", "local_dir": "data/models/no_such_model"},
    ],
)
def test_missing_tiny_model_says_how_to_make_it(entry: dict) -> None:
    with pytest.raises(ModelError, match=r"model 'tiny_x': .*kisbench tiny-models"):
        load_model("tiny_x", entry, device="cpu")
