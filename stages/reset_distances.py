"""DVC stage reset-distances: one model's cosine distances for every RESET triplet."""

from pathlib import Path

import typer

from kisbench import layout
from kisbench.cli import PARAMS, RESET_COLLECTION, clear_errors, command_line
from kisbench.config import collection_entry, load_params
from kisbench.data import store
from kisbench.reset.consistency import model_distances
from kisbench.reset.data import ResetSettings, read_triplets, write_distances
from kisbench.reset.layout import reset_distances_dir

app = command_line()


@app.command()
@clear_errors
def main(
    model: str = typer.Option(..., help="Model key from params.yaml `reset.models`."),
    collection: str = RESET_COLLECTION,
    params: Path = PARAMS,
    features: Path = typer.Option(
        None, help="Keyframe embeddings.", show_default="data/features/MODEL/COLLECTION"
    ),
    out: Path = typer.Option(
        None, help="Output folder.", show_default="data/reset_distances/MODEL/COLLECTION"
    ),
) -> None:
    """Write distances.csv (d(q,c1), d(q,c2), d(c1,c2) per triplet; empty where a keyframe
    has no embedding) and info.json (the keyframes without one, the embeddings' meta)."""
    p = load_params(params)
    collection_entry(p, collection)
    settings = ResetSettings.from_params(p)
    triplets = read_triplets(settings.triplets)
    images = store.load(features or layout.features_dir(model, collection))
    distances, missing = model_distances(triplets, images.ids, images.vectors, layout=images.layout)
    info = {
        "model": model,
        "collection": collection,
        "triplets": len(distances),
        "incomplete_triplets": int(distances.isna().any(axis=1).sum()),
        "missing_keyframes": missing,
        "embeddings": images.meta,
    }
    out = out or reset_distances_dir(model, collection)
    write_distances(out, distances, info)
    typer.echo(
        f"{out}: {len(distances)} triplets, {info['incomplete_triplets']} incomplete, "
        f"{len(missing)} keyframe(s) without an embedding"
        + (f": {', '.join(missing[:10])}{' ...' if len(missing) > 10 else ''}" if missing else "")
    )


if __name__ == "__main__":
    app()
