"""Where the rank, evaluate, fusion and simulate stages write, relative to the repository root.

The paths here and in dvc.yaml are the same conventions; change them together.
"""

from __future__ import annotations

from pathlib import Path

from kisbench.layout import DATA


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


METRICS = Path("metrics")

SIMULATION = DATA / "simulation"


def simulation_path(collection: str, labelset: str, root: Path = SIMULATION) -> Path:
    """Per query and simulated user, the display that held the target (the simulate stage)."""
    return Path(root) / collection / f"{labelset}.csv"


SIMULATION_CURVES = Path("plots") / "simulation"


def simulation_curve_name(collection: str, labelset: str, user: str) -> str:
    """``demo-short-ideal.csv``: keys are [a-z0-9_], so '-' splits them."""
    return f"{collection}-{labelset}-{user}.csv"


STRATEGIES = DATA / "strategies"


def strategy_ranks_dir(model: str, collection: str, strategy: str | None = None) -> Path:
    """The rank-sentences stage's output; ``<it>/<strategy>/`` is laid out like
    :func:`ranks_dir` (``<labelset>.csv``, ``RANKS_INFO``), the rank set ``<model>~<strategy>``."""
    folder = STRATEGIES / model / collection
    return folder / strategy if strategy else folder


# The length stage's files in METRICS (docs/evaluation.md#query-length).
LENGTH_SUMMARY = "length.json"
LENGTH_QUERIES = "length_queries.csv"
