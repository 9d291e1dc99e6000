"""DVC stage simulate: interactive search with simulated users (docs/simulation.md)."""

from pathlib import Path

import typer

from kisbench import files, layout
from kisbench.cli import PARAMS, clear_errors, command_line
from kisbench.config import load_params
from kisbench.config.evaluation import Evaluate
from kisbench.config.simulation import Simulate
from kisbench.data import store
from kisbench.data.collections import read_labels
from kisbench.devices import resolve_device
from kisbench.evaluation.layout import (
    METRICS,
    SIMULATION,
    SIMULATION_CURVES,
    simulation_curve_name,
    simulation_path,
)
from kisbench.evaluation.simulation import entries, results, simulate_labelset

app = command_line()


@app.command()
@clear_errors
def main(
    params: Path = PARAMS,
    out: Path = typer.Option(SIMULATION, help="Folder for the per-run tables."),
    metrics: Path = typer.Option(METRICS, help="Folder for simulation.json and its pairs."),
    curves: Path = typer.Option(SIMULATION_CURVES, help="Folder for the curve CSVs."),
) -> None:
    """Simulate interactive search for every model of the experiment (params `run`) and the
    pairs of params `simulate.pairs`. Writes OUT/COLLECTION/LABELSET.csv (per query and
    simulated user the display that held the target, -1: never), METRICS/simulation.json,
    METRICS/simulation_pairs.csv and CURVES/COLLECTION-LABELSET-USER.csv."""
    p = load_params(params)
    opts: Simulate = p.simulate
    evals: Evaluate = p.evaluate
    device = resolve_device(opts.device)
    todo = entries(p.run.models, opts.pairs)
    models = sorted({m for pair in todo for m in pair})
    tables = {}
    for collection in p.run.collections:
        images = {m: store.load(layout.features_dir(m, collection)) for m in models}
        for labelset in read_labels(layout.labels_path(collection)).labelsets:
            queries = {
                m: store.load(layout.queries_dir(m, collection) / labelset)
                for m in {t for t, _ in todo}
            }
            where = f"{collection}/{labelset}"
            table = simulate_labelset(images, queries, todo, opts, device, where=where)
            path = simulation_path(collection, labelset, out)
            path.parent.mkdir(parents=True, exist_ok=True)
            files.write_csv(path, table, index=False)
            tables[(collection, labelset)] = table
            typer.echo(f"wrote {path}: {len(table)} runs")
    summary, pairs, plots = results(tables, opts, n_boot=evals.bootstrap, seed=evals.seed)
    metrics.mkdir(parents=True, exist_ok=True)
    files.write_json(metrics / "simulation.json", summary)
    files.write_csv(metrics / "simulation_pairs.csv", pairs, index=False, float_format="%.6g")
    curves.mkdir(parents=True, exist_ok=True)
    for (collection, labelset, user), frame in plots.items():
        name = simulation_curve_name(collection, labelset, user)
        files.write_csv(curves / name, frame, index=False, float_format="%.6g")
    typer.echo(f"wrote {metrics / 'simulation.json'}, {metrics / 'simulation_pairs.csv'}")


if __name__ == "__main__":
    app()
