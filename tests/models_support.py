"""Shared by the tests/test_models_*.py files: a fabricated Hugging Face cache, test
images, an independent cosine."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np
from PIL import Image


def images(n: int, seed: int = 0) -> list[Image.Image]:
    """Random RGB pictures of varied sizes (the transforms resize them)."""
    rng = np.random.default_rng(seed)
    sizes = [(40 + 7 * i, 30 + 5 * (i % 3)) for i in range(n)]
    return [Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)) for w, h in sizes]


def fake_hub_repo(
    cache: Path,
    repo_id: str,
    files: dict[str, Path],
    commit: str,
    absent: tuple[str, ...] = ("config.json",),
) -> Path:
    """Lay ``files`` out as the Hugging Face cache does: content-addressed blobs, a
    snapshot folder per commit with links to them, ``refs/main`` -> commit, and the
    markers of files the hub said it does not have (``absent``), which a download records."""
    base = Path(cache) / f"models--{repo_id.replace('/', '--')}"
    no_exist = base / ".no_exist" / commit
    no_exist.mkdir(parents=True, exist_ok=True)
    for name in absent:
        if name not in files:
            (no_exist / name).touch()
    snapshot = base / "snapshots" / commit
    snapshot.mkdir(parents=True, exist_ok=True)
    for name, src in files.items():
        data = Path(src).read_bytes()
        blob = base / "blobs" / hashlib.sha256(data).hexdigest()
        blob.parent.mkdir(parents=True, exist_ok=True)
        blob.write_bytes(data)
        link = snapshot / name
        link.unlink(missing_ok=True)
        link.symlink_to(os.path.relpath(blob, link.parent))
    (base / "refs").mkdir(exist_ok=True)
    (base / "refs" / "main").write_text(commit)
    return snapshot


def cosine_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise cosine similarity, computed here without the code under test."""
    a = a.reshape(len(a), -1).astype(np.float64)
    b = b.reshape(len(b), -1).astype(np.float64)
    return (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
