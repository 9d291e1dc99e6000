"""Which image comes up next: the project's seeded draw, without replacement, resumable.

The order is ``kisbench.data.sampling.draw_order`` (the thesis' protocol, which also drew the
demo's labels, seed 2024): the next image is the first one of that order that nobody has
labelled or skipped, so a restart goes on where the files say the work stopped, and the
labelled ids stay the seeded sample with skipped images replaced by the next draws. An
image handed to one browser tab is held for it for a while (``Hold``, kept in a file by
``LabelFiles.holds`` so that every server of the collection sees it), so other tabs and
other annotators get the images after it instead of racing for the same one.
"""

from __future__ import annotations

from collections.abc import Container, Sequence
from dataclasses import dataclass

from kisbench.data.sampling import draw_order

HOLD_S = 15 * 60.0


@dataclass(frozen=True)
class Hold:
    client: str  # one browser tab
    until: float  # time.time() at which the hold lapses


def sampling_order(image_ids: Sequence[str], seed: int) -> list[str]:
    """Every image id once, in the seeded draw order."""
    return draw_order(image_ids, seed)


def next_image(
    order: Sequence[str],
    taken: Container[str],
    holds: dict[str, Hold],
    client: str,
    *,
    now: float,
    hold_s: float = HOLD_S,
) -> tuple[str | None, dict[str, Hold]]:
    """The first image of ``order`` neither taken nor held by another client (None when
    none is left), and the holds after this client took it.

    Asking again releases what this client held before, so a reloaded tab gets the same
    image back; lapsed holds and holds on taken images are dropped.
    """
    live = {
        image_id: hold
        for image_id, hold in holds.items()
        if hold.until > now and hold.client != client and image_id not in taken
    }
    for image_id in order:
        if image_id not in taken and image_id not in live:
            live[image_id] = Hold(client, now + hold_s)
            return image_id, live
    return None, live
