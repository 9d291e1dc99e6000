"""DVC stage check: params.yaml and one collection checked before any model runs.

Its gate, data/checks/<collection>.json, is a dep of the collection's embed stages, so a
plain `dvc repro` stops here, with every problem listed, instead of embedding from bad
inputs (docs/collections.md "Checking a collection").
"""

from pathlib import Path

import typer

from kisbench.cli import PARAMS, clear_errors, command_line
from kisbench.data.checks import gate, gate_path, report_path
from kisbench.data.duplicates import equivalents_path, equivalents_text
from kisbench.errors import InputError
from kisbench.files import write_json, write_text
from kisbench.tools.check import format_report, run_checks

app = command_line()


@app.command()
@clear_errors
def main(
    collection: str = typer.Option(..., help="Collection name (params `run.collections`)."),
    params: Path = PARAMS,
    near: bool = typer.Option(True, help="Look for near duplicates."),
) -> None:
    """Check params.yaml and COLLECTION (its images, duplicates, labels); write the gate and
    the report, or exit 1 listing every error."""
    report = run_checks(params, [collection], near=near)
    text = format_report(report)
    if report.errors:
        raise InputError(f"the check of {collection!r} failed (run `kisbench check`):\n{text}")
    typer.echo(text)
    write_json(report_path(collection), report.collections[0].summary())
    # Always written (a header alone when nothing is declared): the rank stage's dep.
    write_text(equivalents_path(collection), equivalents_text(report.collections[0].equivalents))
    write_json(gate_path(collection), gate(collection))


if __name__ == "__main__":
    app()
