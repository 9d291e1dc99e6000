"""DVC stage embed-images: embed every image of a collection with one model."""

from pathlib import Path

import typer

from kisbench import layout
from kisbench.cli import clear_errors, quiet_libraries
from kisbench.collections import list_images
from kisbench.models import load_model, model_entry
from kisbench.params import collection_entry, load_params, section

app = typer.Typer(add_completion=False)


@app.command()
@clear_errors
def main(
    model: str = typer.Option(..., help="Model key from params.yaml `models`."),
    collection: str = typer.Option(..., help="Collection name from params.yaml `collections`."),
    params: Path = typer.Option(Path("params.yaml"), help="Parameters file."),
    out: Path = typer.Option(None, help="Output folder [default: data/features/MODEL/COLLECTION]."),
) -> None:
    """Write embeddings.npy, ids.txt and meta.json for COLLECTION's images under MODEL."""
    quiet_libraries()
    p = load_params(params)
    collection_entry(p, collection)
    opts = section(p, "embed")
    ids, paths = list_images(layout.images_dir(collection))
    # load_model checks the weights before importing torch (seconds): an offline machine
    # without them fails at once. The embedding loop needs torch, so it is imported after.
    m = load_model(
        model,
        model_entry(p, model),
        device=opts.get("device", "auto"),
        precision=opts.get("precision", "auto"),
    )
    from kisbench.extract import embed_images

    meta = embed_images(
        m,
        ids,
        paths,
        out or layout.features_dir(model, collection),
        batch_size=opts.get("batch_size", 64),
        workers=opts.get("workers"),
        store_dtype=opts.get("store_dtype", "float32"),
    )
    typer.echo(f"{model}/{collection}: {meta['count']} images, {meta['images_per_s']} images/s")


if __name__ == "__main__":
    app()
