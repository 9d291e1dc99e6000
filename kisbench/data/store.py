"""The feature store: embeddings on disk as ``.npy`` + ``ids.txt`` + ``meta.json``.

One folder holds one embedding set (a model's view of a collection, or of one labelset's
queries). Rows of ``embeddings.npy`` follow the ids in ``ids.txt``. No pickle: ``.npy`` is
plain data and memory-maps.

How many vectors an image has, and how a query scores them, is the model's declaration
(:class:`VectorLayout`), recorded in ``meta.json`` as ``"vectors": {"per_image": "one",
"scoring": "cosine"}`` (shape ``(N, D)``) or ``{"per_image": "several", "scoring":
"max_over_vectors"}`` (shape ``(N, Q, D)``: BLIP-2 keeps all Q-Former query vectors of an
image, and an image scores its best one). The shape is checked against the declaration on
save and load. A query set (``"kind": "queries"``) carries its model's declaration too, as
part of the provenance, but its rows are always one vector per text. Sets written before
the declaration existed have no ``"vectors"``: they are read by the legacy rule, the layout
that the array's shape implies (:func:`legacy_layout`).
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
from kisbench.errors import InputError

EMBEDDINGS = "embeddings.npy"
IDS = "ids.txt"
META = "meta.json"
SKIPPED = "skipped.csv"
SKIPPED_COLUMNS = ("id", "path", "reason")


# (per_image, scoring) pairs that the ranking implements.
_SUPPORTED = (("one", "cosine"), ("several", "max_over_vectors"))


@dataclass(frozen=True)
class VectorLayout:
    """What a model's image embedding is: ``per_image`` ``"one"`` vector, or ``"several"``;
    and how a query vector scores an image: ``"cosine"`` (the one vector's), or
    ``"max_over_vectors"`` (the best of its vectors' cosines, BLIP-2's ITC).

    Declared by the model (``EmbeddingModel.vectors``) and recorded in ``meta.json``, so that
    no reader has to guess it from an array's shape. Only the two combinations that the
    ranking implements exist (:data:`ONE_VECTOR`, :data:`SEVERAL_VECTORS`).
    """

    per_image: str
    scoring: str

    def __post_init__(self) -> None:
        if (self.per_image, self.scoring) not in _SUPPORTED:
            raise ValueError(
                f"unsupported vector layout per_image={self.per_image!r}, "
                f"scoring={self.scoring!r}; known: " + ", ".join(f"{p}/{s}" for p, s in _SUPPORTED)
            )

    @property
    def several(self) -> bool:
        """Several vectors per image (rows of shape ``(Q, D)``)?"""
        return self.per_image == "several"

    @property
    def ndim(self) -> int:
        """The dimensions of an array of N images in this layout: (N, D) or (N, Q, D)."""
        return 3 if self.several else 2

    def to_meta(self) -> dict[str, str]:
        """The ``meta.json`` form: ``{"per_image": ..., "scoring": ...}``."""
        return {"per_image": self.per_image, "scoring": self.scoring}

    @classmethod
    def from_meta(cls, value: Any, where: str = "embedding set") -> VectorLayout:
        """The layout that a ``meta.json`` ``"vectors"`` entry declares."""
        if not isinstance(value, dict) or set(value) != {"per_image", "scoring"}:
            raise InputError(
                f"{where}: meta.json 'vectors' must be {{'per_image': ..., 'scoring': ...}}, "
                f"got {value!r}"
            )
        try:
            return cls(value["per_image"], value["scoring"])
        except ValueError as err:
            raise InputError(f"{where}: meta.json 'vectors': {err}") from err

    def matches(self, shape: tuple[int, ...]) -> bool:
        """Can an array of ``shape`` hold images in this layout (``(N, D)`` for one vector,
        ``(N, Q, D)`` for several)?"""
        return len(shape) == self.ndim

    def check(self, shape: tuple[int, ...], where: str = "embeddings") -> None:
        """Raise :class:`InputError`, naming ``where``, unless :meth:`matches`."""
        if not self.matches(shape):
            want = "(N, Q, D)" if self.several else "(N, D)"
            raise InputError(
                f"{where}: the model declares {self.per_image} vector"
                f"{'s' if self.several else ''} per image (scoring {self.scoring}), so "
                f"embeddings of shape {want}, but the array "
                f"has shape {tuple(shape)}; re-run its embed stage (`dvc repro`)"
            )


ONE_VECTOR = VectorLayout("one", "cosine")
SEVERAL_VECTORS = VectorLayout("several", "max_over_vectors")


def legacy_layout(ndim: int, where: str = "embeddings") -> VectorLayout:
    """The legacy rule, for sets written before ``meta.json`` declared ``"vectors"``: a 2-D
    array is one vector per image, a 3-D array several, scored by the best (the only
    multi-vector models then were BLIP-2's, which score so)."""
    if ndim == 2:
        return ONE_VECTOR
    if ndim == 3:
        return SEVERAL_VECTORS
    raise InputError(f"{where}: embeddings must be (N, D) or (N, Q, D), got {ndim} dimensions")


def rows_layout(
    meta: dict[str, Any], shape: tuple[int, ...], where: str = "embedding set"
) -> VectorLayout:
    """The layout of a set's rows from its ``meta.json``, checked against ``shape`` (the
    array's): the declared ``"vectors"`` for images; one vector per text for queries,
    whatever the model does with images; the legacy rule when nothing is declared."""
    declared = meta.get("vectors")
    if meta.get("kind") == "queries":
        if declared is not None:
            VectorLayout.from_meta(declared, where)  # a malformed record is still an error
        if len(shape) != 2:
            raise InputError(
                f"{where}: a query set holds one vector per text, shape (M, D), but the array "
                f"has shape {tuple(shape)}; re-run its embed-queries stage (`dvc repro`)"
            )
        return ONE_VECTOR
    if declared is None:
        return legacy_layout(len(shape), where)
    layout = VectorLayout.from_meta(declared, where)
    layout.check(shape, where)
    return layout


@dataclass(frozen=True)
class EmbeddingSet:
    ids: list[str]
    vectors: np.ndarray
    meta: dict[str, Any]

    @property
    def layout(self) -> VectorLayout:
        """How this set's rows are laid out: declared in its meta (see :func:`rows_layout`)."""
        return rows_layout(self.meta, tuple(self.vectors.shape))

    @property
    def multi_vector(self) -> bool:
        return self.layout.several


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
    rows_layout(meta, tuple(vectors.shape), str(folder))  # never write a set that load refuses
    tmp = files.temp_dir(folder)
    np.save(tmp / EMBEDDINGS, vectors)
    write_ids(tmp / IDS, ids)
    files.write_json(tmp / META, meta)
    files.commit_dir(tmp, folder)


def load(folder: Path, mmap: bool = True) -> EmbeddingSet:
    """Read an embedding set; vectors are memory-mapped unless ``mmap`` is False.

    Raises :class:`InputError`, naming the folder, when the array's shape disagrees with
    the layout that ``meta.json`` declares."""
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
    rows_layout(meta, tuple(vectors.shape), str(folder))  # the shape agrees with the declaration
    return EmbeddingSet(ids=ids, vectors=vectors, meta=meta)
