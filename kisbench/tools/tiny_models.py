"""`kisbench tiny-models`: create the tiny random-weight models used by `make smoke` and the
tests."""

from __future__ import annotations

from pathlib import Path

import typer

from kisbench.cli import clear_errors, command_line, quiet_libraries
from kisbench.layout import TINY_MODELS
from kisbench.models.testing.builders import TINY_MODELS as BUILDERS
from kisbench.models.testing.builders import make_all

app = command_line()


@app.command()
@clear_errors
def main(
    out: Path = typer.Option(TINY_MODELS, help="Folder to create the models in."),
    seed: int = typer.Option(0, help="Seed of the random weights."),
    name: list[str] = typer.Option(
        None,
        metavar="NAME",
        help=f"Only these models (repeatable); default all: {', '.join(BUILDERS)}.",
    ),
) -> None:
    """Build the tiny models (fixed seed, so always the same weights) under OUT/<name>.

    tiny_blip2 is built by LAVIS in its own virtualenv (.venv-lavis, from `make setup`).
    """
    quiet_libraries()
    unknown = sorted(set(name or []) - set(BUILDERS))
    if unknown:
        raise typer.BadParameter(f"unknown tiny models {unknown}; known: {', '.join(BUILDERS)}")
    for folder in make_all(out, seed=seed, names=name or None):
        typer.echo(f"wrote {folder}")


if __name__ == "__main__":
    app()
