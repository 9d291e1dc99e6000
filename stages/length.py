"""DVC stage length: the query-length study, truncation audit and effective length."""

from pathlib import Path

import typer

from kisbench.cli import PARAMS, clear_errors, command_line
from kisbench.config import load_params
from kisbench.config.evaluation import Evaluate, Rank
from kisbench.config.length import Length
from kisbench.devices import resolve_device
from kisbench.evaluation.layout import LENGTH_QUERIES, LENGTH_SUMMARY, METRICS
from kisbench.evaluation.length import study
from kisbench.files import write_csv, write_json

app = command_line()


@app.command()
@clear_errors
def main(
    params: Path = PARAMS,
    metrics: Path = typer.Option(METRICS, help="Folder for the metrics files."),
) -> None:
    """Per model, collection and labelset (params `run`): the queries' token counts against
    the model's context, every metric split into truncated and untruncated queries, and MRR
    at each token budget (params `length.budgets`, the embed-budgets stage's queries) with
    the smallest budget within the full-length MRR's interval. Writes METRICS/length.json
    and METRICS/length_queries.csv (one row per model and query: tokens, truncated, rank)."""
    p = load_params(params)
    ev: Evaluate = p.evaluate
    rank: Rank = p.rank
    opts: Length = p.length
    summary, table = study(
        p.run.models,
        p.run.collections,
        opts.budgets,
        n_boot=ev.bootstrap,
        seed=ev.seed,
        device=str(resolve_device(rank.device)),
    )
    write_json(metrics / LENGTH_SUMMARY, summary)
    write_csv(metrics / LENGTH_QUERIES, table, index=False)
    typer.echo(f"wrote {metrics / LENGTH_SUMMARY}, {metrics / LENGTH_QUERIES}")


if __name__ == "__main__":
    app()
