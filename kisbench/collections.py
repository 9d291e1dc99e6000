"""Image collections and their labels files.

A collection is a folder of images, ``data/collections/<name>/images/``; an image's id is
its path relative to that folder, without the extension (``00042.jpg`` -> ``00042``,
``06925/shot06925_31_RKF.jpg`` -> ``06925/shot06925_31_RKF``). A labels file,
``labels/<name>.csv``, is the thesis' format: ``ID,short_label,long_label``; every
``<set>_label`` column is one labelset (query set) named ``<set>``.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff"})
LABEL_SUFFIX = "_label"


class InputError(ValueError):
    """Bad user input (a file, a row, a name); the message says which and how to fix it."""


def list_images(folder: Path) -> tuple[list[str], list[Path]]:
    """Ids and paths of every image under ``folder``, sorted by id."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(
            f"collection folder {folder} does not exist: put the images there "
            "(and `dvc add` it) or fix the collection name in params.yaml"
        )
    found: dict[str, Path] = {}
    for path in sorted(folder.rglob("*")):
        rel = path.relative_to(folder)
        if any(part.startswith(".") for part in rel.parts) or not path.is_file():
            continue
        if path.suffix.lower() not in IMAGE_SUFFIXES:
            continue
        image_id = rel.with_suffix("").as_posix()
        if image_id in found:
            raise InputError(
                f"two images in {folder} share the id {image_id!r}: "
                f"{found[image_id].name} and {path.name}; rename one"
            )
        found[image_id] = path
    if not found:
        raise InputError(
            f"collection folder {folder} holds no images "
            f"(looked for {', '.join(sorted(IMAGE_SUFFIXES))})"
        )
    ids = sorted(found)
    return ids, [found[i] for i in ids]


@dataclass(frozen=True)
class Labels:
    """Queries of one collection: for each labelset, one text per target image id."""

    path: Path
    ids: list[str]
    texts: dict[str, list[str]]  # labelset -> texts in the order of ``ids``

    @property
    def labelsets(self) -> list[str]:
        return list(self.texts)


def read_labels(path: Path) -> Labels:
    """Read and validate a labels CSV; errors name the file and the line."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"labels file {path} does not exist")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as err:
        line = path.read_bytes()[: err.start].count(b"\n") + 1
        raise InputError(
            f"{path}, line {line}: not valid UTF-8 ({err.reason}); save the file as UTF-8"
        ) from None
    reader = csv.reader(text.splitlines(keepends=True))
    header = next(reader, None)
    if header is None:
        raise InputError(f"{path} is empty; expected the header ID,short_label,long_label")
    header = [h.strip() for h in header]
    if "ID" not in header:
        raise InputError(f"{path}, line 1: no ID column in the header {header}")
    label_cols = [h for h in header if h.endswith(LABEL_SUFFIX)]
    if not label_cols:
        raise InputError(f"{path}, line 1: no *_label column in the header {header}")
    id_col = header.index("ID")
    cols = {name: header.index(name) for name in label_cols}
    ids: list[str] = []
    texts: dict[str, list[str]] = {name.removesuffix(LABEL_SUFFIX): [] for name in label_cols}
    first_line: dict[str, int] = {}
    start = reader.line_num + 1
    for row in reader:
        line = start
        start = reader.line_num + 1
        if not any(cell.strip() for cell in row):
            continue
        if len(row) < len(header):
            raise InputError(f"{path}, line {line}: {len(row)} fields, expected {len(header)}")
        image_id = row[id_col].strip()
        if not image_id:
            raise InputError(f"{path}, line {line}: empty ID")
        if image_id in first_line:
            raise InputError(
                f"{path}, line {line}: duplicate ID {image_id!r} "
                f"(first on line {first_line[image_id]})"
            )
        first_line[image_id] = line
        for name, col in cols.items():
            label = " ".join(row[col].split())
            if not label:
                raise InputError(f"{path}, line {line}: empty {name} for ID {image_id!r}")
            texts[name.removesuffix(LABEL_SUFFIX)].append(label)
        ids.append(image_id)
    if not ids:
        raise InputError(f"{path} has a header but no labels")
    return Labels(path=path, ids=ids, texts=texts)


def check_targets(labels: Labels, image_ids: list[str]) -> None:
    """Every labelled id must be an image of the collection."""
    known = set(image_ids)
    missing = [i for i in labels.ids if i not in known]
    if missing:
        shown = ", ".join(repr(m) for m in missing[:10])
        more = f" and {len(missing) - 10} more" if len(missing) > 10 else ""
        raise InputError(
            f"{labels.path}: {len(missing)} labelled ID(s) are not images of the collection: "
            f"{shown}{more}"
        )
