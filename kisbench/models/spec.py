"""A model's params.yaml entry and the model error: light (no torch), for quick checks."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from kisbench.errors import ModelError


@dataclass(frozen=True)
class ModelSpec:
    """A params.yaml model entry: its key, its family and the family's arguments."""

    key: str
    family: str
    args: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_params(cls, key: str, entry: dict[str, Any]) -> ModelSpec:
        if not isinstance(entry, dict) or "family" not in entry:
            raise ModelError(f"model {key!r}: params entry needs a 'family' (got {entry!r})")
        args = {k: v for k, v in entry.items() if k != "family"}
        return cls(key=key, family=entry["family"], args=args)

    def require(self, name: str) -> Any:
        """The entry's argument ``name``, or an error naming the model and the argument."""
        value = self.args.get(name)
        if value in (None, ""):
            raise ModelError(f"model {self.key!r}: {self.family} entry needs {name!r}")
        return value
