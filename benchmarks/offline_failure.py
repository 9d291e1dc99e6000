"""How long a model stage takes to fail without network and without cached weights.

Runs `python -m stages.embed_queries --model KEY --collection demo` for each model key in
a fresh process with an empty Hugging Face cache, (a) with HF_HUB_OFFLINE=1 and (b) with
an endpoint that refuses connections, and prints the wall time of each. With --baseline,
also times the libraries' own failure (open_clip asked for the same model with no check
before it) for comparison.

    python -m benchmarks.offline_failure [--baseline] [KEY ...]
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time

import typer

from benchmarks.machine import describe
from kisbench.cli import command_line

app = command_line()

DEFAULT_KEYS = ["clip_b32", "siglip_b16", "align", "blip2_itm_g", "blip2_vitl"]


def env(tmp: str, **extra: str) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "TORCH_HOME"))}
    return {**base, "HF_HOME": f"{tmp}/hf", "TORCH_HOME": f"{tmp}/torch", **extra}


def timed(cmd: list[str], environment: dict[str, str], limit: float = 300) -> tuple[float, int]:
    start = time.perf_counter()
    try:
        rc = subprocess.run(cmd, env=environment, capture_output=True, timeout=limit).returncode
    except subprocess.TimeoutExpired:
        rc = -1
    return time.perf_counter() - start, rc


@app.command()
def main(
    keys: list[str] = typer.Argument(None, help="Model keys.", show_default=" ".join(DEFAULT_KEYS)),
    baseline: bool = typer.Option(False, help="Also time open_clip's own failure."),
) -> None:
    """Time each model stage's failure with no network and no cached weights."""
    print("\n".join(describe()))
    with tempfile.TemporaryDirectory() as tmp:
        cases = {
            "HF_HUB_OFFLINE=1": env(tmp, HF_HUB_OFFLINE="1"),
            "HF_ENDPOINT=http://127.0.0.1:9": env(tmp, HF_ENDPOINT="http://127.0.0.1:9"),
        }
        for key in keys or DEFAULT_KEYS:
            cmd = [
                sys.executable,
                "-m",
                "stages.embed_queries",
                "--model",
                key,
                "--collection",
                "demo",
                "--out",
                f"{tmp}/out",
            ]
            for name, environment in cases.items():
                seconds, rc = timed(cmd, environment)
                print(f"{key:14s} {name:32s} exit {rc}  {seconds:6.2f} s   ({' '.join(cmd[1:])})")
        if baseline:
            code = (
                "import open_clip; open_clip.create_model_and_transforms("
                "'hf-hub:timm/ViT-B-16-SigLIP-512')"
            )
            seconds, rc = timed([sys.executable, "-c", code], env(tmp))
            print(
                f"baseline: open_clip alone, empty cache, default endpoint: exit {rc} "
                f"{seconds:6.2f} s"
            )


if __name__ == "__main__":
    app()
