"""What every stage CLI shares: clear one-line errors instead of tracebacks for bad input."""

from __future__ import annotations

import functools
import logging
import sys
from collections.abc import Callable
from typing import Any, TypeVar

from kisbench.collections import InputError
from kisbench.models.spec import ModelError

F = TypeVar("F", bound=Callable[..., Any])


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
    """open_clip logs a warning per load for things that are expected here."""
    logging.getLogger().setLevel(logging.ERROR)
