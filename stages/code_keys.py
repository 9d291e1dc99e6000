"""DVC stage code-keys: every model's cache key, data/code/<model>.json.

Cheap (no model library is imported): the embed stages of a model depend on its key, so
editing one family's adapter re-embeds only that family's models (docs/architecture.md).
"""

from pathlib import Path

import typer

from kisbench import layout
from kisbench.cli import PARAMS, clear_errors, command_line
from kisbench.config import load_params
from kisbench.config.reset import Reset
from kisbench.files import write_json
from kisbench.models import lock
from kisbench.models.codekey import model_key

app = command_line()


@app.command()
@clear_errors
def main(
    params: Path = PARAMS,
    weights_lock: Path = typer.Option(lock.DEFAULT, help="The weights lock."),
    out: Path = typer.Option(layout.CODE_KEYS, help="Output folder."),
) -> None:
    """Write data/code/<model>.json for every model of params `models`; first lock the
    weights commit of every model this experiment embeds (weights.lock.yaml)."""
    p = load_params(params)
    reset: Reset = p.reset
    embedded = [*p.run.models, *(reset.models if p.run.reset else [])]
    revisions = lock.ensure(p.models, embedded, weights_lock)
    out.mkdir(parents=True, exist_ok=True)
    for key, entry in p.models.items():
        write_json(out / f"{key}.json", model_key(key, entry, revisions.get(key)))
    typer.echo(f"{out}: keys of {len(p.models)} models")


if __name__ == "__main__":
    app()
