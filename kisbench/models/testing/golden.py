"""Golden embeddings: what each tiny model computes for a few demo images and texts.

The tiny models (:mod:`kisbench.models.testing.builders`) are rebuilt from a fixed seed,
loaded through the real code path (``load_model``, fp32, CPU), and embed the first
:data:`N_IMAGES` demo images (by sorted id, through the model's own ``image_transform``)
and :data:`TEXTS`. ``tests/test_golden.py`` recomputes them and compares with the saved
arrays, so an upgrade of torch, torchvision, Pillow, open_clip, timm, transformers or
LAVIS that changes what a model computes fails a test instead of silently moving results.

Files, one set per params.yaml tiny model key (both LAVIS modes share one build):

- ``<key>.npz`` (``np.savez_compressed``, arrays only, see :func:`to_golden`): ``images``
  (N, D) or (N, Q, D), ``texts`` (T, D), ``scores`` (their cosines), ``truncated`` (T,),
  ``pixel_stats`` (N, 3, 2): per-channel mean and std of the preprocessed pixels, which
  tells a preprocessing change from a model change;
- ``golden.json``: the inputs, seed, library versions per model, and the command;
- ``README.md``: the same for people.

Regenerate (after an intended change only): ``python -m kisbench.models.testing.golden``.
"""

from __future__ import annotations

import json
import platform
import tempfile
from collections.abc import Sequence
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import numpy as np
import typer

from kisbench.cli import clear_errors, command_line, quiet_libraries
from kisbench.layout import images_dir

# The checkout this module sits in (an editable install): the demo images are found from
# any working directory, as the tests may run from anywhere.
REPO = Path(__file__).resolve().parents[3]
SEED = 0
N_IMAGES = 4
COLLECTION = "demo"
GOLDEN_DIR = Path("tests/golden")
COMMAND = "python -m kisbench.models.testing.golden --out tests/golden"
META = "golden.json"

TEXTS = [
    "a dog on the grass",
    # capitals and punctuation: each tokenizer's cleaning and lower-casing
    "Orange sunset above Prague castle, river canal in the front!",
    # non-ASCII: accent stripping and unknown characters, which tokenizer releases change
    "Café na náměstí v noci – neon, déšť a 北京",
    # longer than every context (ALIGN's 512 WordPiece tokens, CLIP's 77, SigLIP's 64,
    # BLIP-2's 35, LAVIS' 50 words): truncation is part of what is pinned
    " ".join(
        ["Kingfishers wait patiently above murky ponds, then plunge; ripples spread across."] * 8
    ),
]
# A multi-vector image array larger than this many values keeps only a few evenly spread
# queries (LAVIS ITC: 4 x 32 x 256 would be 128 KB); ``scores`` still covers every query.
MAX_STORED = 4096

# The params.yaml entries of the tiny models, with data/models as ``{root}``
# (tests/test_golden.py checks that they agree with params.yaml).
ENTRIES: dict[str, dict[str, Any]] = {
    "tiny_clip": {"family": "open_clip", "model": "local-dir:{root}/tiny_clip"},
    "tiny_siglip": {"family": "open_clip", "model": "local-dir:{root}/tiny_siglip"},
    "tiny_siglip2": {"family": "open_clip", "model": "local-dir:{root}/tiny_siglip2"},
    "tiny_pe_core": {"family": "open_clip", "model": "local-dir:{root}/tiny_pe_core"},
    "tiny_mobileclip2": {"family": "open_clip", "model": "local-dir:{root}/tiny_mobileclip2"},
    "tiny_align": {"family": "align", "source": "{root}/tiny_align"},
    "tiny_blip2_hf": {"family": "blip2_hf", "source": "{root}/tiny_blip2_hf", "context_length": 35},
    "tiny_blip2": {"family": "blip2_lavis", "mode": "thesis", "local_dir": "{root}/tiny_blip2"},
    "tiny_blip2_itc": {"family": "blip2_lavis", "mode": "itc", "local_dir": "{root}/tiny_blip2"},
}
# The builder (builders.TINY_MODELS name) each key loads; one build serves both LAVIS modes.
BUILDER = {key: key for key in ENTRIES} | {"tiny_blip2_itc": "tiny_blip2"}
LAVIS_BUILD = "tiny_blip2"  # built and run in .venv-lavis
MAIN_ENV_KEYS = [k for k in ENTRIES if BUILDER[k] != LAVIS_BUILD]
LAVIS_KEYS = [k for k in ENTRIES if BUILDER[k] == LAVIS_BUILD]

# Distributions whose code decides the numbers in the main environment (LAVIS' worker
# reports its own virtualenv's versions through the model's provenance).
LIBRARIES = (
    "torch",
    "torchvision",
    "open_clip_torch",
    "timm",
    "transformers",
    "tokenizers",
    "safetensors",
    "pillow",
    "numpy",
)


def entry(key: str, root: Path) -> dict[str, Any]:
    """The params entry of tiny model ``key`` with its weights under ``root``."""
    return {k: v.format(root=root) if isinstance(v, str) else v for k, v in ENTRIES[key].items()}


def demo_images(folder: Path | None = None, n: int = N_IMAGES) -> list[Path]:
    """The first ``n`` images of ``folder`` (default: the demo collection's) by id (file
    stem)."""
    folder = REPO / images_dir(COLLECTION) if folder is None else Path(folder)
    paths = sorted((p for p in folder.iterdir() if p.is_file()), key=lambda p: p.stem)
    if len(paths) < n:
        raise FileNotFoundError(f"{folder} has {len(paths)} images; the goldens need {n}")
    return paths[:n]


def build(root: Path, keys: Sequence[str]) -> None:
    """Build, with :data:`SEED`, the tiny models that ``keys`` load, under ``root``."""
    from kisbench.models.testing.builders import make_all

    make_all(root, seed=SEED, names=sorted({BUILDER[k] for k in keys}))


def embed(model: Any, paths: Sequence[Path], texts: Sequence[str]) -> dict[str, np.ndarray]:
    """The golden arrays of ``model`` (an EmbeddingModel): its own preprocessing on the
    decoded pictures, one batch of images, one of texts."""
    import torch

    from kisbench.data.images import load_rgb

    pixels = torch.stack([model.image_transform(load_rgb(Path(p))) for p in paths])
    flat = pixels.double().flatten(2)  # (N, 3, H*W); float64 so the stats add no noise
    stats = torch.stack([flat.mean(-1), flat.std(-1)], dim=-1).float()
    with torch.inference_mode():
        images = model.encode_images(pixels)
        text_vectors = model.encode_texts(list(texts))
    return {
        "images": np.asarray(images, dtype=np.float32),
        "texts": np.asarray(text_vectors, dtype=np.float32),
        "truncated": np.asarray(model.truncated(list(texts)), dtype=bool),
        "pixel_stats": stats.numpy(),
    }


def to_golden(full: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """What is stored of :func:`embed`'s arrays: all of them, plus ``images_shape`` (the
    full shape), ``scores`` (every image vector's cosine with every text: (N, T) or
    (N, Q, T)) and, for a multi-vector model, ``image_queries`` (the query indices kept in
    ``images``: all, unless that would exceed :data:`MAX_STORED` values)."""
    images, texts = full["images"], full["texts"]
    golden = dict(full)
    golden["images_shape"] = np.asarray(images.shape, dtype=np.int64)
    golden["scores"] = (images @ texts.T).astype(np.float32)
    if images.ndim == 3:
        n, q, d = images.shape
        keep = max(1, MAX_STORED // (n * d))
        queries = np.unique(np.linspace(0, q - 1, min(q, keep)).round().astype(np.int64))
        golden["image_queries"] = queries
        golden["images"] = np.ascontiguousarray(images[:, queries])
    return golden


def compute(
    root: Path, keys: Sequence[str], paths: Sequence[Path]
) -> tuple[dict[str, dict[str, np.ndarray]], dict[str, str]]:
    """Golden arrays (of ``paths`` and :data:`TEXTS`) and the producing library (from the
    provenance) of each model in ``keys``, built beforehand under ``root`` by
    :func:`build`."""
    from kisbench.models import load_model

    arrays, libraries = {}, {}
    for key in keys:
        model = load_model(key, entry(key, root), device="cpu", precision="fp32")
        arrays[key] = to_golden(embed(model, paths, TEXTS))
        libraries[key] = str(model.provenance().get("library", ""))
        del model  # ends a LAVIS worker process now rather than at exit
    return arrays, libraries


def versions() -> dict[str, str]:
    """The installed versions of :data:`LIBRARIES` (and Python)."""
    found = {"python": platform.python_version()}
    for name in LIBRARIES:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = "not installed"
    return found


def load(folder: Path, key: str) -> dict[str, np.ndarray]:
    """The saved golden arrays of ``key`` (no pickles)."""
    with np.load(Path(folder) / f"{key}.npz", allow_pickle=False) as saved:
        return {name: saved[name] for name in saved.files}


def read_meta(folder: Path) -> dict[str, Any]:
    return json.loads((Path(folder) / META).read_text(encoding="utf-8"))


def differences(
    expected: dict[str, np.ndarray], actual: dict[str, np.ndarray], atol: float
) -> list[str]:
    """How ``actual`` (:func:`to_golden` arrays) departs from the saved ``expected``: one
    line per array whose names, shape or values differ (floats by more than ``atol``,
    anything else at all); empty when they agree."""
    found = []
    if set(expected) != set(actual):
        found.append(f"arrays {sorted(actual)}, golden has {sorted(expected)}")
    for name in sorted(set(expected) & set(actual)):
        want, got = expected[name], actual[name]
        if want.shape != got.shape:
            found.append(f"{name}: shape {got.shape}, golden {want.shape}")
        elif want.dtype.kind == "f" and not np.isfinite(got).all():
            found.append(f"{name}: {np.count_nonzero(~np.isfinite(got))} non-finite values")
        elif want.dtype.kind == "f" and got.size:
            diff = np.abs(got.astype(np.float64) - want.astype(np.float64))
            if diff.max() > atol:
                worst = np.unravel_index(np.argmax(diff), diff.shape)
                found.append(
                    f"{name}: max abs difference {diff.max():.3g} > {atol:g} "
                    f"(at {tuple(int(i) for i in worst)}: {got[worst]:.7g}, "
                    f"golden {want[worst]:.7g})"
                )
        elif not np.array_equal(want, got):
            found.append(f"{name}: {got.tolist()}, golden {want.tolist()}")
    return found


def save(
    out: Path,
    arrays: dict[str, dict[str, np.ndarray]],
    libraries: dict[str, str],
    paths: Sequence[Path],
) -> list[Path]:
    """Write ``<key>.npz`` for each model, and merge them into ``golden.json`` and
    ``README.md`` (models not regenerated keep their records)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    meta_path = out / META
    old = json.loads(meta_path.read_text(encoding="utf-8")) if meta_path.exists() else {}
    env = versions()
    records = dict(old.get("models", {}))
    written = []
    for key, golden in arrays.items():
        written.append(out / f"{key}.npz")
        np.savez_compressed(written[-1], **golden)
        records[key] = {
            "builder": BUILDER[key],
            "entry": ENTRIES[key],
            "images_shape": [int(n) for n in golden["images_shape"]],
            "texts_shape": list(golden["texts"].shape),
            # LAVIS runs in its own virtualenv: its versions are the worker's, not ours
            "libraries": libraries[key] if key in LAVIS_KEYS else env,
        }
    meta = {
        "seed": SEED,
        "collection": COLLECTION,
        "image_ids": [Path(p).stem for p in paths],
        "texts": list(TEXTS),
        "command": COMMAND,
        "device": "cpu",
        "precision": "fp32",
        "models": {k: records[k] for k in sorted(records)},
    }
    meta_path.write_text(json.dumps(meta, indent=2, ensure_ascii=False) + "\n", "utf-8")
    (out / "README.md").write_text(readme(meta), encoding="utf-8")
    return [*written, meta_path, out / "README.md"]


def readme(meta: dict[str, Any]) -> str:
    lines = [
        "# Golden embeddings of the tiny models",
        "",
        f"Written by `{meta['command']}`; do not edit.",
        "Checked by `tests/test_golden.py`, which rebuilds every tiny model (builders in",
        f"`kisbench/models/testing/builders.py`, seed {meta['seed']}), embeds the same inputs",
        "on the CPU in fp32 and compares.",
        "",
        "A failure there means that a library upgrade (or a code change) changed what a",
        "model computes. If that is intended, regenerate the files with the command above",
        "and say so in the commit message; otherwise find the change.",
        "",
        f"- images: {', '.join(meta['image_ids'])} of the `{meta['collection']}` collection",
        "  (the first by id), each through the model's own `image_transform`",
        "- texts:",
        *[f"  {i}. {_shown(t)}" for i, t in enumerate(meta["texts"], 1)],
        "- arrays per `<model>.npz`: `images`, `texts` (L2-normalised float32), `scores`",
        "  (their cosines, every query), `truncated`, `pixel_stats` (per-channel mean and std",
        "  of the preprocessed pixels), `images_shape`; multi-vector models: `image_queries`",
        f"  (the queries kept in `images`, evenly spread, at most {MAX_STORED} values)",
        "",
        "| model | builder | images | texts | libraries |",
        "|---|---|---|---|---|",
    ]
    for key, rec in meta["models"].items():
        libs = rec["libraries"]
        if isinstance(libs, dict):
            libs = ", ".join(f"{k} {v}" for k, v in libs.items())
        lines.append(
            f"| {key} | {rec['builder']} | {tuple(rec['images_shape'])} | "
            f"{tuple(rec['texts_shape'])} | {libs} |"
        )
    return "\n".join(lines) + "\n"


def _shown(text: str, width: int = 80) -> str:
    """A text for the README: JSON-quoted, long ones cut (golden.json has them whole)."""
    if len(text) <= width:
        return json.dumps(text, ensure_ascii=False)
    return f"{json.dumps(text[:width], ensure_ascii=False)}... ({len(text)} characters)"


app = command_line()


@app.command()
@clear_errors
def main(
    out: Path = typer.Option(GOLDEN_DIR, help="Folder to write the goldens to."),
    model: list[str] = typer.Option(
        None,
        metavar="KEY",
        help=f"Only these tiny models (repeatable); default all: {', '.join(ENTRIES)}.",
    ),
) -> None:
    """Rebuild the tiny models (fixed seed), embed the golden images and texts on the CPU
    in fp32, and write OUT/<model>.npz, OUT/golden.json and OUT/README.md.

    The LAVIS models need .venv-lavis (from `make setup`). Regenerate only when a change
    of what a model computes is intended, and say so in the commit.
    """
    quiet_libraries()
    keys = model or list(ENTRIES)
    unknown = sorted(set(keys) - set(ENTRIES))
    if unknown:
        raise typer.BadParameter(f"unknown tiny models {unknown}; known: {', '.join(ENTRIES)}")
    paths = demo_images()
    with tempfile.TemporaryDirectory(prefix="kisbench-golden-") as tmp:
        build(Path(tmp), keys)
        arrays, libraries = compute(Path(tmp), keys, paths)
    for path in save(out, arrays, libraries, paths):
        typer.echo(f"wrote {path}")


if __name__ == "__main__":
    app()
