"""DVC stage evaluate: metrics with confidence intervals and cumulative curves."""

from pathlib import Path

import typer

from kisbench import layout
from kisbench.cli import clear_errors
from kisbench.evaluate import evaluate, load_rank_sets, write_curves
from kisbench.params import load_params, section
from kisbench.store import write_json

app = typer.Typer(add_completion=False)


@app.command()
@clear_errors
def main(
    params: Path = typer.Option(Path("params.yaml"), help="Parameters file."),
    metrics: Path = typer.Option(layout.METRICS, help="Folder for kis.json and kis_details.json."),
    curves: Path = typer.Option(layout.CURVES, help="Folder for the curve CSVs."),
) -> None:
    """Evaluate the ranks of every model and collection of the experiment (params `run`)."""
    p = load_params(params)
    opts = section(p, "evaluate")
    sets = load_rank_sets(p["run"]["models"], p["run"]["collections"])
    head, details, tables = evaluate(
        sets,
        headline=opts.get("headline", "mrr"),
        n_boot=opts.get("bootstrap", 1000),
        seed=opts.get("seed", 0),
    )
    write_json(metrics / "kis.json", head)
    write_json(metrics / "kis_details.json", details)
    for path in write_curves(tables, curves):
        typer.echo(f"wrote {path}")


if __name__ == "__main__":
    app()
