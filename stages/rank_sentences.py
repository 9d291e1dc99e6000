"""DVC stage rank-sentences: ranks of every multi-sentence strategy and temporal
aggregation of one model on one collection, each laid out like a model's ranks."""

from pathlib import Path

import typer

from kisbench import files, layout
from kisbench.cli import COLLECTION, MODEL, PARAMS, clear_errors, command_line
from kisbench.config import load_params
from kisbench.config.evaluation import Rank
from kisbench.config.sentences import Sentences, Temporal
from kisbench.data import store
from kisbench.data.duplicates import load_equivalents
from kisbench.data.frames import frames_path, load_frames
from kisbench.devices import resolve_device
from kisbench.evaluation.layout import RANKS_INFO, strategy_ranks_dir
from kisbench.evaluation.sentences import rank_parts

app = command_line()


@app.command()
@clear_errors
def main(
    model: str = MODEL,
    collection: str = COLLECTION,
    params: Path = PARAMS,
    out: Path = typer.Option(
        None, help="Output folder.", show_default="data/strategies/MODEL/COLLECTION"
    ),
) -> None:
    """Write STRATEGY/<labelset>.csv and STRATEGY/info.json for every strategy of params
    `sentences` (queries that are not temporal) and aggregation of `temporal` (temporal
    queries, when the collection has a frames.csv), from the embed-sentences stage's parts.
    A strategy with no query to rank writes no folder."""
    p = load_params(params)
    opts: Rank = p.rank
    sent: Sentences = p.sentences
    temp: Temporal = p.temporal
    features = layout.features_dir(model, collection)
    images = store.load(features)
    skipped = store.read_skipped(features)
    equivalents, _ = load_equivalents(collection)
    frames = load_frames(collection)
    device = str(resolve_device(opts.device))
    out = out or strategy_ranks_dir(model, collection)
    out.mkdir(parents=True, exist_ok=True)
    parts_root = layout.sentences_dir(model, collection)
    written: dict[str, dict[str, int]] = {}
    for folder in sorted(d for d in parts_root.iterdir() if d.is_dir()):
        labelset = folder.name
        parts = store.load(folder)
        temporal = set(parts.meta.get("temporal", []))
        if temporal and frames is None:
            typer.echo(
                f"warning: {collection}/{labelset}: {len(temporal)} temporal queries, but "
                f"{frames_path(collection)} does not exist: they are not ranked",
                err=True,
            )
        rows: dict[str, list[int]] = {}
        for row, part_id in enumerate(parts.ids):
            rows.setdefault(part_id.rpartition("#")[0], []).append(row)
        part_of = {q: (q in temporal, r) for q, r in rows.items()}
        tables = rank_parts(
            images.vectors,
            images.ids,
            parts.vectors,
            part_of,
            labelset,
            strategies=sent.strategies,
            aggregations=temp.aggregations,
            frames=frames,
            window=temp.window,
            lookahead=temp.lookahead,
            top_k=opts.top_k,
            device=device,
            layout=images.layout,
            equivalents=equivalents,
        )
        for name, table in tables.items():
            (out / name).mkdir(exist_ok=True)
            files.write_csv(out / name / f"{labelset}.csv", table, index=False)
            written.setdefault(name, {})[labelset] = len(table)
            typer.echo(
                f"{model}~{name} {collection}/{labelset}: {len(table)} queries, median rank "
                f"{table['rank'].median():g}"
            )
    for name, counts in written.items():
        info = {
            "images": len(images.ids),
            "truncated": {},  # parts are embedded one by one: see the parts' meta.json
            "skipped_images": dict(sorted(skipped.items())),
            "equivalents": equivalents,
            "strategy": name,
            "queries": counts,
            "frames": str(frames_path(collection)) if frames is not None else None,
        }
        files.write_json(out / name / RANKS_INFO, info)


if __name__ == "__main__":
    app()
