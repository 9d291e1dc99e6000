"""`kisbench label` (or ``python -m kisbench.labeltool``): serve the labelling page, or report
metrics per annotator."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import typer
from werkzeug.serving import make_server

from kisbench import layout
from kisbench.cli import clear_errors, command_line
from kisbench.data.collections import list_images
from kisbench.evaluation.annotators import annotator_report
from kisbench.labeltool.files import LabelFiles, clean_text
from kisbench.labeltool.server import DEFAULT_SEED, Session, create_app

app = command_line(
    help="The labelling tool: serve the labelling page, or report metrics per annotator.",
)


@app.command()
@clear_errors
def serve(
    collection: str = typer.Option(..., help="Collection: images in data/collections/<name>/."),
    annotator: str = typer.Option(..., help="Your name, written on every row you save."),
    target: int = typer.Option(600, min=1, help="Labels wanted in the file (progress bar)."),
    seed: int = typer.Option(
        DEFAULT_SEED, help="Seed of the draw order (kisbench.data.sampling); the demo's is 2024."
    ),
    host: str = typer.Option("127.0.0.1", help="Address to listen on; keep it local."),
    port: int = typer.Option(8000, min=0, max=65535, help="Port to listen on."),
    labels: Path | None = typer.Option(
        None, help="Labels CSV to write (default: labels/<collection>.csv)."
    ),
) -> None:
    """Serve the labelling page: a random unlabelled image, a short and a long label."""
    annotator = clean_text(annotator, "annotator name")
    ids, paths = list_images(layout.images_dir(collection))
    files = LabelFiles(labels or layout.labels_path(collection))
    state = files.state()  # fails now, with the file and line, if the files are malformed
    session = Session(
        collection, annotator, dict(zip(ids, paths, strict=True)), files, target, seed
    )
    if target > len(ids):
        typer.echo(f"note: the target {target} is more than the {len(ids)} images", err=True)
    if not _is_loopback(host):
        typer.echo(f"warning: {host} is not a loopback address; the page has no login", err=True)
    # On a busy port or a bad address werkzeug says so and exits with status 1.
    server = make_server(host, port, create_app(session), threaded=True)
    url = f"http://{host}:{server.port}/"
    typer.echo(
        f"labelling {collection} as {annotator}: {len(state.labelled)} labelled, "
        f"{len(state.skipped)} skipped of {len(ids)} images; writing {files.labels_path}\n"
        f"open {url}  (on a remote machine: ssh -L {server.port}:127.0.0.1:{server.port} HOST, "
        f"then open http://127.0.0.1:{server.port}/ locally); Ctrl+C stops"
    )
    server.serve_forever()  # werkzeug's returns on Ctrl+C, and closes the socket
    typer.echo(f"stopped; every saved label is in {files.labels_path}")


@app.command()
@clear_errors
def report(
    collection: str = typer.Option(..., help="Collection whose ranks to split."),
    model: list[str] = typer.Option(..., help="Model key (repeat for several)."),
    labels: Path | None = typer.Option(
        None, help="Labels CSV with the annotator column (default: labels/<collection>.csv)."
    ),
    bootstrap: int = typer.Option(1000, min=1, help="Bootstrap resamples for the intervals."),
    seed: int = typer.Option(0, help="Bootstrap seed."),
    out: Path | None = typer.Option(None, help="Also write the long table (CSV) here."),
) -> None:
    """Metrics per annotator from data/ranks/<model>/<collection>/<labelset>.csv."""
    table = annotator_report(
        model,
        collection,
        labels or layout.labels_path(collection),
        n_boot=bootstrap,
        seed=seed,
    )
    wide = table.pivot_table(
        index=["model", "labelset", "annotator", "queries"],
        columns="metric",
        values="value",
        sort=False,
    )
    typer.echo(wide.round(4).to_string())
    if out:
        out.parent.mkdir(parents=True, exist_ok=True)
        table.to_csv(out, index=False)
        typer.echo(f"wrote {out}")


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


if __name__ == "__main__":
    app()
