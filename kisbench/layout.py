"""Where every stage reads and writes, relative to the repository root.

The paths here and in dvc.yaml are the same conventions; change them together.
"""

from __future__ import annotations

from pathlib import Path

DATA = Path("data")


def images_dir(collection: str) -> Path:
    return DATA / "collections" / collection / "images"


def labels_path(collection: str) -> Path:
    return Path("labels") / f"{collection}.csv"


CODE_KEYS = DATA / "code"


def code_key_path(model: str) -> Path:
    """A model's cache key (the code-keys stage): family, code hashes, locked weights."""
    return CODE_KEYS / f"{model}.json"


def features_dir(model: str, collection: str) -> Path:
    return DATA / "features" / model / collection


def partial_dir(model: str, collection: str) -> Path:
    """Finished chunks of an unfinished embed-images run, for the next run to resume from.
    Outside the stage's output, which DVC deletes before it runs the stage."""
    return DATA / "features" / ".partial" / f"{model}-{collection}"


def queries_dir(model: str, collection: str) -> Path:
    """Holds one embedding set per labelset: ``<queries_dir>/<labelset>/``."""
    return DATA / "queries" / model / collection


def ranks_dir(model: str, collection: str) -> Path:
    """Holds ``<labelset>.csv`` for every labelset, and ``RANKS_INFO``."""
    return DATA / "ranks" / model / collection


RANKS_INFO = "info.json"

FUSION = DATA / "fusion"


def fusion_path(collection: str, labelset: str, root: Path = FUSION) -> Path:
    """Per-query ranks of every fused retriever (and each model alone, and the oracle)."""
    return Path(root) / collection / f"{labelset}.csv"


CURVES = Path("plots") / "cumulative"


def curve_name(collection: str, labelset: str) -> str:
    """File name of a cumulative curve table; keys are [a-z0-9_], so '-' splits them."""
    return f"{collection}-{labelset}.csv"


def parse_curve_name(path: Path) -> tuple[str, str]:
    collection, _, labelset = path.stem.partition("-")
    return collection, labelset


TINY_MODELS = DATA / "models"
METRICS = Path("metrics")
FIGURES = Path("plots") / "figures"


def reset_distances_dir(model: str, collection: str) -> Path:
    """One model's RESET triplet distances (reset-distances stage): distances.csv, info.json."""
    return RESET_DISTANCES / model / collection


RESET_DISTANCES = DATA / "reset_distances"
RESET_EXTENDED = DATA / "reset_results" / "triplets_extended.csv"
RESET_TABLE = Path("plots") / "reset" / "consistency.csv"
RESET_FIGURE = FIGURES / "reset_consistency.png"
REPORT = Path("reports") / "report.md"


def figure_name(kind: str, collection: str, labelset: str) -> str:
    """``pairs/demo-short.png``: one figure of a kind per collection and labelset, in a
    folder per kind (relative to ``FIGURES``)."""
    return f"{kind}/{collection}-{labelset}.png"
