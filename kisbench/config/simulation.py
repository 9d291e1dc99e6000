"""The ``simulate`` section: interactive search with simulated users (docs/simulation.md).

No embed stage imports this module (`kisbench.config` loads it by name to check a file), so
a key added here re-runs only the simulate stage and what reads its outputs.
"""

from __future__ import annotations

from dataclasses import dataclass

from kisbench.config.schema import opt
from kisbench.errors import InputError

# kisbench.evaluation.simulation.USERS and TEMPERATURES, which this layer cannot import
# (tests/test_simulation.py checks that the lists agree).
USERS = ("ideal", "ransam", "random")
TEMPERATURES = ("model", "constant", "anchor")


@dataclass(frozen=True)
class Simulate:
    """The simulate stage: the protocol of Peška et al. (MTAP 2023) and somhunter-simulator."""

    display: int = opt(
        64, cache_key=True, minimum=2, why="images per display (somhunter's 8 x 8 top-n page)"
    )
    displays: int = opt(
        10,
        cache_key=True,
        minimum=0,
        why="N: displays 0 (text only) to N are shown, N rounds of feedback (the simulator's "
        "iterations)",
    )
    likes: int = opt(1, cache_key=True, minimum=1, why="k: images the user marks per display")
    users: list[str] = opt(
        list(USERS), cache_key=True, choices=USERS, why="the simulated users that search"
    )
    p: float = opt(
        13.0, cache_key=True, minimum=0, why="ransam: P(d) proportional to ((1 + cos) / 2)^p"
    )
    sigma: float = opt(
        0.1,
        cache_key=True,
        minimum=0.025,
        why="the update's kernel exp(-(1 - cos) / sigma) (somhunter-core's Sigma); at least "
        "0.025, so that the kernel fits float32",
    )
    repeats: int = opt(
        5,
        cache_key=True,
        minimum=1,
        why="simulated users per query of each random user (ransam, random); ideal is "
        "deterministic and runs once",
    )
    seed: int = opt(0, cache_key=True, minimum=0, why="the users' random draws")
    temperature: str = opt(
        "model",
        cache_key=True,
        choices=TEMPERATURES,
        why="start scores exp(c cos): model: c = the model's learned logit_scale (meta.json), "
        "scale where it has none; constant: c = scale; anchor: c = 25, the simulator's "
        "exp(-50 (1 - cos) / 2)",
    )
    scale: float = opt(
        100.0,
        cache_key=True,
        minimum=0,
        why="c where the model records no logit_scale (CLIP's learned value, open_clip's cap)",
    )
    exclude_shown: bool = opt(
        False,
        cache_key=True,
        why="leave images already shown off later displays (somhunter-core does not)",
    )
    pairs: list[str] = opt(
        [],
        cache_key=True,
        why="TEXT:FEEDBACK model pairs also run: start scores from TEXT, feedback in FEEDBACK's "
        "image space",
    )
    device: str = opt(
        "auto",
        cache_key=True,
        why="where it runs (auto: cuda if available); CPU and GPU round differently",
    )


SECTIONS: dict[str, type] = {"simulate": Simulate}


def split_pair(pair: str) -> tuple[str, str]:
    """``TEXT:FEEDBACK`` of ``simulate.pairs`` -> (text model, feedback model)."""
    text, sep, feedback = pair.partition(":")
    if not sep or not text or not feedback or ":" in feedback:
        raise InputError(f"simulate.pairs: {pair!r} is not TEXT:FEEDBACK (two model keys)")
    return text, feedback
