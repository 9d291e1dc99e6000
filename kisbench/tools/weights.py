"""`kisbench weights show|update`: the hub commits that weights.lock.yaml pins.

A hub model's first run locks the commit its weights are at (kisbench/models/lock.py);
every later run loads exactly that commit. ``update`` moves locks on purpose, to what the
hub's ``main`` (or ``--revision``) is now; ``dvc repro`` then reruns the models whose
commit changed. Local folders and blip2_lavis (fixed URLs, no commit) are never locked.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
import yaml

from kisbench.cli import clear_errors, command_line
from kisbench.errors import InputError, ModelError
from kisbench.models import lock as weights_lock
from kisbench.models.spec import ModelSpec

app = command_line(help=__doc__.splitlines()[0], no_args_is_help=True)

PARAMS = typer.Option(Path("params.yaml"), "--params", help="Parameters file (its `models`).")
LOCK = typer.Option(weights_lock.DEFAULT, "--lock", help="The lock file.")


def read_models(params: Path) -> dict[str, dict[str, Any]]:
    """The ``models`` section of a params file (all this command needs of it)."""
    if not params.is_file():
        raise InputError(f"{params} not found: run from the repository root or give --params")
    try:
        data = yaml.safe_load(params.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as err:
        raise InputError(f"{params} is not valid YAML: {err}") from err
    models = data.get("models") if isinstance(data, dict) else None
    if not isinstance(models, dict):
        raise InputError(f"{params}: no `models` section")
    return models


@app.command()
@clear_errors
def show(params: Path = PARAMS, lock: Path = LOCK) -> None:
    """List each hub model's repository, locked commit and what the hub's revision (main
    unless the lock says another) is now; the hub is asked when it answers, else the local
    cache. Models marked `not locked` get locked by their next run."""
    models = read_models(params)
    locked = weights_lock.read(lock)
    resolver = weights_lock.Resolver()
    rows = [("model", "repo", "locked", "ref", "now")]
    for key in weights_lock.hub_models(models):
        spec = ModelSpec.from_params(key, models[key])
        repo = str(weights_lock.hub_repo(spec))
        entry = locked.get(key)
        # what the lock was resolved from; a commit pinned in params is compared with main
        ref = (entry or {}).get("ref") or weights_lock.requested(spec) or weights_lock.MAIN
        ref = weights_lock.MAIN if weights_lock.is_commit(ref) else ref
        try:
            now = resolver.resolve(repo, ref)
        except ModelError as err:  # one repo gone from the hub should not hide the others
            now = f"unknown: {err}"
        moved = entry is not None and weights_lock.is_commit(now) and now != entry["revision"]
        held = entry["revision"] if entry else "not locked"
        rows.append((key, repo, held, ref, (now or "unknown") + (" (moved)" if moved else "")))
    for key in sorted(set(locked) - set(models)):
        rows.append((key, locked[key]["repo"], locked[key]["revision"], "-", "not in params"))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    for row in rows:
        cells = [c.ljust(w) for c, w in zip(row[:-1], widths, strict=True)]
        typer.echo("  ".join([*cells, row[-1]]))


@app.command()
@clear_errors
def update(
    model: list[str] | None = typer.Argument(
        None, metavar="MODEL", help="Model keys to update (default: every hub model in params)."
    ),
    revision: str = typer.Option(
        weights_lock.MAIN,
        help="Hub revision to lock (branch, tag or commit); an entry's own `revision:` in "
        "params wins.",
    ),
    params: Path = PARAMS,
    lock: Path = LOCK,
) -> None:
    """Lock the models' weights, on purpose, at the commit their revision is now (asked of
    the hub, or of the local cache when offline), and print old -> new. Then `dvc repro`
    reruns the models whose commit changed; commit the lock file."""
    models = read_models(params)
    keys = list(model) if model else weights_lock.hub_models(models)
    if not keys:
        typer.echo(f"{params} has no hub models: nothing to lock")
        return
    changes = weights_lock.update(models, keys, lock, revision=revision)
    unknown = []
    for key in keys:
        if key not in changes:
            typer.echo(f"{key}: not a hub model (local folder or blip2_lavis), never locked")
            continue
        old, new = changes[key]
        if new is None:
            unknown.append(key)
            typer.echo(f"{key}: cannot resolve (hub unreachable or offline, and not cached)")
        elif old == new:
            typer.echo(f"{key}: {new} (unchanged)")
        else:
            typer.echo(f"{key}: {old or 'not locked'} -> {new}")
    if unknown:
        typer.echo(
            f"error: no commit known for {', '.join(unknown)}; their locks are unchanged. "
            "Run with network access, or without HF_HUB_OFFLINE",
            err=True,
        )
        raise typer.Exit(1)


if __name__ == "__main__":
    app()
