"""`make smoke`: the whole DVC pipeline, offline, with the tiny models, in a scratch copy.

The copy (default ``.smoke/``, git-ignored) holds the repository's tracked and untracked
files, ``params.smoke.yaml`` merged into its ``params.yaml``, its own git repository and
DVC cache; the user's workspace, params and cache stay untouched.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import typer
import yaml

from kisbench import config
from kisbench.cli import command_line
from kisbench.layout import TINY_MODELS
from kisbench.tools.temporal_demo import add_temporal_labels

app = command_line()


def deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def project_files(src: Path) -> list[str]:
    """Tracked and untracked-but-not-ignored files, as git sees them."""
    out = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=src,
        check=True,
        capture_output=True,
    ).stdout.decode()
    return sorted({f for f in out.split("\0") if f and (src / f).is_file()})


def git(dst: Path, *args: str) -> None:
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "kisbench",
        "GIT_AUTHOR_EMAIL": "smoke@localhost",
        "GIT_COMMITTER_NAME": "kisbench",
        "GIT_COMMITTER_EMAIL": "smoke@localhost",
    }
    subprocess.run(["git", *args], cwd=dst, check=True, capture_output=True, env=env)


def make_workspace(src: Path, dst: Path, overrides: dict[str, Any]) -> Path:
    """A fresh copy of the project at ``dst`` with ``overrides`` merged into params.yaml,
    committed to its own git repository, with the tiny models created."""
    src, dst = Path(src).resolve(), Path(dst).resolve()
    if dst.exists():
        shutil.rmtree(dst)
    dst.mkdir(parents=True)
    for rel in project_files(src):
        target = dst / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src / rel, target)
    params = yaml.safe_load((dst / "params.yaml").read_text(encoding="utf-8"))
    merged = deep_merge(params, overrides)
    # Checked before anything runs: a misspelt override fails here, not in a DVC stage.
    run = config.parse(merged, source="params.yaml with the overrides merged").run
    (dst / "params.yaml").write_text(yaml.safe_dump(merged, sort_keys=False), encoding="utf-8")
    # The copy has no virtualenvs (git ignores them); BLIP-2 (LAVIS) stages run the
    # repository's own .venv-lavis, reached through a link.
    if (src / ".venv-lavis").is_dir():
        (dst / ".venv-lavis").symlink_to(src / ".venv-lavis", target_is_directory=True)
    # Imported here: the builders load torch, which `kisbench --help` should not wait for.
    from kisbench.models.testing.builders import TINY_MODELS as TINY_BUILDERS
    from kisbench.models.testing.builders import make_all

    make_all(dst / TINY_MODELS, names=[m for m in run.models if m in TINY_BUILDERS])
    checked = config.parse(merged)
    if "demo" in run.collections and checked.temporal.aggregations:
        # the copy's demo labels only: temporal queries over its pseudo-videos (frames.csv)
        add_temporal_labels(dst, "demo", checked.temporal.lookahead)
    git(dst, "init", "-q", "-b", "main")
    git(dst, "add", "-A")
    git(dst, "commit", "-q", "-m", "smoke workspace")
    return dst


def dvc_env() -> dict[str, str]:
    """Environment for DVC runs: no analytics, no hub calls, the venv's python first."""
    bin_dir = str(Path(sys.executable).parent)
    return {
        **os.environ,
        "DVC_NO_ANALYTICS": "1",
        "HF_HUB_OFFLINE": "1",
        "PATH": bin_dir + os.pathsep + os.environ.get("PATH", ""),
    }


def dvc(workspace: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    exe = Path(sys.executable).parent / "dvc"
    return subprocess.run(
        [str(exe), *args], cwd=workspace, env=dvc_env(), check=check, text=True, capture_output=True
    )


@app.command()
def main(
    out: Path = typer.Option(Path(".smoke"), help="Scratch workspace (replaced)."),
    overrides: list[Path] = typer.Option(
        [Path("params.smoke.yaml")],
        "--overrides",
        metavar="FILE",
        help="Params overrides merged into params.yaml; repeat the option to stack files "
        "(later ones win).",
    ),
) -> None:
    """Run the whole DVC pipeline with the tiny models in a scratch copy of the repository."""
    start = time.perf_counter()
    over: dict[str, Any] = {}
    for path in overrides:
        over = deep_merge(over, yaml.safe_load(path.read_text(encoding="utf-8")) or {})
    ws = make_workspace(Path.cwd(), out, over)
    typer.echo(f"workspace {out} ready; dvc repro ...")
    proc = dvc(ws, "repro", check=False)
    typer.echo(proc.stdout[-4000:] + proc.stderr[-4000:])
    if proc.returncode:
        raise typer.Exit(proc.returncode)
    typer.echo((ws / "metrics" / "kis.json").read_text())
    typer.echo(
        f"smoke OK in {time.perf_counter() - start:.0f} s: see {out}/metrics, "
        f"{out}/plots/cumulative, {out}/plots/figures/, {out}/reports/report.md"
    )


if __name__ == "__main__":
    app()
