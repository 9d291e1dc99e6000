"""Partial chunks that no run will resume from (orphans), and their removal.

``kisbench.embedding.extract`` keeps an unfinished run's chunks in
``data/partial/<model>-<collection>/`` and removes them when it completes. Two
ways leave them behind: a killed process (they are then what the next run resumes from),
and DVC restoring the stage's output from its run cache after such a kill, which completes
the stage without running it. The rule here: a partial folder is an orphan when its
model's embedding set of that collection is complete. DVC deletes a stage's output before
it runs the stage, so while a killed run waits to be resumed its output is absent and its
chunks are kept; once the output is there (restored, or written by a run by hand), no run
of the stage resumes from them.

Light on purpose (no torch): the tidy stage runs it after every embed stage
(docs/robustness.md#interruption).
"""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import Iterable
from pathlib import Path

from kisbench.data.store import EMBEDDINGS, IDS, META
from kisbench.layout import features_dir, partial_dir


def complete(folder: Path) -> bool:
    """Whether ``folder`` holds a whole embedding set (its files are written atomically)."""
    return all((Path(folder) / name).is_file() for name in (EMBEDDINGS, IDS, META))


def orphans(pairs: Iterable[tuple[str, str]], root: Path = Path(".")) -> list[Path]:
    """The partial folders of these (model, collection) pairs whose output is complete."""
    root = Path(root)
    return [
        root / partial_dir(model, collection)
        for model, collection in pairs
        if (root / partial_dir(model, collection)).is_dir()
        and complete(root / features_dir(model, collection))
    ]


def remove_orphans(pairs: Iterable[tuple[str, str]], root: Path = Path(".")) -> list[Path]:
    """Remove :func:`orphans`; then the shared partial folder if nothing else is in it.
    Returns the folders removed."""
    removed = orphans(pairs, root)
    for folder in removed:
        shutil.rmtree(folder)
    shared = Path(root) / partial_dir("m", "c").parent
    with contextlib.suppress(OSError):
        shared.rmdir()
    return removed
