"""The embedding loop: images decoded in DataLoader workers, encoded in batches, streamed
to a memory-mapped ``.npy`` so that memory does not grow with the collection."""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from kisbench import store
from kisbench.images import load_rgb
from kisbench.models.base import EmbeddingModel


class ImageFiles(Dataset):
    """Decodes and preprocesses one image file per item, in a worker process."""

    def __init__(self, paths: Sequence[Path], transform: Any) -> None:
        self.paths = list(paths)
        self.transform = transform

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> tuple[int, torch.Tensor]:
        path = self.paths[index]
        try:
            return index, self.transform(load_rgb(path))
        except Exception as err:  # noqa: BLE001 - re-raised with the file's name
            raise RuntimeError(f"cannot read image {path}: {err}") from err


def default_workers() -> int:
    return max(1, min(16, (os.cpu_count() or 2) - 1))


def embed_images(
    model: EmbeddingModel,
    ids: Sequence[str],
    paths: Sequence[Path],
    out: Path,
    *,
    batch_size: int = 64,
    workers: int | None = None,
    store_dtype: str = "float32",
    progress: bool = True,
) -> dict[str, Any]:
    """Embed every image into the embedding set ``out`` (written atomically); return meta."""
    if len(ids) != len(paths):
        raise ValueError("ids and paths differ in length")
    workers = default_workers() if workers is None else workers
    device = getattr(model, "device", torch.device("cpu"))
    loader = DataLoader(
        ImageFiles(paths, model.image_transform),
        batch_size=batch_size,
        num_workers=workers,
        pin_memory=device.type == "cuda",
        persistent_workers=False,
    )
    out = Path(out)
    tmp = out.with_name(f".{out.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    vectors: np.ndarray | None = None
    start = time.perf_counter()
    with tqdm(
        total=len(paths), unit="img", desc=f"embed {model.spec.key}", disable=not progress
    ) as bar:
        for index, pixels in loader:
            emb = model.encode_images(pixels)
            if vectors is None:
                vectors = np.lib.format.open_memmap(
                    tmp / store.EMBEDDINGS,
                    mode="w+",
                    dtype=store_dtype,
                    shape=(len(paths), *emb.shape[1:]),
                )
            vectors[index.numpy()] = emb
            bar.update(len(index))
    seconds = time.perf_counter() - start
    assert vectors is not None  # list_images never returns an empty collection
    vectors.flush()
    del vectors
    store.write_ids(tmp / store.IDS, list(ids))
    meta = {
        **model.provenance(),
        "kind": "images",
        "count": len(ids),
        "store_dtype": store_dtype,
        "batch_size": batch_size,
        "workers": workers,
        "seconds": round(seconds, 3),
        "images_per_s": round(len(ids) / seconds, 2) if seconds > 0 else None,
    }
    store.write_json(tmp / store.META, meta)
    store.commit(tmp, out)
    return meta


def embed_texts(model: EmbeddingModel, texts: Sequence[str], batch_size: int = 256) -> np.ndarray:
    parts = [
        model.encode_texts(texts[i : i + batch_size]) for i in range(0, len(texts), batch_size)
    ]
    return np.concatenate(parts)
