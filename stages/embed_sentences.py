"""DVC stage embed-sentences: embed every label's sentences (or a temporal label's
sub-queries) with one model, through the query path of embed-queries (text only)."""

from pathlib import Path

import typer

from kisbench import layout
from kisbench.cli import COLLECTION, MODEL, PARAMS, clear_errors, command_line, quiet_libraries
from kisbench.config import collection_entry, load_params
from kisbench.data import store
from kisbench.data.collections import read_labels
from kisbench.data.sentences import query_parts
from kisbench.models import load_model, model_entry

app = command_line()

PART = "#"  # part ids: <query id>#<part number>


@app.command()
@clear_errors
def main(
    model: str = MODEL,
    collection: str = COLLECTION,
    params: Path = PARAMS,
    out: Path = typer.Option(
        None, help="Output folder.", show_default="data/sentences/MODEL/COLLECTION"
    ),
) -> None:
    """Write one embedding set per labelset of labels/COLLECTION.csv: a row per sentence of
    every label, or per sub-query of a temporal label ("a >> b"), ids QUERY#PART; meta.json
    says which queries are temporal (docs/evaluation.md)."""
    quiet_libraries()
    p = load_params(params)
    collection_entry(p, collection)
    labels = read_labels(layout.labels_path(collection))
    split = {
        labelset: {
            q: query_parts(text, f"{labels.path}, query {q} ({labelset})")
            for q, text in labels.queries(labelset).items()
        }
        for labelset in labels.labelsets
    }
    m = load_model(
        model,
        model_entry(p, model),
        device=p.embed.device,
        precision=p.embed.precision,
    )
    from kisbench.embedding.extract import embed_texts

    out = out or layout.sentences_dir(model, collection)
    for labelset, parts in split.items():
        ids = [f"{q}{PART}{k}" for q, (_, texts) in parts.items() for k in range(len(texts))]
        texts = [t for _, ts in parts.values() for t in ts]
        vectors = embed_texts(m, texts, batch_size=p.embed.batch_size)
        truncated = m.truncated(texts)
        meta = {
            **m.provenance(),
            "kind": "queries",  # text vectors: the store checks them as query sets
            "parts": "sentences, or a temporal label's sub-queries",
            "labels": str(labels.path),
            "labelset": labelset,
            "queries": len(parts),
            "count": len(texts),
            "temporal": [q for q, (temporal, _) in parts.items() if temporal],
            "several": [q for q, (t, ts) in parts.items() if not t and len(ts) > 1],
            "truncated": sum(truncated),
        }
        store.save(out / labelset, ids, vectors, meta)
        typer.echo(
            f"{model}/{collection}/{labelset}: {len(parts)} queries, {len(texts)} parts "
            f"({len(meta['several'])} of several sentences, {len(meta['temporal'])} temporal), "
            f"{sum(truncated)} truncated"
        )


if __name__ == "__main__":
    app()
