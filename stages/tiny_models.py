"""Create the tiny random-weight models used by `make smoke` and the tests."""

from pathlib import Path

import typer

from kisbench.cli import quiet_libraries
from kisbench.layout import TINY_MODELS
from kisbench.models.tiny import make_all

app = typer.Typer(add_completion=False)


@app.command()
def main(
    out: Path = typer.Option(TINY_MODELS, help="Folder to create the models in."),
    seed: int = typer.Option(0, help="Seed of the random weights."),
) -> None:
    """Build every tiny model (fixed seed, so always the same weights) under OUT/<name>."""
    quiet_libraries()
    for folder in make_all(out, seed=seed):
        typer.echo(f"wrote {folder}")


if __name__ == "__main__":
    app()
