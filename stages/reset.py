"""DVC stage reset: consistency of every extractor with RESET's human judgements."""

from pathlib import Path

import typer

from kisbench.cli import PARAMS, RESET_COLLECTION, clear_errors, command_line
from kisbench.config import load_params
from kisbench.evaluation.layout import METRICS
from kisbench.files import write_csv, write_json
from kisbench.report.figures import reset_consistency, save
from kisbench.reset.consistency import evaluate, extend_triplets, json_safe
from kisbench.reset.data import (
    ResetSettings,
    extractors,
    read_distances,
    read_judgements,
    read_participants,
    read_triplets,
)
from kisbench.reset.layout import RESET_DISTANCES, RESET_EXTENDED, RESET_FIGURE, RESET_TABLE

app = command_line()


@app.command()
@clear_errors
def main(
    collection: str = RESET_COLLECTION,
    params: Path = PARAMS,
    distances: Path = typer.Option(RESET_DISTANCES, help="reset-distances outputs."),
    metrics: Path = typer.Option(METRICS, help="Folder for reset.json, reset_details.json."),
    table: Path = typer.Option(RESET_TABLE, help="Consistency table (CSV)."),
    figure: Path = typer.Option(RESET_FIGURE, help="Bar chart (PNG)."),
    extended: Path = typer.Option(RESET_EXTENDED, help="Extended triplets file (CSV)."),
) -> None:
    """Score RESET's extractors and the models in `reset.models` against the judgements."""
    s = ResetSettings.from_params(load_params(params))
    participants = read_participants(s.participants)
    judgements = read_judgements(s.judgements)
    triplets = read_triplets(s.triplets)
    names = extractors(triplets, s.models, s.triplets)
    per_model, infos = {}, {}
    for model in s.models:
        folder = distances / model / collection
        per_model[model], infos[model] = read_distances(folder, model, triplets.index)
    ext = extend_triplets(triplets, per_model)
    result = evaluate(
        judgements,
        participants,
        ext,
        names,
        project=s.models,
        ties=s.ties,
        min_judgements=s.min_judgements,
        n_boot=s.bootstrap,
        seed=s.seed,
    )
    missing = sorted({k for i in infos.values() for k in i["missing_keyframes"]})
    details = {
        "settings": {
            "collection": collection,
            "ties": s.ties,
            "min_judgements": s.min_judgements,
            "bootstrap": s.bootstrap,
            "seed": s.seed,
        },
        "counts": result.counts,
        "missing_keyframes": {
            "count": len(missing),
            "names": missing,
            "by_model": {m: i["missing_keyframes"] for m, i in infos.items()},
        },
        "models": {m: i["embeddings"] for m, i in infos.items()},
        "extractors": result.scores,
    }
    for path in (table, extended):
        path.parent.mkdir(parents=True, exist_ok=True)
    write_csv(table, result.table, index=False, float_format="%.6g")
    write_csv(extended, ext, index=True)
    write_json(metrics / "reset_details.json", json_safe(details))
    write_json(metrics / "reset.json", json_safe(result.headline(missing_keyframes=len(missing))))
    save(reset_consistency(result.table), figure)
    c = result.counts
    typer.echo(
        f"{c['judgements']} judgements: {c['unknown_user']} of unknown users, "
        f"{c['unknown_triplet']} of unknown triplets, {c['display_mismatch']} with an unknown "
        f"display order, {c['missing_keyframe']} with a keyframe without an embedding "
        f"({len(missing)} keyframe(s)), {c['missing_distance']} with an empty distance in "
        f"the triplets file; {c['variant1_judgements']} "
        f"non-indifferent judgements, {c['variant2_triplets']} triplets for variant 2"
    )
    for row in result.table.head(10).itertuples():
        typer.echo(f"  {row.consistency_v1:.3f}  {row.extractor} ({row.source})")
    typer.echo(f"wrote {metrics / 'reset.json'}, {table}, {figure}, {extended}")


if __name__ == "__main__":
    app()
