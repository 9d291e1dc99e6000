"""Where the RESET stages (reset-distances, reset) write, relative to the repository root.

The paths here and in dvc.yaml are the same conventions; change them together.
"""

from __future__ import annotations

from pathlib import Path

from kisbench.layout import DATA

RESET_DISTANCES = DATA / "reset_distances"


def reset_distances_dir(model: str, collection: str) -> Path:
    """One model's RESET triplet distances (reset-distances stage): distances.csv, info.json."""
    return RESET_DISTANCES / model / collection


RESET_EXTENDED = DATA / "reset_results" / "triplets_extended.csv"
RESET_TABLE = Path("plots") / "reset" / "consistency.csv"
# In the report's figure folder, kisbench.report.layout.FIGURES, which this layer cannot
# import (a test checks that the two agree).
RESET_FIGURE = Path("plots") / "figures" / "reset_consistency.png"
