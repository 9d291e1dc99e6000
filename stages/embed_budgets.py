"""DVC stage embed-budgets: every labelset's queries cut to each token budget (params
``length.budgets``), embedded with one model (text only)."""

from pathlib import Path

import typer

from kisbench import layout
from kisbench.cli import COLLECTION, MODEL, PARAMS, clear_errors, command_line, quiet_libraries
from kisbench.config import collection_entry, load_params
from kisbench.config.embed import Embed
from kisbench.config.length import Length
from kisbench.data import store
from kisbench.data.collections import read_labels
from kisbench.embedding.budgets import embed_cut
from kisbench.models import load_model, model_entry

app = command_line()


@app.command()
@clear_errors
def main(
    model: str = MODEL,
    collection: str = COLLECTION,
    params: Path = PARAMS,
    out: Path = typer.Option(
        None, help="Output folder.", show_default="data/budgets/MODEL/COLLECTION"
    ),
) -> None:
    """Write one embedding set per labelset and budget, LABELSET/BUDGET/, of
    labels/COLLECTION.csv; budgets at or beyond the model's context become the context."""
    quiet_libraries()
    p = load_params(params)
    opts: Length = p.length
    embed: Embed = p.embed
    collection_entry(p, collection)
    labels = read_labels(layout.labels_path(collection))
    m = load_model(model, model_entry(p, model), device=embed.device, precision=embed.precision)
    out = out or layout.budgets_dir(model, collection)
    for labelset in labels.labelsets:
        queries = labels.queries(labelset)
        ids, texts = list(queries), list(queries.values())
        tokens = dict(zip(ids, m.token_counts(texts), strict=True))
        cut = embed_cut(m, texts, opts.budgets, batch_size=embed.batch_size)
        for budget, vectors in cut.items():
            meta = {
                **m.provenance(),
                "kind": "queries",
                "labels": str(labels.path),
                "labelset": labelset,
                "count": len(texts),
                "budget": budget,
                "context_tokens": m.context_tokens(),
                "token_counts": tokens,
                "cut": sum(n > budget for n in tokens.values()),
            }
            store.save(out / labelset / str(budget), ids, vectors, meta)
        typer.echo(f"{model}/{collection}/{labelset}: {len(texts)} queries at budgets {list(cut)}")


if __name__ == "__main__":
    app()
