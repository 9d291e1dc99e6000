"""DVC stage evaluate: metrics with confidence intervals, curves, paired comparisons."""

from pathlib import Path

import typer

from kisbench.cli import PARAMS, clear_errors, command_line
from kisbench.config import load_params
from kisbench.config.evaluation import Evaluate
from kisbench.evaluation.evaluate import (
    compare,
    evaluate,
    leaderboards,
    load_rank_sets,
    write_curves,
)
from kisbench.evaluation.layout import CURVES, METRICS
from kisbench.files import write_csv, write_json

app = command_line()


@app.command()
@clear_errors
def main(
    params: Path = PARAMS,
    metrics: Path = typer.Option(METRICS, help="Folder for the metrics files."),
    curves: Path = typer.Option(CURVES, help="Folder for the curve CSVs."),
) -> None:
    """Evaluate the ranks of every model and collection of the experiment (params `run`).

    Writes METRICS/kis.json (headline: one number per model, collection and labelset),
    METRICS/kis_details.json (every metric with its 95% confidence interval),
    METRICS/leaderboard.json (per graph: each model's rank with its interval, which models
    are tied with #1, the difference the queries can detect), METRICS/pairs.csv (paired
    tests between the top models of each graph), METRICS/gains.csv (each labelset against
    the first, per model) and CURVES/COLLECTION-LABELSET.csv."""
    p = load_params(params)
    opts: Evaluate = p.evaluate
    sets = load_rank_sets(p.run.models, p.run.collections)
    stats = {"n_boot": opts.bootstrap, "seed": opts.seed}
    head, details, tables = evaluate(sets, headline=opts.headline, **stats)
    pairs, gains = compare(sets, headline=opts.headline, top_n=opts.top_models, **stats)
    write_json(metrics / "kis.json", head)
    write_json(metrics / "kis_details.json", details)
    write_json(metrics / "leaderboard.json", leaderboards(sets, headline=opts.headline, **stats))
    write_csv(metrics / "pairs.csv", pairs, index=False, float_format="%.6g")
    write_csv(metrics / "gains.csv", gains, index=False, float_format="%.6g")
    written = [metrics / name for name in ("leaderboard.json", "pairs.csv", "gains.csv")]
    for path in [*write_curves(tables, curves), *written]:
        typer.echo(f"wrote {path}")


if __name__ == "__main__":
    app()
