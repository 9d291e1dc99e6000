"""DVC stage rank: the rank of every query's target image, per labelset."""

from pathlib import Path

import typer

from kisbench import files, layout
from kisbench.cli import COLLECTION, MODEL, PARAMS, clear_errors, command_line
from kisbench.config import load_params
from kisbench.config.evaluation import Rank
from kisbench.data import store
from kisbench.data.collections import check_targets, read_labels
from kisbench.data.duplicates import load_equivalents
from kisbench.devices import resolve_device
from kisbench.evaluation.layout import RANKS_INFO, ranks_dir
from kisbench.evaluation.ranking import on_device, rank_table

app = command_line()

# What of the embedding set's meta.json the rank stage passes on in info.json.
MODEL_FACTS = ("key", "family", "metadata", "images_per_s", "device", "dtype", "decode")


@app.command()
@clear_errors
def main(
    model: str = MODEL,
    collection: str = COLLECTION,
    params: Path = PARAMS,
    out: Path = typer.Option(
        None, help="Output folder.", show_default="data/ranks/MODEL/COLLECTION"
    ),
) -> None:
    """Write <labelset>.csv (query_id,target_id,labelset,rank,score,top_ids) per labelset,
    and info.json (collection size, truncated queries, skipped images and targets, equivalent
    images) for the evaluate and render stages.

    A target that the embed stage skipped as unreadable (its skipped.csv) gets rank
    images + 1, "never found", and is listed in info.json. An image the collection declares
    equivalent to a target (its equivalents.csv, docs/collections.md) is not counted ahead
    of it; the groups are in info.json too."""
    opts: Rank = load_params(params).rank
    features = layout.features_dir(model, collection)
    images = store.load(features)
    equivalents, equivalents_file = load_equivalents(collection)
    skipped = store.read_skipped(features)
    labels = read_labels(layout.labels_path(collection))
    skipped_targets = check_targets(labels, images.ids, skipped)
    if skipped_targets:
        typer.echo(
            f"warning: {len(skipped_targets)} target image(s) were skipped as unreadable by the "
            f"embed stage and count as never found: {', '.join(skipped_targets[:10])}",
            err=True,
        )
    out = out or ranks_dir(model, collection)
    out.mkdir(parents=True, exist_ok=True)
    device = str(resolve_device(opts.device))
    info = {
        "images": len(images.ids),
        "truncated": {},
        "skipped_images": dict(sorted(skipped.items())),
        "skipped_targets": {i: skipped[i] for i in skipped_targets},
        "equivalents": equivalents,
        # the ranked embedding set's model metadata and speed, for the render stage's model
        # table (metrics/models.json): the rank stage depends on exactly this set, whereas
        # data/features also holds other collections' and RESET's sets
        "embedding": {k: images.meta.get(k) for k in MODEL_FACTS},
    }
    if equivalents:
        typer.echo(f"{len(equivalents)} group(s) of equivalent images ({equivalents_file})")
    vectors = on_device(images.vectors, device)  # on a GPU: read once for every labelset
    for labelset in labels.labelsets:
        queries = store.load(layout.queries_dir(model, collection) / labelset)
        info["truncated"][labelset] = queries.meta.get("truncated")
        table = rank_table(
            vectors,
            images.ids,
            queries.vectors,
            queries.ids,
            labelset,
            top_k=opts.top_k,
            device=device,
            layout=images.layout,
            equivalents=equivalents,
        )
        path = out / f"{labelset}.csv"
        files.write_csv(path, table, index=False)
        typer.echo(f"{path}: {len(table)} queries, median rank {table['rank'].median():g}")
    files.write_json(out / RANKS_INFO, info)


if __name__ == "__main__":
    app()
