"""Check a DVC remote, then `dvc push` / `dvc pull`, with plain messages when it is broken.

DVC's own errors for the usual set-up mistakes are slow or cryptic: an unreachable S3
endpoint is retried for about 90 s before "Could not connect", wrong credentials come back
as "Forbidden ... HeadObject". ``kisbench remote check|push|pull`` (``make
check-remote``, ``make push``, ``make pull``) first probes the remote once with short
timeouts and, when it fails, names the remote, what is wrong and the command that fixes it.
It also refuses credentials in ``.dvc/config``, which git tracks.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import typer

from kisbench.cli import command_line

if TYPE_CHECKING:
    from dvc.repo import Repo

# Remote settings that must stay out of git (.dvc/config); their home is .dvc/config.local
# or the environment.
SECRET_KEYS = (
    "access_key_id",
    "secret_access_key",
    "session_token",
    "password",
    "passphrase",
    "key_secret",
    "token",
)
CONNECT_TIMEOUT_S = 5
READ_TIMEOUT_S = 20


class RemoteError(RuntimeError):
    """The remote is missing, misconfigured or refuses us; the message says what to do."""


def _open_repo(root: Path) -> Repo:
    from dvc.exceptions import DvcException, NotDvcRepoError
    from dvc.repo import Repo

    try:
        return Repo(str(root))
    except NotDvcRepoError as err:
        raise RemoteError(f"{root} is not a DVC repository (no .dvc/ folder)") from err
    except DvcException as err:
        raise RemoteError(f"cannot open the DVC repository {root}: {err}") from err


def tracked_secrets(repo: Repo) -> list[tuple[str, str]]:
    """(remote, key) pairs of credentials written into the git-tracked ``.dvc/config``."""
    remotes = repo.config.load_one("repo").get("remote", {})
    return [(name, key) for name, conf in remotes.items() for key in conf if key in SECRET_KEYS]


def resolve_remote(repo: Repo, name: str | None) -> tuple[str, dict[str, Any]]:
    """The remote's name and merged settings (repo, local, user and system config)."""
    remotes = repo.config.get("remote", {})
    name = name or repo.config.get("core", {}).get("remote")
    if not name:
        raise RemoteError(
            "no default DVC remote: add one with `dvc remote add -d storage s3://BUCKET/PATH` "
            "(docs/remote.md)"
        )
    if name not in remotes:
        known = ", ".join(sorted(remotes)) or "none"
        raise RemoteError(
            f"DVC remote '{name}' is not configured (configured: {known}); see `dvc remote list`"
        )
    return name, dict(remotes[name])


def _s3_client(conf: dict[str, Any]) -> Any:
    import botocore.session
    from botocore.config import Config

    session = botocore.session.Session(profile=conf.get("profile"))
    if conf.get("credentialpath"):
        session.set_config_variable("credentials_file", conf["credentialpath"])
    if conf.get("configpath"):
        session.set_config_variable("config_file", conf["configpath"])
    # Unset keys fall through to botocore's own chain: AWS_* variables, profiles, ~/.aws.
    return session.create_client(
        "s3",
        endpoint_url=conf.get("endpointurl"),
        region_name=conf.get("region"),
        aws_access_key_id=conf.get("access_key_id"),
        aws_secret_access_key=conf.get("secret_access_key"),
        aws_session_token=conf.get("session_token"),
        verify=conf.get("ssl_verify", True),
        config=Config(
            connect_timeout=CONNECT_TIMEOUT_S,
            read_timeout=READ_TIMEOUT_S,
            retries={"max_attempts": 1},
        ),
    )


def check_s3(name: str, conf: dict[str, Any]) -> str:
    from botocore.exceptions import (
        BotoCoreError,
        ClientError,
        ConnectionError,
        NoCredentialsError,
    )

    url = conf["url"]
    bucket = urlsplit(url).netloc
    set_local = f"dvc remote modify --local {name}"
    try:
        client = _s3_client(conf)
        endpoint = client.meta.endpoint_url
        client.head_bucket(Bucket=bucket)
    except NoCredentialsError as err:
        raise RemoteError(
            f"no S3 credentials for DVC remote '{name}' ({url}): set them with "
            f"`{set_local} access_key_id KEY` and `{set_local} secret_access_key SECRET`, "
            "or the AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY variables, or an AWS profile"
        ) from err
    except ConnectionError as err:
        raise RemoteError(
            f"cannot reach {endpoint} for DVC remote '{name}' ({url}): is the server running "
            f"and the endpoint URL right? Set it with `{set_local} endpointurl http://HOST:PORT` "
            f"or the AWS_ENDPOINT_URL variable ({err})"
        ) from err
    except ClientError as err:
        status = err.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        code = err.response.get("Error", {}).get("Code", "")
        if status == 404 or code in ("404", "NoSuchBucket"):
            raise RemoteError(
                f"bucket '{bucket}' does not exist at {endpoint} (DVC remote '{name}', {url}): "
                f"create it (e.g. `aws s3 mb s3://{bucket}`, add `--endpoint-url {endpoint}` "
                "for MinIO or SeaweedFS), or point the remote at an existing bucket with "
                f"`dvc remote modify {name} url s3://BUCKET/PATH`"
            ) from err
        if status == 403 or code in ("403", "InvalidAccessKeyId", "SignatureDoesNotMatch"):
            raise RemoteError(
                f"{endpoint} refused the credentials of DVC remote '{name}' ({url}, HTTP 403): "
                "the access key or secret is wrong, or the key may not use bucket "
                f"'{bucket}'. Fix them with `{set_local} access_key_id KEY` and "
                f"`{set_local} secret_access_key SECRET` (or the AWS_* variables)"
            ) from err
        if status == 301 or code in ("301", "PermanentRedirect", "AuthorizationHeaderMalformed"):
            raise RemoteError(
                f"bucket '{bucket}' lives in another region than the one DVC remote '{name}' "
                f"uses: set it with `dvc remote modify {name} region REGION`"
            ) from err
        raise RemoteError(
            f"{endpoint} answered HTTP {status} {code} for bucket '{bucket}' "
            f"(DVC remote '{name}', {url})"
        ) from err
    except BotoCoreError as err:
        raise RemoteError(f"DVC remote '{name}' ({url}): {err}") from err
    return f"DVC remote '{name}' ({url} at {endpoint}): reachable, credentials accepted"


def check_ssh(name: str, conf: dict[str, Any], repo: Repo) -> str:
    url = conf["url"]
    parts = urlsplit(url)
    host = conf.get("host") or parts.hostname or ""
    port = int(conf.get("port") or parts.port or 22)
    try:
        with socket.create_connection((host, port), timeout=CONNECT_TIMEOUT_S):
            pass
    except OSError as err:
        raise RemoteError(
            f"cannot reach the SSH server {host}:{port} for DVC remote '{name}' ({url}): "
            f"is sshd running there and the host and port right? ({err})"
        ) from err
    import asyncssh

    remote = repo.cloud.get_remote(name)
    try:
        remote.fs.exists(remote.path)
    except (PermissionError, asyncssh.PermissionDenied) as err:
        # dvc-ssh turns asyncssh's PermissionDenied into PermissionError.
        user = conf.get("user") or parts.username or "(your login name)"
        raise RemoteError(
            f"{host}:{port} refused the login of user {user} for DVC remote '{name}' ({url}): "
            f"give the key with `dvc remote modify --local {name} keyfile PATH` (its public "
            "half in the server's authorized_keys), or set `user`"
        ) from err
    except (OSError, asyncssh.Error) as err:
        raise RemoteError(f"DVC remote '{name}' ({url}): {err}") from err
    return f"DVC remote '{name}' ({url}): reachable, login accepted"


def check_local(name: str, conf: dict[str, Any]) -> str:
    folder = Path(conf["url"])
    if not folder.is_dir():
        raise RemoteError(
            f"the folder of DVC remote '{name}' does not exist: {folder}; create it "
            f"(`mkdir -p {folder}`), mount the drive, or change it with "
            f"`dvc remote modify --local {name} url PATH`"
        )
    if not os.access(folder, os.W_OK | os.X_OK):
        raise RemoteError(f"the folder of DVC remote '{name}' is not writable: {folder}")
    return f"DVC remote '{name}' ({folder}): folder present and writable"


def check(root: Path, name: str | None = None) -> str:
    """Probe the remote once; a one-line description when fine, else :class:`RemoteError`."""
    with _open_repo(root) as repo:
        leaked = tracked_secrets(repo)
        if leaked:
            where = ", ".join(f"{key} of remote '{remote}'" for remote, key in leaked)
            remote, key = leaked[0]
            raise RemoteError(
                f".dvc/config, which git tracks, holds credentials ({where}): move them to "
                f".dvc/config.local, e.g. `dvc remote modify --unset {remote} {key}` then "
                f"`dvc remote modify --local {remote} {key} VALUE`, and rotate the secret "
                "if it was ever committed"
            )
        name, conf = resolve_remote(repo, name)
        scheme = urlsplit(conf["url"]).scheme
        if scheme == "s3":
            return check_s3(name, conf)
        if scheme == "ssh":
            return check_ssh(name, conf, repo)
        if scheme in ("", "file") or Path(conf["url"]).is_absolute():
            return check_local(name, conf)
        return f"DVC remote '{name}' ({conf['url']}): {scheme} remotes are not probed"


def run_dvc(root: Path, *args: str) -> int:
    """Run DVC from this interpreter's environment; its output goes straight to the user."""
    return subprocess.run([sys.executable, "-m", "dvc", *args], cwd=root, check=False).returncode


app = command_line(help=__doc__.splitlines()[0])

REMOTE = typer.Option(None, "--remote", "-r", help="DVC remote (default: core.remote).")
ROOT = typer.Option(Path("."), "--root", help="Repository root.")
JOBS = typer.Option(None, "--jobs", "-j", help="Parallel transfers (DVC's default if unset).")
TARGETS = typer.Argument(None, metavar="TARGET", help="Stages or outputs (default: all).")


def _checked(root: Path, remote: str | None) -> None:
    try:
        typer.echo(check(root, remote))
    except RemoteError as err:
        typer.echo(f"error: {err}", err=True)
        raise typer.Exit(1) from err


def _transfer_args(remote: str | None, jobs: int | None, targets: list[str] | None) -> list[str]:
    args = ["-r", remote] if remote else []
    if jobs:
        args += ["-j", str(jobs)]
    return args + list(targets or [])


@app.command("check")
def check_cmd(remote: str | None = REMOTE, root: Path = ROOT) -> None:
    """Is the remote reachable, with working credentials and an existing bucket?"""
    _checked(root, remote)


@app.command()
def push(
    targets: list[str] | None = TARGETS,
    remote: str | None = REMOTE,
    jobs: int | None = JOBS,
    root: Path = ROOT,
) -> None:
    """Check the remote, then `dvc push` (cached stage outputs: embeddings, ranks)."""
    _checked(root, remote)
    raise typer.Exit(run_dvc(root, "push", *_transfer_args(remote, jobs, targets)))


@app.command()
def pull(
    targets: list[str] | None = TARGETS,
    remote: str | None = REMOTE,
    jobs: int | None = JOBS,
    root: Path = ROOT,
) -> None:
    """Check the remote, then `dvc pull`."""
    _checked(root, remote)
    raise typer.Exit(run_dvc(root, "pull", *_transfer_args(remote, jobs, targets)))


if __name__ == "__main__":
    app()
