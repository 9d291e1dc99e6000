"""What kisbench's command lines share: how their typer apps are made, the stages' common
options, and clear one-line errors instead of tracebacks for bad input."""

from __future__ import annotations

import functools
import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import typer

from kisbench.errors import InputError, ModelError

F = TypeVar("F", bound=Callable[..., Any])


def command_line(**kwargs: Any) -> typer.Typer:
    """A typer app as every kisbench command has it: no shell-completion options, and help
    as plain reflowed text (typer's rich mode keeps docstrings' line breaks and reads square
    brackets as markup)."""
    return typer.Typer(add_completion=False, rich_markup_mode=None, **kwargs)


MODEL = typer.Option(..., help="Model key from params.yaml `models`.")
COLLECTION = typer.Option(..., help="Collection name from params.yaml `collections`.")
RESET_COLLECTION = typer.Option(..., help="RESET keyframe collection (params `run.reset`).")
PARAMS = typer.Option(Path("params.yaml"), help="Parameters file.")


def clear_errors(func: F) -> F:
    """Turn the project's input and model errors into ``error: ...`` and exit status 1."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except (InputError, ModelError, FileNotFoundError) as err:
            print(f"error: {err}", file=sys.stderr)
            sys.exit(1)

    return wrapper  # type: ignore[return-value]


def quiet_libraries() -> None:
    """open_clip logs a warning per load for things that are expected here, and
    transformers a table of the checkpoint weights a tower class does not use (BLIP-2's
    towers each take their part of one checkpoint)."""
    logging.getLogger().setLevel(logging.ERROR)
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
