"""The users' loop against real servers on 127.0.0.1: the "GPU machine" runs the pipeline
and pushes; a fresh clone (the "laptop", which has no model weights) pulls and re-runs
nothing. Also: clear failures for a broken remote, and an interrupted push that resumes.
"""

from __future__ import annotations

import filecmp
import json
import os
import re
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import configobj
import pytest
import yaml

from kisbench.layout import TINY_MODELS, features_dir, queries_dir
from kisbench.tools.smoke import dvc_env, git
from tests.remote_servers import (
    LOOPBACK,
    S3Server,
    SshServer,
    StallingProxy,
    free_ports,
    openssh,
    seaweedfs,
    sshd_binary,
    wait_until,
)

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
SMOKE = yaml.safe_load((REPO / "params.smoke.yaml").read_text(encoding="utf-8"))
MODEL, COLLECTION = SMOKE["run"]["models"][0], SMOKE["run"]["collections"][0]
BUCKET = "kisbench"  # of the remote committed in .dvc/config: s3://kisbench/dvc


def env(workspace: Path) -> dict[str, str]:
    # DVC's site cache inside the test's folder, not /var/tmp.
    return {**dvc_env(), "DVC_SITE_CACHE_DIR": str(workspace / ".dvc" / "tmp" / "site")}


def run(
    workspace: Path, *args: str, check: bool = True, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """``python -m ARGS`` (dvc, kisbench.tools.remote, ...) on ``workspace`` (run in ``cwd``,
    default the workspace), output captured."""
    proc = subprocess.run(
        [sys.executable, "-m", *args],
        cwd=cwd or workspace,
        env=env(workspace),
        text=True,
        capture_output=True,
        timeout=600,
        check=False,
    )
    if check and proc.returncode:
        raise AssertionError(f"{args} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}")
    return proc


def remote_cli(workspace: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """The project's wrapper (``make push`` / ``make pull``), run on ``workspace``."""
    return run(
        workspace, "kisbench.tools.remote", *args, "--root", str(workspace), check=check, cwd=REPO
    )


def s3_settings(server: S3Server) -> dict[str, str]:
    return {
        "endpointurl": server.endpoint,
        "access_key_id": server.access_key,
        "secret_access_key": server.secret_key,
    }


def set_local(workspace: Path, remote: str, **settings: str) -> None:
    """Add or update a remote in .dvc/config.local (git-ignored), as `dvc remote add
    --local` / `dvc remote modify --local` would; written directly to save DVC start-ups."""
    conf = configobj.ConfigObj(str(workspace / ".dvc" / "config.local"))
    conf.setdefault(f'remote "{remote}"', {}).update(settings)
    conf.write()


def configure_like_a_user(workspace: Path, server: S3Server) -> None:
    """The commands of docs/remote.md: endpoint and credentials of the default remote, locally."""
    for key, value in s3_settings(server).items():
        run(workspace, "dvc", "remote", "modify", "--local", "storage", key, value)


def cache_objects(workspace: Path) -> dict[str, bytes]:
    """The DVC cache's objects, keyed as they are laid out on a remote (files/md5/xx/...)."""
    cache = workspace / ".dvc" / "cache"
    return {
        p.relative_to(cache).as_posix(): p.read_bytes()
        for p in sorted((cache / "files").rglob("*"))
        if p.is_file()
    }


def same_tree(a: Path, b: Path) -> bool:
    """Byte-for-byte equal folders (names and contents)."""
    cmp = filecmp.dircmp(a, b)
    if cmp.left_only or cmp.right_only or cmp.funny_files:
        return False
    _, mismatch, errors = filecmp.cmpfiles(a, b, cmp.common_files, shallow=False)
    return not mismatch and not errors and all(same_tree(a / d, b / d) for d in cmp.common_dirs)


def embeddings_outputs() -> list[Path]:
    return [features_dir(MODEL, COLLECTION), queries_dir(MODEL, COLLECTION)]


def clone(gpu: Path, dst: Path) -> Path:
    """The laptop: a fresh git clone; no DVC cache, no config.local, no model weights."""
    subprocess.run(["git", "clone", "-q", str(gpu), str(dst)], check=True)
    assert not (dst / ".dvc" / "config.local").exists()
    assert not (dst / TINY_MODELS).exists(), "the clone must not be able to embed"
    return dst


# --- fixtures -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    with seaweedfs(tmp_path_factory.mktemp("seaweedfs")) as server:
        yield server


@pytest.fixture(scope="module")
def sshd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SshServer]:
    if not sshd_binary():
        pytest.fail(
            "Debian's openssh-server is not installed, so the SSH round trip cannot run: "
            "`make setup` as root installs it (apt-get install openssh-server)"
        )
    with openssh(tmp_path_factory.mktemp("sshd")) as server:
        yield server


@pytest.fixture(scope="module")
def gpu(smoke_copy: Callable[[str], Path]) -> Path:
    """The GPU machine: the smoke pipeline run (a copy of the session's), its results
    committed to git."""
    ws = smoke_copy("gpu")
    git(ws, "add", "-A")
    git(ws, "commit", "-q", "-m", "smoke results")
    return ws


# --- round trips ----------------------------------------------------------------------


def test_s3_push_then_fresh_clone_reruns_nothing(gpu: Path, s3: S3Server, tmp_path: Path) -> None:
    s3.client().create_bucket(Bucket=BUCKET)
    set_local(gpu, "storage", **s3_settings(s3))
    pushed = remote_cli(gpu, "push")
    assert "reachable, credentials accepted" in pushed.stdout

    # Independent of DVC: every cached object is in the bucket, byte for byte. The
    # committed remote URL is s3://kisbench/dvc.
    local = cache_objects(gpu)
    remote = {k.removeprefix("dvc/"): v for k, v in s3.keys(BUCKET).items()}
    assert local and remote == local

    # Credentials stayed out of git.
    tracked = subprocess.run(
        ["git", "grep", "-I", "-l", s3.secret_key], cwd=gpu, capture_output=True, text=True
    )
    assert tracked.stdout == ""

    laptop = clone(gpu, tmp_path / "laptop")
    configure_like_a_user(laptop, s3)
    repro = run(laptop, "dvc", "repro", "--pull")
    assert "Running stage" not in repro.stdout, repro.stdout
    for out in embeddings_outputs():
        assert same_tree(gpu / out, laptop / out), out
    status = run(laptop, "dvc", "status")
    assert "up to date" in status.stdout, status.stdout

    # The pulled embeddings give the GPU machine's metrics when ranked and scored again.
    for path in ("metrics/kis.json", "plots/cumulative"):
        target = laptop / path
        shutil.rmtree(target) if target.is_dir() else target.unlink()
    run(laptop, "dvc", "repro", "--force", "--single-item", f"rank@{MODEL}-{COLLECTION}")
    rerun = run(laptop, "dvc", "repro", "--force", "--single-item", "evaluate")
    assert "Running stage 'evaluate'" in rerun.stdout
    gpu_metrics = json.loads((gpu / "metrics/kis.json").read_text())
    assert json.loads((laptop / "metrics/kis.json").read_text()) == gpu_metrics
    assert same_tree(gpu / "plots/cumulative", laptop / "plots/cumulative")


def test_ssh_pull_then_repro_reruns_nothing(gpu: Path, sshd: SshServer, tmp_path: Path) -> None:
    store = tmp_path / "ssh-store"
    url = f"ssh://{sshd.user}@{LOOPBACK}:{sshd.port}{store}"

    def configure(ws: Path) -> None:
        set_local(ws, "sshstore", url=url, keyfile=str(sshd.keyfile), allow_agent="false")

    configure(gpu)
    pushed = remote_cli(gpu, "push", "--remote", "sshstore")
    assert "login accepted" in pushed.stdout
    stored = {p.relative_to(store).as_posix() for p in store.rglob("*") if p.is_file()}
    assert stored == set(cache_objects(gpu))

    laptop = clone(gpu, tmp_path / "laptop")
    configure(laptop)
    remote_cli(laptop, "pull", "--remote", "sshstore")
    repro = run(laptop, "dvc", "repro")
    assert "Running stage" not in repro.stdout, repro.stdout
    for out in embeddings_outputs():
        assert same_tree(gpu / out, laptop / out), out
    assert json.loads((laptop / "metrics/kis.json").read_text()) == json.loads(
        (gpu / "metrics/kis.json").read_text()
    )


# --- failures -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("unreachable", r"cannot reach http://127\.0\.0\.1:\d+ .*endpointurl"),
        ("wrong-credentials", r"refused the credentials .*secret_access_key"),
        ("missing-bucket", r"bucket 'no-such-bucket' does not exist .*create it"),
    ],
)
def test_broken_s3_remote_is_explained(gpu: Path, s3: S3Server, case: str, expected: str) -> None:
    name = f"broken-{case}"
    settings = {"url": f"s3://{BUCKET}/dvc", **s3_settings(s3)}
    if case == "unreachable":
        (closed,) = free_ports(1)
        settings["endpointurl"] = f"http://{LOOPBACK}:{closed}"
    if case == "wrong-credentials":
        settings["secret_access_key"] = "not-the-secret"
    if case == "missing-bucket":
        settings["url"] = "s3://no-such-bucket/dvc"
    set_local(gpu, name, **settings)
    # Both wrappers go through the same check; one case runs both to show it.
    for command in ("push", "pull") if case == "unreachable" else ("push",):
        proc = remote_cli(gpu, command, "--remote", name, check=False)
        assert proc.returncode == 1
        assert re.search(expected, proc.stderr), proc.stderr
        assert f"remote '{name}'" in proc.stderr
        assert "Traceback" not in proc.stderr


def test_interrupted_push_completes_when_run_again(gpu: Path, s3: S3Server) -> None:
    bucket = "interrupted"
    s3.client().create_bucket(Bucket=bucket)
    local = cache_objects(gpu)
    allow = len(local) // 2
    assert allow >= 1
    set_local(gpu, "direct", url=f"s3://{bucket}/dvc", **s3_settings(s3))

    with StallingProxy(s3.port, allow_puts=allow) as proxy:
        via_proxy = {**s3_settings(s3), "endpointurl": f"http://{LOOPBACK}:{proxy.port}"}
        set_local(gpu, "viaproxy", url=f"s3://{bucket}/dvc", **via_proxy)
        push = subprocess.Popen(
            [sys.executable, "-m", "dvc", "push", "-r", "viaproxy"],
            cwd=gpu,
            env=env(gpu),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        try:
            # Frozen part-way: some objects stored, a later upload held by the proxy.
            wait_until(lambda: proxy.puts_held and len(s3.keys(bucket)) == allow, 120, "push")
        finally:
            os.killpg(push.pid, signal.SIGKILL)
            push.wait()
    partial = s3.keys(bucket)
    assert 0 < len(partial) < len(local)

    again = remote_cli(gpu, "push", "--remote", "direct")
    assert f"{len(local) - len(partial)} files pushed" in again.stdout, again.stdout
    assert {k.removeprefix("dvc/"): v for k, v in s3.keys(bucket).items()} == local
