"""Atomic writes: a reader (or the next run after a crash) sees the old file or folder or the
new one, never half of one.

Every output of the project is written through here: a temp file or folder beside the
target, flushed to disk (fsync), renamed over the target, and the rename made durable by
an fsync of the parent folder, so that neither a killed process nor a power cut leaves a
file that looks complete but is not.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def replace_file(path: Path, write: Callable[[IO[Any]], None], *, binary: bool = False) -> None:
    """Call ``write`` on a temp file beside ``path``, then put it in place atomically.

    The file keeps the permissions of the one it replaces (0o644 for a new file).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    mode = stat.S_IMODE(path.stat().st_mode) if path.exists() else 0o644
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        if binary:
            f = os.fdopen(fd, "wb")
        else:
            f = os.fdopen(fd, "w", encoding="utf-8", newline="")
        with f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def sha256(path: Path) -> str:
    """The hex sha256 of a file's bytes, read in blocks (weights files are gigabytes)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_text(path: Path, text: str) -> None:
    """Write a UTF-8 text file atomically."""
    replace_file(path, lambda f: f.write(text))


def write_json(path: Path, data: Any) -> None:
    """Write indented JSON atomically."""
    write_text(path, json.dumps(data, indent=2, sort_keys=False) + "\n")


def write_csv(path: Path, table: pd.DataFrame, **to_csv: Any) -> None:
    """Write a pandas table as CSV atomically (``to_csv``'s options, e.g. ``index=False``)."""
    replace_file(path, lambda f: table.to_csv(f, **to_csv))


def temp_dir(folder: Path) -> Path:
    """A fresh, empty sibling folder to build ``folder`` in (what a killed run left there
    is removed first); finish with :func:`commit_dir`."""
    folder = Path(folder)
    tmp = folder.with_name(f".{folder.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    return tmp


def commit_dir(tmp: Path, folder: Path) -> None:
    """Put a finished temp folder in place of ``folder`` (replacing any older version), its
    files and the rename flushed to disk."""
    tmp, folder = Path(tmp), Path(folder)
    for path in tmp.rglob("*"):
        if path.is_file():
            with open(path, "rb+") as f:
                os.fsync(f.fileno())
    # Renamed aside rather than deleted first: a kill at any point leaves the old folder or
    # the new one in place (an aside folder left by a kill is removed by the next commit).
    old = folder.with_name(f".{folder.name}.old")
    shutil.rmtree(old, ignore_errors=True)
    if folder.exists():
        os.replace(folder, old)
    os.replace(tmp, folder)
    _fsync_dir(folder.parent)
    shutil.rmtree(old, ignore_errors=True)
