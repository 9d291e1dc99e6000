"""Batches of model input from image files, by one of two paths.

- ``pil``: DataLoader worker processes decode with Pillow (:func:`kisbench.data.images.load_rgb`,
  with JPEG draft decoding when the model input is much smaller than the photo) and run the
  model's own ``image_transform``; batches come back in pinned memory when the model is on a
  GPU, so that the copy to it does not block. For a model on the CPU, threads of the main
  process decode each batch while the model waits, in step with it, so that the two never
  compete for cores.
- ``device``: threads read the files; JPEGs are decoded by ``torchvision.io.decode_jpeg`` on
  the model's device (nvJPEG on a GPU) and resized, cropped and normalised there by tensor
  operations (:mod:`kisbench.models.pixels`); other formats, and the JPEGs those decoders
  refuse, are decoded by Pillow in the threads and then take the same tensor steps. On a GPU
  the next batch is prepared on a second CUDA stream while the model runs on the current one.
  On a CPU device the same code runs with libjpeg-turbo (this is how the tests check the path).

Both yield :class:`Batch` objects in the order of the plan; images that the decoding rules
refuse come back as failures with their reason, never as an exception.
"""

from __future__ import annotations

import contextlib
import gc
import queue
import threading
import warnings
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset, default_collate
from torchvision.io import ImageReadMode, decode_jpeg

from kisbench.data.images import (
    DEFAULT_MAX_PIXELS,
    UnreadableImage,
    load_rgb,
    read_bytes,
    scan_jpeg,
)
from kisbench.models.pixels import PixelSpec, orient_tensor, prepare, to_tensor

# torchvision 0.29 deprecates its decoders in favour of TorchCodec, but they still work and
# are the ones this path was measured with; the warning would repeat for every batch.
warnings.filterwarnings(
    "ignore", message=".*decoding and encoding capabilities of TorchVision", category=Warning
)


@dataclass
class Batch:
    """Model input for the images at ``positions`` (indices into the file list) in row
    order, and the images of this batch that were refused, with their reasons."""

    positions: list[int]
    pixels: torch.Tensor | None  # (len(positions), 3, H, W); None when every image failed
    failures: dict[int, str] = field(default_factory=dict)


# ---------------------------------------------------------------------------- Pillow path


class _PilFiles(Dataset):
    """One image per item, decoded and transformed in a DataLoader worker."""

    def __init__(
        self,
        paths: Sequence[Path],
        transform: Callable[[Any], torch.Tensor],
        draft: tuple[int, int] | None,
        max_pixels: int,
    ) -> None:
        self.paths = list(paths)
        self.transform = transform
        self.draft = draft
        self.max_pixels = max_pixels

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> tuple[int, torch.Tensor | None, str | None]:
        try:
            picture = load_rgb(self.paths[index], max_pixels=self.max_pixels, draft=self.draft)
            return index, self.transform(picture), None
        except UnreadableImage as err:
            return index, None, err.reason
        except Exception as err:  # noqa: BLE001 - one bad file must not stop the others
            return index, None, f"preprocessing failed: {type(err).__name__}: {err}"


def _collate(
    items: list[tuple[int, torch.Tensor | None, str | None]],
) -> tuple[torch.Tensor, torch.Tensor, list[tuple[int, str]]]:
    ok = [(i, x) for i, x, _ in items if x is not None]
    failed = [(i, reason) for i, x, reason in items if x is None and reason is not None]
    # default_collate stacks straight into shared memory in a worker: no extra copy
    pixels = default_collate([x for _, x in ok]) if ok else torch.empty(0)
    return torch.tensor([i for i, _ in ok], dtype=torch.int64), pixels, failed


def pil_batches(
    paths: Sequence[Path],
    plan: Sequence[Sequence[int]],
    transform: Callable[[Any], torch.Tensor],
    *,
    workers: int,
    draft: tuple[int, int] | None = None,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    pin_memory: bool = False,
    in_step: bool = False,
) -> Iterator[Batch]:
    """Batches for the index lists of ``plan``, decoded by ``workers`` processes (0: in this
    process, as the thesis did), or, ``in_step``, by ``workers`` threads of this process,
    each batch when it is asked for (see :func:`_in_step_batches`)."""
    files = _PilFiles(paths, transform, draft, max_pixels)
    if in_step and workers > 0:
        yield from _in_step_batches(files, plan, workers)
        return
    loader = DataLoader(
        files,
        batch_sampler=[list(b) for b in plan],
        num_workers=workers,
        collate_fn=_collate,
        pin_memory=pin_memory,
        prefetch_factor=2 if workers else None,  # per worker: memory is workers x 2 batches
    )
    # Forked workers would otherwise copy the parent's memory page by page as their garbage
    # collector walks its objects; frozen objects are left alone.
    gc.freeze()
    try:
        batches = iter(loader)
    finally:
        gc.unfreeze()
    for collated in batches:
        yield _batch(*collated)


def _in_step_batches(
    files: _PilFiles, plan: Sequence[Sequence[int]], threads: int
) -> Iterator[Batch]:
    """The Pillow path for a model on the CPU: decode a batch with ``threads`` threads, then
    hand it over, and decode the next only when the model has finished with this one.

    Worker processes decoding ahead would run beside the model's own threads and take cores
    from them: on 2 cores that cost more than the decoding itself (docs/benchmarks.md). In
    step, the decoding has every core while the model waits, and the model has every core
    while nothing is decoded. Pillow's decoder and resizer release the GIL, so threads scale;
    the pictures are those the worker processes make (the same function decodes them).
    """
    with ThreadPoolExecutor(threads, thread_name_prefix="kisbench-decode") as pool:
        for indices in plan:
            yield _batch(*_collate(list(pool.map(files.__getitem__, indices))))


def _batch(positions: torch.Tensor, pixels: torch.Tensor, failed: list[tuple[int, str]]) -> Batch:
    """A :class:`Batch` from what :func:`_collate` returns (in a worker or a thread)."""
    return Batch(
        positions=positions.tolist(),
        pixels=pixels if len(positions) else None,
        failures=dict(failed),
    )


# ---------------------------------------------------------------------------- device path


@dataclass
class _Fetched:
    """One file after the reader thread: JPEG bytes for the device decoder, or a picture
    Pillow already decoded, or the reason it was refused."""

    position: int
    jpeg: torch.Tensor | None = None
    turn: int = 1
    picture: torch.Tensor | None = None
    reason: str | None = None
    pixels: int = 0  # width x height, to bound the memory of one decoding step

    def __post_init__(self) -> None:
        if self.picture is not None:
            self.pixels = self.picture.shape[1] * self.picture.shape[2]


def _ends_complete(data: bytes) -> bool:
    """Whether JPEG data ends with its end-of-image marker (padding aside). Pillow refuses a
    truncated JPEG; libjpeg-turbo and nvJPEG would quietly fill the rest with grey."""
    return data.rstrip(b"\x00\r\n\t ")[-2:] == b"\xff\xd9"


def _fetch(path: Path, position: int, max_pixels: int) -> _Fetched:
    try:
        data = read_bytes(path)
        head = scan_jpeg(data)
        if head and head.width * head.height <= max_pixels and _ends_complete(data):
            jpeg = torch.frombuffer(bytearray(data), dtype=torch.uint8)
            size = head.width * head.height
            return _Fetched(position, jpeg=jpeg, turn=head.orientation, pixels=size)
        # Anything else, including every refusal and its reason, is Pillow's to decide.
        return _Fetched(position, picture=to_tensor(load_rgb(data, max_pixels=max_pixels)))
    except UnreadableImage as err:
        return _Fetched(position, reason=err.reason)
    except Exception as err:  # noqa: BLE001 - one bad file must not stop the others
        return _Fetched(position, reason=f"decoding failed: {type(err).__name__}: {err}")


class _DevicePreparer:
    """Decodes and prepares one batch on ``device`` (called in the producer thread)."""

    def __init__(
        self, spec: PixelSpec, device: torch.device, dtype: torch.dtype, max_pixels: int
    ) -> None:
        self.spec = spec
        self.device = device
        self.dtype = dtype
        self.max_pixels = max_pixels

    def _decode(self, items: list[_Fetched]) -> None:
        """Decode the JPEG items in place (item.picture); a batch the device decoder refuses
        is retried image by image, and an image it refuses goes to Pillow."""
        jpegs = [it for it in items if it.jpeg is not None]
        if not jpegs:
            return
        try:
            decoded = decode_jpeg(
                [it.jpeg for it in jpegs], mode=ImageReadMode.RGB, device=self.device
            )
        except RuntimeError:
            decoded = [self._decode_one(it) for it in jpegs]
        for it, pic in zip(jpegs, decoded, strict=True):
            if pic is not None:
                it.picture = orient_tensor(pic, it.turn)
            it.jpeg = None

    def _decode_one(self, item: _Fetched) -> torch.Tensor | None:
        assert item.jpeg is not None
        try:
            return decode_jpeg(item.jpeg, mode=ImageReadMode.RGB, device=self.device)
        except RuntimeError:
            pass
        try:  # Pillow decides: a picture (already upright) or a reason
            picture = load_rgb(item.jpeg.numpy().tobytes(), max_pixels=self.max_pixels)
            item.picture, item.turn = to_tensor(picture), 1
            item.picture = self._to_device(item.picture)
        except UnreadableImage as err:
            item.reason = err.reason
        return None

    def _to_device(self, picture: torch.Tensor) -> torch.Tensor:
        if self.device.type != "cuda" or picture.is_cuda:
            return picture
        return picture.pin_memory().to(self.device, non_blocking=True)

    def __call__(self, items: list[_Fetched]) -> Batch:
        """Decode and prepare a batch, a slice at a time: a slice's decoded pictures take at
        most STEP_PIXELS pixels (a batch of 256 4K photos would take 6 GB at once)."""
        parts: list[torch.Tensor] = []
        positions: list[int] = []
        failures: dict[int, str] = {}
        for part in _slices(items, STEP_PIXELS):
            for it in part:
                if it.picture is not None:
                    it.picture = self._to_device(it.picture)
            self._decode(part)
            good = [it for it in part if it.picture is not None]
            failures.update(
                {it.position: it.reason or "not decoded" for it in part if it.picture is None}
            )
            if good:
                parts.append(prepare([it.picture for it in good], self.spec, self.dtype))
                positions += [it.position for it in good]
            for it in part:
                it.picture = None  # the full-size picture is no longer needed
        pixels = (parts[0] if len(parts) == 1 else torch.cat(parts)) if parts else None
        return Batch(positions=positions, pixels=pixels, failures=failures)


STEP_PIXELS = 128 * 2**20  # decoded pixels per step: 384 MiB as RGB uint8


def _slices(items: list[_Fetched], budget: int) -> Iterator[list[_Fetched]]:
    """Consecutive runs of items whose pixels add up to at most ``budget`` (at least one)."""
    part: list[_Fetched] = []
    total = 0
    for it in items:
        if part and total + it.pixels > budget:
            yield part
            part, total = [], 0
        part.append(it)
        total += it.pixels
    if part:
        yield part


_END = object()


def device_batches(
    paths: Sequence[Path],
    plan: Sequence[Sequence[int]],
    spec: PixelSpec,
    *,
    device: str | torch.device,
    dtype: torch.dtype = torch.float32,
    threads: int = 4,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    read_ahead: int = 2,
) -> Iterator[Batch]:
    """Batches for the index lists of ``plan``, decoded and prepared on ``device``.

    A producer thread keeps ``read_ahead`` batches of file reads in flight in a pool of
    ``threads`` readers, and prepares each batch (on a side CUDA stream on a GPU) while the
    consumer runs the model on the previous one.
    """
    dev = torch.device(device)
    side = torch.cuda.Stream(dev) if dev.type == "cuda" else None
    preparer = _DevicePreparer(spec, dev, dtype, max_pixels)
    ready: queue.Queue[Any] = queue.Queue(maxsize=read_ahead)
    stop = threading.Event()
    pool = ThreadPoolExecutor(max(1, threads), thread_name_prefix="kisbench-read")

    def put(item: Any) -> None:
        while not stop.is_set():
            with contextlib.suppress(queue.Full):
                ready.put(item, timeout=0.1)
                return

    def produce() -> None:
        try:
            if dev.type == "cuda" and dev.index is not None:
                torch.cuda.set_device(dev)  # a new thread starts on GPU 0
            batches = iter(plan)
            reads: deque[list[Future[_Fetched]]] = deque()

            def submit_next() -> None:
                nxt = next(batches, None)
                if nxt is not None:
                    reads.append([pool.submit(_fetch, paths[i], i, max_pixels) for i in nxt])

            for _ in range(read_ahead + 1):
                submit_next()
            while reads and not stop.is_set():
                items = [f.result() for f in reads.popleft()]
                submit_next()
                if side is None:
                    put((preparer(items), None))
                    continue
                with torch.cuda.stream(side):
                    batch = preparer(items)
                    event = torch.cuda.Event()
                    event.record(side)
                put((batch, event))
            put(_END)
        except BaseException as err:  # noqa: BLE001 - handed to the consumer, which raises it
            put(err)

    producer = threading.Thread(target=produce, name="kisbench-prepare", daemon=True)
    producer.start()
    try:
        while True:
            got = ready.get()
            if got is _END:
                return
            if isinstance(got, BaseException):
                raise got
            batch, event = got
            if event is not None and batch.pixels is not None:
                current = torch.cuda.current_stream(dev)
                current.wait_event(event)
                # The tensor was made on the side stream; keep its memory until the model
                # (on the current stream) is done with it.
                batch.pixels.record_stream(current)
            yield batch
    finally:
        stop.set()
        with contextlib.suppress(queue.Empty):
            while True:
                ready.get_nowait()
        producer.join(timeout=10)
        pool.shutdown(wait=False, cancel_futures=True)
