"""BLIP-2 as the thesis ran it: LAVIS ``blip2_feature_extractor`` / ``pretrain_vitL``.

LAVIS lives in its own virtualenv (``.venv-lavis``, made by ``make setup``): it needs
transformers 4.26 and timm 0.4. This adapter keeps the main environment's interface and
runs the model in one long-lived worker process of that virtualenv
(kisbench/models/lavis_worker.py), exchanging arrays as ``.npy`` files in a private temp
folder. Images are decoded and preprocessed here, in DataLoader workers, by the same
transform as LAVIS' ``blip_image_eval`` (tests/test_models_lavis.py checks the two agree).

Params entry: ``family: blip2_lavis``, ``mode`` (``thesis`` or ``itc``, see the worker's
docstring), optional ``model_type`` (default ``pretrain_vitL``) and ``local_dir`` (a tiny
test model folder made by ``kisbench tiny-models``).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import threading
import weakref
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from kisbench import files
from kisbench.models import hub, weights
from kisbench.models import metadata as measure
from kisbench.models.base import (
    ONE_VECTOR,
    SEVERAL_VECTORS,
    EmbeddingModel,
    ModelError,
    ModelSpec,
    VectorLayout,
    checked_budget,
    precision_name,
)

WORKER = Path(__file__).with_name("lavis_worker.py")
VENV = Path(".venv-lavis")
MODES = ("thesis", "itc")
# What an image embeds to in each mode (the worker's docstring): the thesis took the first
# Q-Former query output alone; ITC keeps all 32 projected queries and scores the best.
MODE_VECTORS: dict[str, VectorLayout] = {"thesis": ONE_VECTOR, "itc": SEVERAL_VECTORS}


def lavis_python() -> Path:
    """The LAVIS virtualenv's interpreter (``KISBENCH_LAVIS_PYTHON`` overrides)."""
    override = os.environ.get("KISBENCH_LAVIS_PYTHON")
    python = Path(override) if override else VENV / "bin" / "python"
    if not python.is_file():
        raise ModelError(
            f"BLIP-2 (LAVIS) needs its own virtualenv, and {python} does not exist: run "
            "`make setup` (it creates .venv-lavis from requirements-lavis.txt)"
        )
    return python


class BlipImageEval:
    """LAVIS' ``blip_image_eval``: a square bicubic resize (no crop), then scale to [0, 1]
    and normalise; what its torchvision transforms do to a PIL image, written with PIL and
    torch alone (importing torchvision costs seconds per stage). Picklable."""

    def __init__(self, image_size: int, mean: Sequence[float], std: Sequence[float]) -> None:
        self.size = int(image_size)
        self.mean = torch.tensor(mean, dtype=torch.float32).view(3, 1, 1)
        self.std = torch.tensor(std, dtype=torch.float32).view(3, 1, 1)

    def __call__(self, image: Image.Image) -> torch.Tensor:
        image = image.resize((self.size, self.size), Image.Resampling.BICUBIC)
        x = torch.from_numpy(np.asarray(image, dtype=np.uint8).copy()).permute(2, 0, 1)
        return (x.float() / 255 - self.mean) / self.std

    def __repr__(self) -> str:
        return (
            f"BlipImageEval(size={self.size}, bicubic, mean={self.mean.flatten().tolist()}, "
            f"std={self.std.flatten().tolist()})"
        )


class LavisWorker:
    """One ``lavis_worker.py serve`` process and its request/answer channel."""

    def __init__(self, key: str, config: dict[str, Any]) -> None:
        self.key = key
        self.tmp = Path(tempfile.mkdtemp(prefix="kisbench-lavis-"))
        self.lock = threading.Lock()
        self.count = 0
        self.proc = subprocess.Popen(
            [str(lavis_python()), str(WORKER), "serve", json.dumps(config)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONWARNINGS": "ignore"},
        )
        # ends the worker and removes the temp folder when this object goes, or at exit
        self._finalizer = weakref.finalize(self, _shutdown, self.proc, self.tmp)
        ready = self._read()
        self.info: dict[str, Any] = ready["info"]

    def _read(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            code = self.proc.wait()
            raise ModelError(
                f"model {self.key!r}: the LAVIS worker exited (status {code}); see its "
                "messages above"
            )
        answer = json.loads(line)
        if "error" in answer:
            raise ModelError(f"model {self.key!r}: LAVIS failed:\n{answer['error']}")
        return answer

    def ask(self, request: dict[str, Any]) -> dict[str, Any]:
        assert self.proc.stdin is not None
        with self.lock:
            self.proc.stdin.write(json.dumps(request) + "\n")
            self.proc.stdin.flush()
            return self._read()

    def array_call(self, op: str, **fields: Any) -> np.ndarray:
        with self.lock:
            self.count += 1
            out = self.tmp / f"out{self.count}.npy"
        self.ask({"op": op, "out": str(out), **fields})
        result = np.load(out, allow_pickle=False)
        out.unlink()
        return result

    def embed_images(self, pixels: np.ndarray) -> np.ndarray:
        with self.lock:
            self.count += 1
            path = self.tmp / f"in{self.count}.npy"
        np.save(path, pixels)
        try:
            return self.array_call("images", path=str(path))
        finally:
            path.unlink(missing_ok=True)

    def close(self) -> None:
        self._finalizer()


def _shutdown(proc: subprocess.Popen, tmp: Path) -> None:
    if proc.poll() is None:
        try:  # closing stdin ends the worker's request loop
            if proc.stdin is not None:
                proc.stdin.close()
            proc.wait(timeout=30)
        except (OSError, subprocess.TimeoutExpired):
            proc.kill()
    shutil.rmtree(tmp, ignore_errors=True)


class Blip2LavisModel(EmbeddingModel):
    def __init__(self, spec: ModelSpec, device: str = "auto", precision: str = "auto") -> None:
        self.mode = spec.args.get("mode", "thesis")
        if self.mode not in MODES:
            raise ModelError(
                f"model {spec.key!r}: mode must be one of {', '.join(MODES)}, not {self.mode!r}"
            )
        super().__init__(spec, device, precision)
        self.vectors = MODE_VECTORS[self.mode]
        local = spec.args.get("local_dir")
        if local:
            self._weights = weights.local_folder(spec.key, Path(local), "vision.json")
        self.worker = LavisWorker(
            spec.key,
            {
                "model_type": spec.args.get("model_type", "pretrain_vitL"),
                "mode": self.mode,
                "device": str(self.device),
                "precision": precision_name(self.dtype),
                "local_dir": str(Path(local).resolve()) if local else None,
            },
        )
        info = self.worker.info
        # The worker's own virtualenv computes the embeddings: its versions, not ours.
        self.library = ", ".join(f"{k} {v}" for k, v in info["libraries"].items())
        self._transform = BlipImageEval(info["image_size"], info["mean"], info["std"])
        if not local:
            self._weights = _hub_weights(spec)

    @property
    def image_transform(self) -> Callable[[Image.Image], torch.Tensor]:
        return self._transform

    def encode_images(self, pixels: torch.Tensor) -> np.ndarray:
        return self.worker.embed_images(pixels.float().numpy())

    def encode_texts(self, texts: Sequence[str]) -> np.ndarray:
        return self.worker.array_call("texts", texts=list(texts))

    def truncated(self, texts: Sequence[str]) -> list[bool]:
        return self.worker.ask({"op": "truncated", "texts": list(texts)})["truncated"]

    def context_tokens(self) -> int:
        return int(self.worker.info["context_tokens"])

    def token_counts(self, texts: Sequence[str]) -> list[int]:
        return self.worker.ask({"op": "token_counts", "texts": list(texts)})["token_counts"]

    def encode_texts_cut(self, texts: Sequence[str], max_tokens: int) -> np.ndarray:
        cut = checked_budget(self, max_tokens)
        return self.worker.array_call("texts", texts=list(texts), max_tokens=cut)

    def _provenance_extra(self) -> dict[str, Any]:
        info = self.worker.info
        return {
            "lavis_model": info["lavis_model"],
            "mode": self.mode,
            "max_words": info["max_words"],
            "context_length": info["text_tokens"],
            "queries_per_image": info["queries"] if self.vectors.several else 1,
            "logit_scale": info.get("logit_scale"),  # 1 / temp in itc mode, else None
        }

    def _metadata(self) -> dict[str, Any]:
        # Measured by the worker, in the environment that computes the embeddings.
        found = self.worker.ask({"op": "metadata"})["metadata"]
        return measure.record(
            **{k: v for k, v in found.items() if k not in ("image_size", "parameters")},
            image_size=tuple(found["image_size"]),
            resize="squash",  # BlipImageEval: both sides to the input size, no crop
            interpolation="bicubic",
            params=found["parameters"],
        )


def _hub_weights(spec: ModelSpec) -> dict[str, Any]:
    """Provenance of the real weights: the BERT commit and the checkpoints' sha256."""
    out: dict[str, Any] = {"source": "lavis"}
    for item in weights.lavis_needs(spec):
        path = item.cached()
        if isinstance(item, hub.HubFile):
            commit = hub.snapshot_commit(path) if path else None
            out.setdefault(item.repo_id, {"revision": commit, "files": {}})
            if path:
                out[item.repo_id]["files"][path.name] = hub.blob_sha256(path)
        else:
            out[item.url] = files.sha256(path) if path else None
    return out


def load(spec: ModelSpec, device: str = "auto", precision: str = "auto") -> Blip2LavisModel:
    return Blip2LavisModel(spec, device=device, precision=precision)
