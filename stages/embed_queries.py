"""DVC stage embed-queries: embed every labelset of a collection's labels with one model."""

from pathlib import Path

import typer

from kisbench import layout
from kisbench.cli import COLLECTION, MODEL, PARAMS, clear_errors, command_line, quiet_libraries
from kisbench.config import collection_entry, load_params
from kisbench.data import store
from kisbench.data.collections import read_labels
from kisbench.models import load_model, model_entry

app = command_line()


@app.command()
@clear_errors
def main(
    model: str = MODEL,
    collection: str = COLLECTION,
    params: Path = PARAMS,
    out: Path = typer.Option(
        None, help="Output folder.", show_default="data/queries/MODEL/COLLECTION"
    ),
) -> None:
    """Write one embedding set per labelset (short, long, ...) of labels/COLLECTION.csv."""
    quiet_libraries()
    p = load_params(params)
    collection_entry(p, collection)
    labels = read_labels(layout.labels_path(collection))
    # load_model checks the weights before importing torch (seconds): an offline machine
    # without them fails at once.
    m = load_model(
        model,
        model_entry(p, model),
        device=p.embed.device,
        precision=p.embed.precision,
    )
    from kisbench.embedding.extract import embed_texts

    out = out or layout.queries_dir(model, collection)
    for labelset in labels.labelsets:
        # A partial labelset (empty labels) has queries for some targets only.
        queries = labels.queries(labelset)
        ids, texts = list(queries), list(queries.values())
        vectors = embed_texts(m, texts, batch_size=p.embed.batch_size)
        truncated = m.truncated(texts)
        tokens = m.token_counts(texts)  # uncut, special tokens included (the length audit)
        meta = {
            **m.provenance(),
            "kind": "queries",
            "labels": str(labels.path),
            "labelset": labelset,
            "count": len(texts),
            "truncated": sum(truncated),
            "truncated_ids": [i for i, t in zip(ids, truncated, strict=True) if t],
            "context_tokens": m.context_tokens(),
            "token_counts": dict(zip(ids, tokens, strict=True)),
        }
        store.save(out / labelset, ids, vectors, meta)
        typer.echo(
            f"{model}/{collection}/{labelset}: {len(texts)} queries, {sum(truncated)} truncated"
        )


if __name__ == "__main__":
    app()
