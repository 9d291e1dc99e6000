"""The image embedding loop: resumable, shardable across processes, streamed to disk.

The image list is cut into chunks of ``chunk_size`` images (a whole number of batches).
Each finished chunk is saved at once in a *partial* folder outside the stage's output
(DVC deletes a stage's output folder before running it): ``<partial>/<key>/``, where the
key hashes everything the embeddings depend on (model, weights, precision, device type,
decoding path, batch and chunk size, store dtype, ``max_pixels``, and the image list with
every file's size and modification time), so a partial made from other inputs is never
reused. A run killed at any point loses at most the chunk it was embedding; the next run
embeds only the missing chunks. Batches are the same whichever run or process embeds a
chunk, so the result is identical to an uninterrupted single-process run.

Under ``torchrun`` each process embeds every WORLD-th missing chunk; the first process
then waits for the others and merges the chunks, in order, into the output folder (written
atomically), streaming them so that memory does not grow with the collection.

Images that the decoding rules refuse (:mod:`kisbench.data.images`) are collected with their
reasons over the whole run. ``on_unreadable: fail`` (default) then fails with the full
list, keeping every finished chunk; ``skip`` leaves them out of the embeddings and lists
them in ``skipped.csv``. The policy is not part of the key: switching to ``skip`` after a
failed run reuses all the work.
"""

from __future__ import annotations

import contextlib
import csv
import ctypes
import hashlib
import json
import os
import shutil
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from kisbench import files
from kisbench.config import parse_section
from kisbench.config.embed import Embed
from kisbench.data import store
from kisbench.embedding.distributed import SINGLE, Group
from kisbench.embedding.loaders import Batch, device_batches, pil_batches
from kisbench.errors import InputError, ModelError
from kisbench.models.base import EmbeddingModel

SHOWN_FAILURES = 1000  # lines of the error message; unreadable.csv has them all


def default_workers(processes_per_node: int = 1, *, in_step: bool = False) -> int:
    """Decoding processes (or reader threads) per embedding process: the node's CPUs shared
    among its processes, at most 16; one is left for the main loop, except when decoding
    runs ``in_step`` with the model (a model on the CPU), which waits for it."""
    cpus = os.cpu_count() or 2
    spare = 0 if in_step else 1
    return max(1, min(16, cpus // max(1, processes_per_node) - spare))


# The defaults, types and checks of these options are the params `embed` section's.
_EMBED = Embed()


@dataclass(frozen=True)
class EmbedOptions:
    """The ``embed`` section of params.yaml, as far as the image loop uses it
    (:class:`kisbench.config.embed.Embed` says what each option does)."""

    batch_size: int = _EMBED.batch_size
    chunk_size: int = _EMBED.chunk_size  # rounded up to whole batches by checked()
    workers: int | None = _EMBED.workers  # None: default_workers()
    decode: str = _EMBED.decode
    draft: bool = _EMBED.draft
    draft_gap: float = _EMBED.draft_gap
    on_unreadable: str = _EMBED.on_unreadable
    max_pixels: int = _EMBED.max_pixels
    store_dtype: str = _EMBED.store_dtype

    @classmethod
    def from_params(cls, embed: Embed | Mapping[str, Any] | None) -> EmbedOptions:
        """Options from the params ``embed`` section, typed or as YAML reads it (checked)."""
        if not isinstance(embed, Embed):
            embed = parse_section("embed", embed)
        return cls(**{f.name: getattr(embed, f.name) for f in fields(cls)}).checked()

    def checked(self) -> EmbedOptions:
        """Checked as params.yaml's embed section is: options may also come from code."""
        parse_section("embed", {f.name: getattr(self, f.name) for f in fields(self)})
        chunk = -(-self.chunk_size // self.batch_size) * self.batch_size
        return replace(self, chunk_size=chunk)


@dataclass(frozen=True)
class _Chunk:
    index: int
    start: int
    stop: int

    @property
    def name(self) -> str:
        return f"chunk-{self.index:07d}"


def _chunks(n: int, size: int) -> list[_Chunk]:
    return [_Chunk(i, s, min(n, s + size)) for i, s in enumerate(range(0, n, size))]


def resolve_decode(model: EmbeddingModel, decode: str, device: torch.device) -> str:
    """The decoding path: ``device`` (GPU decode and preprocessing) or ``pil``."""
    spec = model.pixel_spec()
    if decode == "auto":
        return "device" if device.type == "cuda" and spec is not None else "pil"
    if decode == "device" and spec is None:
        raise InputError(
            f"model {model.spec.key!r}: its image preprocessing is not a plain resize, crop "
            "and normalise, so embed.decode: device cannot reproduce it; use auto or pil"
        )
    return decode


def _images_digest(ids: Sequence[str], paths: Sequence[Path]) -> str:
    h = hashlib.sha256()
    for image_id, path in zip(ids, paths, strict=True):
        try:
            st = path.stat()
            size, mtime = st.st_size, st.st_mtime_ns
        except OSError:
            size, mtime = -1, -1
        h.update(f"{image_id}\0{path.suffix}\0{size}\0{mtime}\n".encode())
    return h.hexdigest()


def partial_key(
    model: EmbeddingModel,
    ids: Sequence[str],
    paths: Sequence[Path],
    options: EmbedOptions,
    decode: str,
    device: torch.device,
) -> tuple[str, dict[str, Any]]:
    """The hash that names a partial folder, and what it covers."""
    covered = {
        "model": {k: v for k, v in model.provenance().items() if k != "device"},
        "device_type": device.type,
        "decode": decode,
        "draft": options.draft and decode == "pil",
        "draft_gap": options.draft_gap if options.draft and decode == "pil" else None,
        "batch_size": options.batch_size,
        "chunk_size": options.chunk_size,
        "store_dtype": options.store_dtype,
        "max_pixels": options.max_pixels,
        "images": len(ids),
        "images_sha256": _images_digest(ids, paths),
    }
    text = json.dumps(covered, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:24], covered


def _save_chunk(
    work: Path, chunk: _Chunk, rows: list[np.ndarray], failed: dict[int, str], store_dtype: str
) -> None:
    """Write one finished chunk: rows first, then the JSON that marks it complete (each by
    temp file + rename, so a kill never leaves a chunk that looks complete but is not)."""
    vectors = np.concatenate(rows).astype(store_dtype) if rows else np.zeros(0, store_dtype)
    files.replace_file(work / f"{chunk.name}.npy", lambda f: np.save(f, vectors), binary=True)
    files.write_json(
        work / f"{chunk.name}.json",
        {
            "chunk": chunk.index,
            "start": chunk.start,
            "stop": chunk.stop,
            "rows": int(len(vectors)) if rows else 0,
            "failed": {str(k): v for k, v in sorted(failed.items())},
        },
    )


def _release_free_memory() -> None:
    """Hand freed heap memory back to the system (glibc only). Without it, buffers freed
    after each batch stay in malloc's arenas, fragmented, and the peak memory of the stage
    creeps up with the number of batches, that is, with the collection (measured:
    docs/benchmarks.md)."""
    if _LIBC is not None:
        _LIBC.malloc_trim(0)


def _load_libc() -> Any:
    try:
        libc = ctypes.CDLL("libc.so.6")
        return libc if hasattr(libc, "malloc_trim") else None
    except OSError:
        return None


_LIBC = _load_libc()


def _done(work: Path, chunk: _Chunk) -> bool:
    return (work / f"{chunk.name}.json").is_file() and (work / f"{chunk.name}.npy").is_file()


def _batches(
    model: EmbeddingModel,
    paths: Sequence[Path],
    plan: list[list[int]],
    options: EmbedOptions,
    decode: str,
    device: torch.device,
    workers: int,
    in_step: bool,
) -> Iterator[Batch]:
    spec = model.pixel_spec()
    if decode == "device":
        assert spec is not None
        return device_batches(
            paths,
            plan,
            spec,
            device=device,
            dtype=model.dtype,
            threads=workers,
            max_pixels=options.max_pixels,
        )
    draft = None
    if spec is not None and options.draft:
        draft = spec.draft_size(options.draft_gap)
    return pil_batches(
        paths,
        plan,
        model.image_transform,
        workers=workers,
        draft=draft,
        max_pixels=options.max_pixels,
        pin_memory=device.type == "cuda",
        in_step=in_step,
    )


def embed_images(
    model: EmbeddingModel,
    ids: Sequence[str],
    paths: Sequence[Path],
    out: Path,
    *,
    options: EmbedOptions | None = None,
    partial: Path | None = None,
    group: Group = SINGLE,
    progress: bool = True,
    **overrides: Any,
) -> dict[str, Any] | None:
    """Embed every image into the embedding set ``out``; return its meta (None in the
    processes of a torchrun group other than the first, which writes the result).

    ``partial`` holds the resumable chunks (default: ``.<out name>.partial`` beside ``out``);
    ``overrides`` replace fields of ``options`` (``batch_size=...``, ``workers=...``).
    Raises :class:`InputError` listing every unreadable image under ``on_unreadable: fail``.
    """
    if len(ids) != len(paths):
        raise ValueError("ids and paths differ in length")
    if not ids:
        raise InputError("no images to embed")
    opts = replace(options or EmbedOptions(), **overrides).checked()
    out = Path(out)
    paths = [p if isinstance(p, Path) else Path(p) for p in paths]
    device = torch.device(model.device)
    decode = resolve_decode(model, opts.decode, device)
    # Pillow decoding for a model on the CPU runs in step with it (loaders.pil_batches).
    in_step = decode == "pil" and device.type == "cpu"
    if opts.workers is None:
        workers = default_workers(group.local_world, in_step=in_step)
    else:
        workers = opts.workers
    key, covered = partial_key(model, ids, paths, opts, decode, device)
    root = Path(partial) if partial is not None else out.with_name(f".{out.name}.partial")
    work = root / key

    if group.first:
        if root.is_dir():  # partials of other inputs are stale: never reused, so removed
            for old in root.iterdir():
                if old.name != key:
                    shutil.rmtree(old) if old.is_dir() else old.unlink()
        work.mkdir(parents=True, exist_ok=True)
        files.write_json(work / "inputs.json", covered)
    group.barrier()
    chunks = _chunks(len(ids), opts.chunk_size)
    pending = [c for c in chunks if not _done(work, c)]
    resumed = sum(c.stop - c.start for c in chunks if c not in pending)
    group.barrier()  # everyone has listed the finished chunks before anyone adds to them

    mine = pending[group.rank :: group.world]
    plan: list[list[int]] = []
    owner: list[_Chunk] = []
    for c in mine:
        for s in range(c.start, c.stop, opts.batch_size):
            plan.append(list(range(s, min(c.stop, s + opts.batch_size))))
            owner.append(c)
    start = time.perf_counter()
    with tqdm(
        total=len(ids),
        initial=resumed,
        unit="img",
        desc=f"embed {model.spec.key}",
        disable=not (progress and group.first),
    ) as bar:
        rows: list[np.ndarray] = []
        failed: dict[int, str] = {}
        batches = (
            _batches(model, paths, plan, opts, decode, device, workers, in_step) if plan else []
        )
        for i, batch in enumerate(batches):
            if batch.pixels is not None:
                rows.append(_encoded(model, batch.pixels))
            failed.update(batch.failures)
            bar.update(len(plan[i]))
            _release_free_memory()  # about 0.03 ms
            if i + 1 == len(plan) or owner[i + 1] is not owner[i]:
                _save_chunk(work, owner[i], rows, failed, opts.store_dtype)
                rows, failed = [], {}
    group.barrier()
    if not group.first:
        return None
    seconds = time.perf_counter() - start
    computed = len(ids) - resumed
    meta = {
        **model.provenance(),
        "kind": "images",
        "decode": decode,
        "batch_size": opts.batch_size,
        "chunk_size": opts.chunk_size,
        "workers": workers,
        "processes": group.world,
        "store_dtype": opts.store_dtype,
        "max_pixels": opts.max_pixels,
        "on_unreadable": opts.on_unreadable,
        "resumed_images": resumed,
        "seconds": round(seconds, 3),
        "images_per_s": round(computed / seconds, 2) if seconds > 0 and computed else None,
    }
    meta = _merge(work, chunks, ids, paths, out, opts, meta)
    shutil.rmtree(root, ignore_errors=True)
    with contextlib.suppress(OSError):
        root.parent.rmdir()  # the shared partial folder, once empty (in git it keeps a README)
    return meta


def _encoded(model: EmbeddingModel, pixels: torch.Tensor) -> np.ndarray:
    """``model.encode_images``, checked against the layout the model declares: meta.json
    records the declaration, and a set it misdescribes would fail only when read."""
    vectors = model.encode_images(pixels)
    if not model.vectors.matches(vectors.shape):
        raise ModelError(
            f"model {model.spec.key!r} declares {model.vectors.per_image} vector(s) per image "
            f"but encoded a batch to shape {vectors.shape}: a bug in its family's adapter"
        )
    return vectors


def _merge(
    work: Path,
    chunks: list[_Chunk],
    ids: Sequence[str],
    paths: Sequence[Path],
    out: Path,
    opts: EmbedOptions,
    meta: dict[str, Any],
) -> dict[str, Any]:
    """Chunks -> the embedding set ``out`` (atomically), or the error listing every
    unreadable image. Returns the meta written."""
    infos = []
    for c in chunks:
        if not _done(work, c):
            raise RuntimeError(f"{work}: {c.name} is missing after every process finished")
        infos.append(json.loads((work / f"{c.name}.json").read_text(encoding="utf-8")))
    failed = {int(k): v for info in infos for k, v in info["failed"].items()}
    if failed:
        report = work / "unreadable.csv"
        with open(report, "w", encoding="utf-8", newline="") as f:
            csv.writer(f).writerows([("id", "path", "reason")] + _rows(failed, ids, paths))
    if failed and opts.on_unreadable == "fail":
        lines = [f"  {paths[i]}: {reason}" for i, reason in sorted(failed.items())]
        more = len(lines) - SHOWN_FAILURES
        shown = lines[:SHOWN_FAILURES] + ([f"  ... and {more} more"] if more > 0 else [])
        raise InputError(
            f"{len(failed)} of {len(ids)} images cannot be embedded:\n"
            + "\n".join(shown)
            + f"\nFull list: {report}. The other images' embeddings are kept in {work}: set "
            "embed.on_unreadable: skip to leave these images out (they are listed in the "
            "output's skipped.csv) without recomputing, or fix or remove the files."
        )
    kept = len(ids) - len(failed)
    if kept == 0:
        raise InputError(f"none of the {len(ids)} images could be read; see {work}")
    shape: tuple[int, ...] | None = None
    for c, info in zip(chunks, infos, strict=True):
        if info["rows"]:
            shape = np.load(work / f"{c.name}.npy", mmap_mode="r").shape[1:]
            break
    assert shape is not None
    tmp = files.temp_dir(out)
    dtype = np.dtype(opts.store_dtype)
    with open(tmp / store.EMBEDDINGS, "wb") as f:
        # Written as a stream, chunk by chunk: memory stays one chunk whatever the size.
        header = {"descr": np.lib.format.dtype_to_descr(dtype), "fortran_order": False}
        np.lib.format.write_array_header_1_0(f, {**header, "shape": (kept, *shape)})
        for c, info in zip(chunks, infos, strict=True):
            if info["rows"]:
                part = np.load(work / f"{c.name}.npy")
                if part.shape[1:] != shape or part.dtype != dtype:
                    raise RuntimeError(f"{work}/{c.name}.npy: shape {part.shape} or dtype differs")
                f.write(np.ascontiguousarray(part).tobytes())
    kept_ids = [image_id for i, image_id in enumerate(ids) if i not in failed]
    store.write_ids(tmp / store.IDS, kept_ids)
    store.write_skipped(tmp / store.SKIPPED, _rows(failed, ids, paths))
    meta = {**meta, "count": kept, "skipped": len(failed)}
    files.write_json(tmp / store.META, meta)
    files.commit_dir(tmp, out)
    return meta


def _rows(failed: dict[int, str], ids: Sequence[str], paths: Sequence[Path]) -> list[tuple]:
    return [(ids[i], paths[i].as_posix(), reason) for i, reason in sorted(failed.items())]


def embed_texts(model: EmbeddingModel, texts: Sequence[str], batch_size: int) -> np.ndarray:
    """The texts' embeddings in batches of ``batch_size`` (``embed.batch_size``)."""
    if not texts:
        raise ValueError("no texts to embed")
    parts = [
        model.encode_texts(texts[i : i + batch_size]) for i in range(0, len(texts), batch_size)
    ]
    return np.concatenate(parts)
