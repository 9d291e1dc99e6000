"""Attribution file of a collection, generated from its licence manifest."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import typer

from kisbench.cli import command_line

app = command_line()

HEADER = """# Attribution: {name} collection

Generated from `manifest.csv` by `kisbench attribution {folder}`; do not edit.
Each image keeps its own licence. Share-alike (CC-BY-SA) images stay under CC-BY-SA when
redistributed, modified or not; ship this file (or manifest.csv) with the images.

| image | author | licence | source |
|---|---|---|---|
"""


def render(manifest: pd.DataFrame, name: str, folder: str) -> str:
    rows = []
    for r in manifest.sort_values("id").itertuples():
        author = str(r.author).replace("|", "\\|")
        source = f"<{r.source}>" if r.source else "none given (GCompris credits the author)"
        rows.append(f"| images/{r.id}.jpg | {author} | {r.licence} | {source} |")
    counts = manifest["licence"].value_counts().sort_index()
    summary = ", ".join(f"{lic}: {n}" for lic, n in counts.items())
    return HEADER.format(name=name, folder=folder) + "\n".join(rows) + f"\n\nLicences: {summary}.\n"


def read_manifest(folder: Path) -> pd.DataFrame:
    return pd.read_csv(folder / "manifest.csv", dtype=str, keep_default_na=False)


@app.command()
def main(folder: Path = typer.Argument(..., help="Collection folder holding manifest.csv")) -> None:
    """Write FOLDER/ATTRIBUTION.md from FOLDER/manifest.csv."""
    text = render(read_manifest(folder), folder.name, folder.as_posix())
    (folder / "ATTRIBUTION.md").write_text(text, encoding="utf-8")
    typer.echo(f"wrote {folder / 'ATTRIBUTION.md'}")


if __name__ == "__main__":
    app()
