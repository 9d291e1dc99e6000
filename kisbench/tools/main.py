"""The `kisbench` command: the project's tools that are not DVC stages.

The pipeline itself runs through DVC (`dvc repro`, whose stages are `python -m stages.*`);
these are the commands around it.
"""

from __future__ import annotations

from kisbench.cli import command_line
from kisbench.labeltool.__main__ import app as labeltool_app
from kisbench.tools import (
    attribution,
    check,
    plot_template,
    remote,
    smoke,
    sweep,
    tiny_models,
    weights,
)

app = command_line(help="kisbench: the tools around the DVC pipeline (which `dvc repro` runs).")
app.command("check", help=check.main.__doc__)(check.main)
app.command("smoke", help=smoke.main.__doc__)(smoke.main)
app.command("tiny-models", help=tiny_models.main.__doc__)(tiny_models.main)
app.add_typer(labeltool_app, name="label")
app.add_typer(remote.app, name="remote")
app.add_typer(weights.app, name="weights")
app.add_typer(sweep.models_app, name="models")
app.command("sweep", help=sweep.main.__doc__)(sweep.main)
app.command("attribution", help=attribution.main.__doc__)(attribution.main)
app.command("vendor-vega", help=plot_template.main.__doc__)(plot_template.main)

if __name__ == "__main__":
    app()
