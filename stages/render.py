"""DVC stage render: the thesis' cumulative graphs as one PNG."""

from pathlib import Path

import pandas as pd
import typer

from kisbench import layout
from kisbench.cli import clear_errors
from kisbench.figures import cumulative_grid, model_colors, save
from kisbench.params import load_params

app = typer.Typer(add_completion=False)


@app.command()
@clear_errors
def main(
    params: Path = typer.Option(Path("params.yaml"), help="Parameters file."),
    curves: Path = typer.Option(layout.CURVES, help="Folder of the curve CSVs."),
    out: Path = typer.Option(layout.FIGURES, help="Folder for the figures."),
) -> None:
    """Draw plots/figures/cumulative.png from the evaluate stage's curves."""
    p = load_params(params)
    run = p["run"]
    tables = {}
    for path in sorted(curves.glob("*.csv")):
        collection, labelset = layout.parse_curve_name(path)
        if collection in run["collections"]:
            tables[(collection, labelset)] = pd.read_csv(path)
    if not tables:
        raise FileNotFoundError(f"no curve CSVs in {curves}; run the evaluate stage first")
    xmax = {c: (p["collections"][c] or {}).get("xmax", 500) for c in run["collections"]}
    colors = model_colors([m for m in p["models"] if m in run["models"]])
    typer.echo(f"wrote {save(cumulative_grid(tables, xmax, colors), out / 'cumulative.png')}")


if __name__ == "__main__":
    app()
