"""What the query analyses of issue #19 add to a run: budgets, sentences, temporal queries.

    python -m benchmarks.bench_query_analyses --models 10 --collections 3

A scratch workspace as `kisbench smoke` makes it, with MODELS tiny models (every tiny family,
repeated under new keys when more are asked for) on COLLECTIONS copies of the demo collection,
each with the smoke run's two labelsets plus its temporal labels. The stages the analyses do
not need run first (embed-images, embed-queries, rank: the baseline); then, timed apart, the
length study (embed-budgets, length) and the sentence study (embed-sentences,
rank-sentences, sentences), each through `dvc repro`, so every stage starts its own Python
and loads its model as in a real run. Tiny random-weight models: the times are the
pipeline's overheads plus text encoding, which is what the two studies add (no image is
embedded again).
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Any

import typer
import yaml

from benchmarks.machine import describe
from kisbench import layout
from kisbench.cli import command_line
from kisbench.data.frames import frames_path
from kisbench.tools.smoke import deep_merge, dvc, make_workspace

app = command_line()

# One of each tiny family (tiny_blip2 / tiny_blip2_itc: LAVIS, in .venv-lavis).
TINY = [
    "tiny_clip",
    "tiny_siglip",
    "tiny_siglip2",
    "tiny_pe_core",
    "tiny_mobileclip2",
    "tiny_align",
    "tiny_blip2_hf",
    "tiny_blip2",
    "tiny_blip2_itc",
]
PHASES = {
    "baseline (embed-images, embed-queries, rank)": ["embed-images", "embed-queries", "rank"],
    "length study (embed-budgets, length)": ["embed-budgets", "length"],
    "sentence study (embed-sentences, rank-sentences, sentences)": [
        "embed-sentences",
        "rank-sentences",
        "sentences",
    ],
}


def models_and_entries(n: int, params: dict[str, Any]) -> tuple[list[str], dict[str, Any]]:
    """n model keys; beyond the tiny families, copies of them under new keys."""
    keys = [
        TINY[i % len(TINY)] if i < len(TINY) else f"{TINY[i % len(TINY)]}_{i}" for i in range(n)
    ]
    extra = {
        k: dict(params["models"][TINY[i % len(TINY)]]) for i, k in enumerate(keys) if k not in TINY
    }
    return keys, extra


def copy_collection(ws: Path, name: str) -> None:
    """A copy of the workspace's demo collection (images, labels, frames) named ``name``."""
    shutil.copytree(ws / layout.images_dir("demo"), ws / layout.images_dir(name))
    shutil.copy2(ws / layout.labels_path("demo"), ws / layout.labels_path(name))
    shutil.copy2(ws / frames_path("demo"), ws / frames_path(name))


@app.command()
def main(
    models: int = typer.Option(10, min=1, help="Number of tiny models."),
    collections: int = typer.Option(3, min=1, help="Copies of the demo collection."),
    out: Path = typer.Option(Path(".bench-query-analyses"), help="Scratch workspace (replaced)."),
) -> None:
    """Time the baseline stages, then the length study and the sentence study apart."""
    for line in describe():
        typer.echo(line)
    params = yaml.safe_load(Path("params.yaml").read_text(encoding="utf-8"))
    keys, extra = models_and_entries(models, params)
    names = ["demo"] + [f"demo{i + 2}" for i in range(collections - 1)]
    smoke = yaml.safe_load(Path("params.smoke.yaml").read_text(encoding="utf-8"))
    over = deep_merge(smoke, {"run": {"models": keys, "collections": ["demo"]}, "models": extra})
    ws = make_workspace(Path.cwd(), out, over)
    for name in names[1:]:
        copy_collection(ws, name)
    merged = yaml.safe_load((ws / "params.yaml").read_text(encoding="utf-8"))
    merged["run"]["collections"] = names
    for name in names[1:]:
        merged["collections"][name] = dict(merged["collections"]["demo"])
    (ws / "params.yaml").write_text(yaml.safe_dump(merged, sort_keys=False), encoding="utf-8")
    typer.echo(f"{len(keys)} models x {len(names)} collections x 2 labelsets (+ temporal)")
    for phase, targets in PHASES.items():
        start = time.perf_counter()
        proc = dvc(ws, "repro", *targets, check=False)
        wall = time.perf_counter() - start
        if proc.returncode:
            typer.echo(proc.stdout[-3000:] + proc.stderr[-3000:])
            raise typer.Exit(proc.returncode)
        ran = proc.stdout.count("Running stage")
        typer.echo(f"{phase}: {wall:.0f} s wall, {ran} stages")


if __name__ == "__main__":
    app()
