"""DVC stage tidy: no orphan partial chunks once the embeddings are complete.

It has no outputs, so DVC's run cache never stands in for it: it runs whenever anything
under data/features changes, the partial chunks of a killed run included, also when DVC
restored the embed stages' outputs from its run cache without running them (which is how
the chunks of a killed run were left behind: kisbench.embedding.partials).
"""

from pathlib import Path

import typer

from kisbench.cli import PARAMS, clear_errors, command_line
from kisbench.config import load_params
from kisbench.config.reset import Reset
from kisbench.embedding.partials import remove_orphans

app = command_line()


@app.command()
@clear_errors
def main(params: Path = PARAMS) -> None:
    """Remove the partial chunks of every embed stage of the experiment whose output is
    complete (data/partial/MODEL-COLLECTION)."""
    p = load_params(params)
    reset: Reset = p.reset
    pairs = [(m, c) for m in p.run.models for c in p.run.collections]
    pairs += [(m, c) for m in reset.models for c in p.run.reset]
    removed = remove_orphans(pairs)
    typer.echo(
        f"removed {len(removed)} orphan partial folder(s): {', '.join(map(str, removed))}"
        if removed
        else "no orphan partial chunks"
    )


if __name__ == "__main__":
    app()
