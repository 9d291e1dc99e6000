"""The project's two error kinds, shown to users as one-line messages (`kisbench.cli`).

Both say what is wrong and how to fix it; anything else that escapes a stage is a bug and
keeps its traceback.
"""

from __future__ import annotations


class InputError(ValueError):
    """Bad user input (a file, a row, a name, a parameter); the message says which and how
    to fix it."""


class ModelError(RuntimeError):
    """A model cannot be built or loaded; the message says which and what to do."""
