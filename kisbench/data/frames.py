"""A collection's frame order: ``data/collections/<name>/frames.csv`` (docs/collections.md).

The file is optional and says which images are consecutive frames (video keyframes) or
consecutive photos (a lifelog day). Header ``image_id,video,position``, or ``day`` for
``video`` and ``timestamp`` for ``position``; one row per image. ``video``/``day`` is any
name; ``position`` a number, ``timestamp`` an ISO 8601 date-time (``2020-01-02T08:15:00``).
Within one video the frames follow their positions; two frames may not share one. An image
the file does not list is a video of its own (one frame), so a temporal query can never
reach past it.
"""

from __future__ import annotations

import csv
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from kisbench.errors import InputError
from kisbench.layout import DATA

FRAMES_FILE = "frames.csv"


def frames_path(collection: str) -> Path:
    return DATA / "collections" / collection / FRAMES_FILE


@dataclass(frozen=True)
class Frame:
    video: str
    position: float


def read_frames(path: Path, image_ids: Collection[str] | None = None) -> dict[str, Frame]:
    """image id -> its video and position, from a frames file; every problem at once
    (with ``image_ids``, the collection's: an id that is none of them too)."""
    try:
        text = Path(path).read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as err:
        raise InputError(f"{path}: cannot read it as UTF-8 text ({err})") from None
    rows = list(csv.reader(text.splitlines()))
    if not rows:
        raise InputError(f"{path}: empty; expected the header image_id,video,position")
    header = [h.strip() for h in rows[0]]
    if (
        len(header) != 3
        or header[0] != "image_id"
        or header[1] not in ("video", "day")
        or header[2] not in ("position", "timestamp")
    ):
        raise InputError(
            f"{path}: the header must be image_id,video,position (or day for video, "
            f"timestamp for position), got {','.join(header)}"
        )
    timestamps = header[2] == "timestamp"
    out: dict[str, Frame] = {}
    seen: dict[tuple[str, float], str] = {}
    problems: list[str] = []
    for line, row in enumerate(rows[1:], start=2):
        if not any(cell.strip() for cell in row):
            continue
        if len(row) != 3:
            problems.append(f"line {line}: expected 3 fields, got {len(row)}")
            continue
        image_id, video, raw = (cell.strip() for cell in row)
        try:
            position = datetime.fromisoformat(raw).timestamp() if timestamps else float(raw)
        except ValueError:
            kind = "an ISO 8601 timestamp" if timestamps else "a number"
            problems.append(f"line {line}: {header[2]} {raw!r} is not {kind}")
            continue
        if not image_id or not video:
            problems.append(f"line {line}: empty image_id or {header[1]}")
        elif image_ids is not None and image_id not in image_ids:
            problems.append(f"line {line}: {image_id} is no image of the collection")
        elif image_id in out:
            problems.append(f"line {line}: image {image_id} is listed twice")
        elif (video, position) in seen:
            problems.append(
                f"line {line}: {image_id} and {seen[(video, position)]} share {header[1]} "
                f"{video!r} {header[2]} {raw}"
            )
        else:
            out[image_id] = Frame(video, position)
            seen[(video, position)] = image_id
    if problems:
        shown = "\n  ".join(problems[:20])
        more = f"\n  ... and {len(problems) - 20} more" if len(problems) > 20 else ""
        raise InputError(f"{path}: {len(problems)} problem(s):\n  {shown}{more}")
    return out


def load_frames(collection: str) -> dict[str, Frame] | None:
    """The collection's frames, or None when it has no frames file."""
    path = frames_path(collection)
    return read_frames(path) if path.is_file() else None
