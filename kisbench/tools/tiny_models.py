"""`kisbench tiny-models`: create the tiny random-weight models used by `make smoke` and the
tests."""

from __future__ import annotations

from pathlib import Path

import typer

from kisbench.cli import clear_errors, command_line, quiet_libraries
from kisbench.layout import TINY_MODELS

app = command_line()


@app.command()
@clear_errors
def main(
    out: Path = typer.Option(TINY_MODELS, help="Folder to create the models in."),
    seed: int = typer.Option(0, help="Seed of the random weights."),
    name: list[str] = typer.Option(
        None,
        metavar="NAME",
        help="Only these models (repeatable); default all (tiny_clip, tiny_siglip, "
        "tiny_siglip2, tiny_pe_core, tiny_mobileclip2, tiny_align, tiny_blip2_hf, tiny_blip2); "
        "an unknown name is refused with the list.",
    ),
) -> None:
    """Build the tiny models (fixed seed, so always the same weights) under OUT/<name>.

    tiny_blip2 is built by LAVIS in its own virtualenv (.venv-lavis, from `make setup`).
    """
    quiet_libraries()
    # Imported here: the builders load torch, which `kisbench --help` should not wait for.
    from kisbench.models.testing.builders import TINY_MODELS as BUILDERS
    from kisbench.models.testing.builders import make_all

    unknown = sorted(set(name or []) - set(BUILDERS))
    if unknown:
        raise typer.BadParameter(f"unknown tiny models {unknown}; known: {', '.join(BUILDERS)}")
    for folder in make_all(out, seed=seed, names=name or None):
        typer.echo(f"wrote {folder}")


if __name__ == "__main__":
    app()
