"""Where the render stage writes, relative to the repository root: figures and the report.

The paths here and in dvc.yaml are the same conventions; change them together.
"""

from __future__ import annotations

from pathlib import Path

FIGURES = Path("plots") / "figures"
REPORT = Path("reports") / "report.md"
# The experiment's models: metadata, licence, measured speed (kisbench.report.models)
MODELS = Path("metrics") / "models.json"


def figure_name(kind: str, collection: str, labelset: str) -> str:
    """``pairs/demo-short.png``: one figure of a kind per collection and labelset, in a
    folder per kind (relative to ``FIGURES``)."""
    return f"{kind}/{collection}-{labelset}.png"
