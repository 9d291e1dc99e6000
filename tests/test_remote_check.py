"""kisbench.tools.remote's checks on hand-made DVC configurations (no server: fast). The real
S3 and SSH servers are in test_remote.py."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml
from dvc.repo import Repo
from typer.testing import CliRunner

from kisbench.tools.remote import RemoteError, app, check, tracked_secrets
from tests.remote_servers import LOOPBACK, free_ports

REPO = Path(__file__).resolve().parents[1]


def dvc_repo(root: Path, config: str = "", local: str = "") -> Path:
    root.mkdir(parents=True, exist_ok=True)
    subprocess.run(["git", "init", "-q"], cwd=root, check=True)
    Repo.init(str(root)).close()
    (root / ".dvc" / "config").write_text(config, encoding="utf-8")
    if local:
        (root / ".dvc" / "config.local").write_text(local, encoding="utf-8")
    return root


def test_committed_config_has_an_s3_default_remote_and_no_secrets() -> None:
    with Repo(str(REPO)) as repo:
        assert tracked_secrets(repo) == []
        default = repo.config["core"]["remote"]
        assert repo.config["remote"][default]["url"].startswith("s3://")
    ignored = subprocess.run(
        ["git", "check-ignore", "-q", ".dvc/config.local"], cwd=REPO, check=False
    )
    assert ignored.returncode == 0, ".dvc/config.local must be git-ignored"


def test_credentials_in_tracked_config_are_refused(tmp_path: Path) -> None:
    root = dvc_repo(
        tmp_path,
        "[core]\n    remote = s\n"
        "['remote \"s\"']\n    url = s3://b/p\n    secret_access_key = abc\n",
    )
    with pytest.raises(RemoteError, match=r"\.dvc/config.*secret_access_key of remote 's'"):
        check(root)


def test_no_default_remote(tmp_path: Path) -> None:
    with pytest.raises(RemoteError, match="no default DVC remote.*dvc remote add -d"):
        check(dvc_repo(tmp_path))


def test_unknown_remote_lists_the_configured_ones(tmp_path: Path) -> None:
    root = dvc_repo(tmp_path, "['remote \"a\"']\n    url = s3://b/p\n")
    with pytest.raises(RemoteError, match=r"remote 'zz' is not configured \(configured: a\)"):
        check(root, "zz")


def test_unreachable_s3_endpoint_fails_at_once_with_the_fix(tmp_path: Path) -> None:
    # Credentials in .dvc/config.local: allowed, so the check goes on to the endpoint.
    (closed,) = free_ports(1)
    root = dvc_repo(
        tmp_path,
        "['remote \"s\"']\n    url = s3://bucket/path\n"
        f"    endpointurl = http://{LOOPBACK}:{closed}\n",
        "['remote \"s\"']\n    access_key_id = k\n    secret_access_key = s\n",
    )
    with pytest.raises(RemoteError) as err:
        check(root, "s")
    message = str(err.value)
    assert f"cannot reach http://{LOOPBACK}:{closed}" in message
    assert "dvc remote modify --local s endpointurl" in message


def test_missing_local_folder(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere"
    root = dvc_repo(tmp_path / "repo", f"['remote \"l\"']\n    url = {missing}\n")
    with pytest.raises(RemoteError, match=f"does not exist: {missing}"):
        check(root, "l")


def test_relative_local_folder_is_relative_to_dvc_dir(tmp_path: Path) -> None:
    (tmp_path / "store").mkdir()
    root = dvc_repo(tmp_path / "repo", "['remote \"l\"']\n    url = ../../store\n")
    assert str(tmp_path / "store") in check(root, "l")


def test_cli_prints_one_error_line_and_exits_1(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["push", "--root", str(dvc_repo(tmp_path))])
    assert result.exit_code == 1
    assert result.output.strip().startswith("error: no default DVC remote")
    assert "Traceback" not in result.output


def test_expensive_outputs_are_pushed_and_aggregates_live_in_git() -> None:
    stages = yaml.safe_load((REPO / "dvc.yaml").read_text(encoding="utf-8"))["stages"]

    def outputs(stage: str) -> list[tuple[str, bool]]:
        found = []
        for kind in ("outs", "metrics", "plots"):
            for out in stages[stage].get(kind, []):
                path, opts = next(iter(out.items())) if isinstance(out, dict) else (out, {})
                found.append((path, opts.get("cache", True)))
        return found

    for stage in ("embed-images", "embed-queries", "rank"):
        assert outputs(stage) and all(cached for _, cached in outputs(stage)), stage
    for stage in ("evaluate", "render"):
        assert outputs(stage) and not any(cached for _, cached in outputs(stage)), stage
