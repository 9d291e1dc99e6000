"""The feature store: embeddings on disk as ``.npy`` + ``ids.txt`` + ``meta.json``.

One folder holds one embedding set (a model's view of a collection, or of one labelset's
queries). Rows of ``embeddings.npy`` follow the ids in ``ids.txt``. A set is either
single-vector, shape ``(N, D)``, or multi-vector, shape ``(N, Q, D)`` (BLIP-2 keeps all
Q-Former query vectors of an image). No pickle: ``.npy`` is plain data and memory-maps.
An image set may also hold ``skipped.csv`` (``id,path,reason``): images of the collection
that the embed stage could not read and left out (``embed.on_unreadable: skip``).
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from kisbench import files

EMBEDDINGS = "embeddings.npy"
IDS = "ids.txt"
META = "meta.json"
SKIPPED = "skipped.csv"
SKIPPED_COLUMNS = ("id", "path", "reason")


@dataclass(frozen=True)
class EmbeddingSet:
    ids: list[str]
    vectors: np.ndarray
    meta: dict[str, Any]

    @property
    def multi_vector(self) -> bool:
        return self.vectors.ndim == 3


def write_ids(path: Path, ids: list[str]) -> None:
    bad = [i for i in ids if not i or "\n" in i or i != i.strip()]
    if bad:
        raise ValueError(f"ids must be non-empty single-line strings; bad: {bad[:5]}")
    path.write_text("".join(f"{i}\n" for i in ids), encoding="utf-8")


def read_ids(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").splitlines()


def write_skipped(path: Path, rows: list[tuple[str, str, str]]) -> None:
    """``skipped.csv``: one ``(id, path, reason)`` row per image left out."""
    with open(path, "w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(SKIPPED_COLUMNS)
        writer.writerows(rows)


def read_skipped(folder: Path) -> dict[str, str]:
    """Image id -> reason for the images an embedding set left out (none if no file)."""
    path = Path(folder) / SKIPPED
    if not path.is_file():
        return {}
    with open(path, encoding="utf-8", newline="") as f:
        return {row["id"]: row["reason"] for row in csv.DictReader(f)}


def save(folder: Path, ids: list[str], vectors: np.ndarray, meta: dict[str, Any]) -> None:
    """Write a complete embedding set into ``folder`` atomically.

    Files go to a sibling temp folder first, which then replaces ``folder``: an interrupted
    write never leaves a folder that looks complete.
    """
    if len(ids) != len(vectors):
        raise ValueError(f"{len(ids)} ids but {len(vectors)} embedding rows")
    if len(set(ids)) != len(ids):
        raise ValueError("duplicate ids in an embedding set")
    folder = Path(folder)
    tmp = files.temp_dir(folder)
    np.save(tmp / EMBEDDINGS, vectors)
    write_ids(tmp / IDS, ids)
    files.write_json(tmp / META, meta)
    files.commit_dir(tmp, folder)


def load(folder: Path, mmap: bool = True) -> EmbeddingSet:
    """Read an embedding set; vectors are memory-mapped unless ``mmap`` is False."""
    folder = Path(folder)
    missing = [n for n in (EMBEDDINGS, IDS, META) if not (folder / n).is_file()]
    if missing:
        raise FileNotFoundError(
            f"{folder} is not a complete embedding set (missing {', '.join(missing)}); "
            "run its embed stage (`dvc repro`) or fetch it (`dvc pull`)"
        )
    vectors = np.load(folder / EMBEDDINGS, mmap_mode="r" if mmap else None, allow_pickle=False)
    ids = read_ids(folder / IDS)
    if len(ids) != len(vectors):
        raise ValueError(f"{folder}: {len(ids)} ids but {len(vectors)} embedding rows")
    meta = json.loads((folder / META).read_text(encoding="utf-8"))
    return EmbeddingSet(ids=ids, vectors=vectors, meta=meta)
