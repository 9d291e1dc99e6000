"""Temporal queries for the demo collection, written into `make smoke`'s scratch copy only.

The demo's images are unrelated stills and the real demo collection has no frame order. In
the scratch copy only, ``write_pseudo_videos`` groups them by id into pseudo-videos of six
frames (``data/collections/demo/frames.csv`` of the copy), so that the temporal path of the
pipeline runs. Then each labelled image whose pseudo-video holds another labelled image at most
``temporal.lookahead`` frames later gets a temporal label: its own short label, ``>>``, the
later image's short label. The numbers they give mean nothing (tiny random models, made-up
videos); the labels check the plumbing, the figures and the report.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

from kisbench import layout
from kisbench.data.collections import list_images, read_labels
from kisbench.data.frames import frames_path, read_frames
from kisbench.data.sentences import TEMPORAL_SEPARATOR

COLUMN = "temporal_label"


def temporal_labels(collection: str, root: Path, lookahead: int) -> dict[str, str]:
    """query id -> temporal label, for the labels and frames of ``collection`` under
    ``root`` (a workspace)."""
    labels = read_labels(root / layout.labels_path(collection))
    frames = read_frames(root / frames_path(collection))
    short = labels.queries("short")
    by_video: dict[str, list[tuple[float, str]]] = {}
    for image_id, frame in frames.items():
        by_video.setdefault(frame.video, []).append((frame.position, image_id))
    out = {}
    for seq in by_video.values():
        ids = [i for _, i in sorted(seq)]
        for k, first in enumerate(ids):
            later = [i for i in ids[k + 1 : k + 1 + lookahead] if i in short]
            if first in short and later:
                out[first] = f"{short[first]} {TEMPORAL_SEPARATOR} {short[later[0]]}"
    return out


FRAMES_PER_VIDEO = 6


def write_pseudo_videos(root: Path, collection: str, per_video: int = FRAMES_PER_VIDEO) -> Path:
    """The workspace's frames.csv: the collection's images in id order, ``per_video`` to a
    pseudo-video (``v01`` holds the first six, ...); an existing file is kept."""
    path = root / frames_path(collection)
    if path.exists():
        return path
    ids, _ = list_images(root / "data" / "collections" / collection / "images")
    rows = [f"{i},v{n // per_video + 1:02d},{n % per_video}" for n, i in enumerate(ids)]
    path.write_text("image_id,video,position\n" + "\n".join(rows) + "\n", encoding="utf-8")
    return path


def add_temporal_labels(root: Path, collection: str = "demo", lookahead: int = 4) -> int:
    """Give the workspace's collection pseudo-videos (``write_pseudo_videos``) and add a
    ``temporal_label`` column to its labels file (empty where a query has no temporal
    label); returns how many it wrote."""
    write_pseudo_videos(root, collection)
    path = root / layout.labels_path(collection)
    rows = list(csv.reader(io.StringIO(path.read_text(encoding="utf-8-sig"), newline="")))
    if COLUMN in rows[0]:
        return 0
    extra = temporal_labels(collection, root, lookahead)
    id_col = [h.strip() for h in rows[0]].index("ID")
    buf = io.StringIO(newline="")
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow([*rows[0], COLUMN])
    for row in rows[1:]:
        if any(cell.strip() for cell in row):
            writer.writerow([*row, extra.get(row[id_col].strip(), "")])
    path.write_text(buf.getvalue(), encoding="utf-8")
    return len(extra)
