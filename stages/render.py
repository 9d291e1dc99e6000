"""DVC stage render: every figure (plots/figures/) and the report (reports/report.md)."""

from pathlib import Path

import typer

from kisbench.cli import PARAMS, clear_errors, command_line
from kisbench.config import load_params
from kisbench.evaluation.layout import CURVES, FUSION, METRICS
from kisbench.report.layout import FIGURES, REPORT
from kisbench.report.render import Settings, render

app = command_line()


@app.command()
@clear_errors
def main(
    params: Path = PARAMS,
    curves: Path = typer.Option(CURVES, help="Folder of the curve CSVs."),
    metrics: Path = typer.Option(METRICS, help="Folder of the evaluate/fusion tables."),
    fusion: Path = typer.Option(FUSION, help="Folder of the per-query fused ranks."),
    out: Path = typer.Option(FIGURES, help="Folder for the figures."),
    report: Path = typer.Option(REPORT, help="The Markdown report to write."),
) -> None:
    """Draw the cumulative curves, the pairwise grids and the qualitative figures of the
    experiment (params `run`), and write the Markdown report that links them."""
    settings = Settings.from_params(load_params(params))
    for path in render(
        settings, curves=curves, metrics=metrics, fusion=fusion, out=out, report_path=report
    ):
        typer.echo(f"wrote {path}")


if __name__ == "__main__":
    app()
