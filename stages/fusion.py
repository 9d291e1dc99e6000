"""DVC stage fusion: every pair of models, and all of them, fused into real retrievers."""

from pathlib import Path

import pandas as pd
import typer

from kisbench import files, layout
from kisbench.cli import PARAMS, clear_errors, command_line
from kisbench.config import load_params
from kisbench.config.evaluation import Evaluate, Fusion
from kisbench.data import store
from kisbench.data.duplicates import load_equivalents
from kisbench.devices import resolve_device
from kisbench.evaluation.evaluate import labelset_order
from kisbench.evaluation.fusion import align_inputs, fuse, headline_table, summary
from kisbench.evaluation.layout import FUSION, METRICS, fusion_path

app = command_line()


@app.command()
@clear_errors
def main(
    params: Path = PARAMS,
    out: Path = typer.Option(FUSION, help="Folder for the per-query fused ranks."),
    metrics: Path = typer.Option(METRICS, help="Folder for fusion.json and fusion.csv."),
) -> None:
    """Fuse the models of the experiment (params `run`) from their embeddings: reciprocal
    rank fusion and normalised score fusion for every pair and for all models, evaluated
    like a model. Writes OUT/COLLECTION/LABELSET.csv, METRICS/fusion.csv (every retriever,
    every metric) and METRICS/fusion.json (all models fused: the headline metric)."""
    p = load_params(params)
    opts: Fusion = p.fusion
    evals: Evaluate = p.evaluate
    headline = evals.headline
    models, tables = p.run.models, []
    device = str(resolve_device(opts.device))
    for collection in p.run.collections:
        images = {m: store.load(layout.features_dir(m, collection)) for m in models}
        equivalents, _ = load_equivalents(collection)
        for labelset in labelset_order(collection):
            queries = {m: store.load(layout.queries_dir(m, collection) / labelset) for m in models}
            where = f"{collection}/{labelset}"
            inputs = align_inputs(images, queries, where=where, equivalents=equivalents)
            fused = fuse(
                inputs,
                methods=tuple(opts.methods),
                rrf_k=opts.rrf_k,
                budget_bytes=opts.memory_mb * 2**20,
                device=device,
                scratch=out.parent,
                progress=f"fusion {collection}/{labelset}",
            )
            path = fusion_path(collection, labelset, out)
            path.parent.mkdir(parents=True, exist_ok=True)
            files.write_csv(path, fused, index=False)
            table = summary(
                fused,
                inputs.n_images,
                headline=headline,
                n_boot=evals.bootstrap,
                seed=evals.seed,
            )
            tables.append(table.assign(collection=collection, labelset=labelset))
            typer.echo(f"wrote {path}")
    table = pd.concat(tables, ignore_index=True)
    front = ["collection", "labelset"]
    table = table[front + [c for c in table.columns if c not in front]]
    metrics.mkdir(parents=True, exist_ok=True)
    files.write_csv(metrics / "fusion.csv", table, index=False, float_format="%.6g")
    files.write_json(metrics / "fusion.json", headline_table(table, models, headline))
    typer.echo(f"wrote {metrics / 'fusion.csv'}, {metrics / 'fusion.json'}")


if __name__ == "__main__":
    app()
