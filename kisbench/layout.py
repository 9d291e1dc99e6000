"""Where the inputs and the embedding side live, relative to the repository root: images,
labels, embeddings, code keys, tiny models.

The paths here and in dvc.yaml are the same conventions; change them together. Every embed
stage imports this module, so it holds no path of a later stage: those live next to the
layer that writes them (`kisbench.evaluation.layout`, `kisbench.reset.layout`,
`kisbench.report.layout`), and adding one re-embeds nothing.
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


# Outside data/features, which the aggregating stages (fusion, simulate) depend on whole: a
# killed run's chunks must not change their inputs. Kept in git by its README, so that the
# tidy stage's dependency on it exists.
PARTIAL = DATA / "partial"


def partial_dir(model: str, collection: str) -> Path:
    """Finished chunks of an unfinished embed-images run, for the next run to resume from.
    Outside the stage's output, which DVC deletes before it runs the stage."""
    return PARTIAL / f"{model}-{collection}"


def queries_dir(model: str, collection: str) -> Path:
    """Holds one embedding set per labelset: ``<queries_dir>/<labelset>/``."""
    return DATA / "queries" / model / collection


def sentences_dir(model: str, collection: str) -> Path:
    """Per labelset, the embeddings of every label's sentences or temporal sub-queries:
    ``<sentences_dir>/<labelset>/``, ids ``<query id>#<part>`` (the embed-sentences stage)."""
    return DATA / "sentences" / model / collection


def budgets_dir(model: str, collection: str) -> Path:
    """Per labelset and token budget, the queries cut to that budget:
    ``<budgets_dir>/<labelset>/<budget>/`` (the embed-budgets stage)."""
    return DATA / "budgets" / model / collection


TINY_MODELS = DATA / "models"
