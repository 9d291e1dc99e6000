"""DVC stage embed-images: embed every image of a collection with one model."""

from pathlib import Path

import typer

from kisbench import layout
from kisbench.cli import COLLECTION, MODEL, PARAMS, clear_errors, command_line, quiet_libraries
from kisbench.config import collection_entry, load_params
from kisbench.data.collections import list_images
from kisbench.models import check_model, load_model, model_entry

app = command_line()


@app.command()
@clear_errors
def main(
    model: str = MODEL,
    collection: str = COLLECTION,
    params: Path = PARAMS,
    out: Path = typer.Option(
        None, help="Output folder.", show_default="data/features/MODEL/COLLECTION"
    ),
    partial: Path = typer.Option(
        None,
        help="Folder for resumable chunks.",
        show_default="data/partial/MODEL-COLLECTION",
    ),
) -> None:
    """Write embeddings.npy, ids.txt, skipped.csv and meta.json for COLLECTION's images.

    A killed run resumes from its last finished chunk. Under
    `torchrun --nproc-per-node N -m stages.embed_images ...` each process embeds a share
    of the chunks and the first one writes the result.
    """
    quiet_libraries()
    p = load_params(params)
    collection_entry(p, collection)
    ids, paths = list_images(layout.images_dir(collection))
    entry = model_entry(p, model)
    # Weights first (seconds, no torch): an offline machine without them fails at once;
    # the embedding loop and torch.distributed are imported after.
    check_model(model, entry)
    from kisbench.embedding import distributed
    from kisbench.embedding.extract import EmbedOptions, embed_images

    options = EmbedOptions.from_params(p.embed)
    group = distributed.join()
    try:
        m = load_model(
            model,
            entry,
            device=distributed.device_for(group, p.embed.device),
            precision=p.embed.precision,
        )
        meta = embed_images(
            m,
            ids,
            paths,
            out or layout.features_dir(model, collection),
            options=options,
            partial=partial or layout.partial_dir(model, collection),
            group=group,
        )
    finally:
        distributed.leave(group)
    if meta is not None:
        typer.echo(
            f"{model}/{collection}: {meta['count']} images embedded, {meta['skipped']} skipped, "
            f"{meta['resumed_images']} resumed, {meta['images_per_s']} images/s ({meta['decode']})"
        )


if __name__ == "__main__":
    app()
