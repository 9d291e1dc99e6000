"""DVC stage sentences: every multi-sentence strategy and temporal aggregation against
truncate (the query embedded whole), with the evaluate stage's paired tests."""

from pathlib import Path

import typer

from kisbench.cli import PARAMS, clear_errors, command_line
from kisbench.config import load_params
from kisbench.config.evaluation import Evaluate
from kisbench.config.sentences import Sentences, Temporal
from kisbench.evaluation.evaluate import load_rank_sets
from kisbench.evaluation.layout import METRICS
from kisbench.evaluation.sentences_compare import (
    PAIRS,
    SUMMARY,
    compare_strategies,
    strategy_sets,
)
from kisbench.files import write_csv, write_json

app = command_line()


@app.command()
@clear_errors
def main(
    params: Path = PARAMS,
    metrics: Path = typer.Option(METRICS, help="Folder for the metrics files."),
) -> None:
    """Write METRICS/sentences.json (per collection, labelset, model and strategy: the
    headline with its 95% interval, truncate's on the same queries, the paired difference,
    p- and q-values; leaderboards of truncate and its strategies) and
    METRICS/sentences_pairs.csv (the paired tests, one row per strategy and graph)."""
    p = load_params(params)
    opts: Evaluate = p.evaluate
    sent: Sentences = p.sentences
    temp: Temporal = p.temporal
    truncate = load_rank_sets(p.run.models, p.run.collections)
    names = [*sent.strategies, *temp.aggregations]
    sets = strategy_sets(p.run.models, p.run.collections, names)
    summary, pairs = compare_strategies(
        truncate, sets, headline=opts.headline, n_boot=opts.bootstrap, seed=opts.seed
    )
    summary["strategies"] = names
    write_json(metrics / SUMMARY, summary)
    write_csv(metrics / PAIRS, pairs, index=False, float_format="%.6g")
    typer.echo(f"wrote {metrics / SUMMARY}, {metrics / PAIRS}: {len(pairs)} comparisons")


if __name__ == "__main__":
    app()
