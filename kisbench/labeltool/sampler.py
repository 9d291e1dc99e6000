"""Which image comes up next: a seeded random order, without replacement, resumable.

The order is a fixed permutation of the collection for a seed and an annotator, so a
restart (same seed) goes on where the files say the work stopped, and two annotators
labelling at the same time start from different ends of the collection instead of racing
for the same image. An image handed to one browser tab is held for it for a while, so a
second tab of the same server gets another one.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Container, Sequence

HOLD_S = 15 * 60.0


def sampling_order(image_ids: Sequence[str], seed: int, annotator: str) -> list[str]:
    """Every image id once, in a random order fixed by ``seed`` and ``annotator``."""
    order = sorted(image_ids)
    # A str seed is hashed (SHA-512) by random.Random: stable across runs and machines.
    random.Random(f"{seed}:{annotator}").shuffle(order)
    return order


class Sampler:
    """Hands out the next free image of ``order`` to a client (one browser tab)."""

    def __init__(
        self,
        order: Sequence[str],
        *,
        hold_s: float = HOLD_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.order = list(order)
        self.hold_s = hold_s
        self.clock = clock
        self._held: dict[str, tuple[str, float]] = {}  # image id -> (client, held until)
        self._mutex = threading.Lock()

    def next(self, taken: Container[str], client: str) -> str | None:
        """The first image that is neither taken nor held by another client; None when done.

        Asking again releases what this client held before, so a reloaded tab gets the same
        image back.
        """
        with self._mutex:
            now = self.clock()
            self._held = {
                image_id: (holder, until)
                for image_id, (holder, until) in self._held.items()
                if until > now and holder != client and image_id not in taken
            }
            for image_id in self.order:
                if image_id not in taken and image_id not in self._held:
                    self._held[image_id] = (client, now + self.hold_s)
                    return image_id
            return None

    def remaining(self, taken: Container[str]) -> int:
        """Images not yet labelled or skipped (held ones included)."""
        return sum(image_id not in taken for image_id in self.order)
