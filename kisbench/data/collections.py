"""Image collections and their labels files.

A collection is a folder of images, ``data/collections/<name>/images/``; an image's id is
its path relative to that folder, without the extension (``00042.jpg`` -> ``00042``,
``06925/shot06925_31_RKF.jpg`` -> ``06925/shot06925_31_RKF``). A labels file,
``labels/<name>.csv``, is the thesis' format: ``ID,short_label,long_label``; every
``<set>_label`` column is one labelset (query set) named ``<set>``. A labelset may be
partial: an empty label means "no query of that labelset for this target" (short labels
for 100 targets, long ones for 20 of them), but every row has at least one label.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Collection, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from kisbench.errors import InputError

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff"})
LABEL_SUFFIX = "_label"


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
    # labelset -> texts in the order of ``ids``; "" where the target has no query of that
    # labelset (a partial labelset): read them through ``queries``.
    texts: dict[str, list[str]]
    lines: list[int] = field(default_factory=list)  # the file line each id starts on

    @property
    def labelsets(self) -> list[str]:
        return list(self.texts)

    def queries(self, labelset: str) -> dict[str, str]:
        """The labelset's queries: target id -> text, in file order, absent ones left out."""
        return {i: t for i, t in zip(self.ids, self.texts[labelset], strict=True) if t}

    def counts(self) -> dict[str, int]:
        """Queries per labelset."""
        return {name: sum(1 for t in texts if t) for name, texts in self.texts.items()}


def _decode(path: Path, raw: bytes) -> str:
    """The file's text; anything but UTF-8 (with or without BOM) is a clear error."""
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise InputError(f'{path} is UTF-16 ("Unicode text" export); save it as UTF-8 CSV')
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = raw[: err.start].count(b"\n") + 1
        column = err.start - (raw.rfind(b"\n", 0, err.start) + 1) + 1
        hint = ""
        try:
            raw.decode("cp1252")
            hint = " (it decodes as Windows-1252/Latin-1: probably saved in that encoding)"
        except UnicodeDecodeError:
            pass
        raise InputError(
            f"{path}, line {line}, column {column}: not valid UTF-8, byte "
            f"{raw[err.start : err.start + 1]!r}{hint}; save the file as UTF-8"
        ) from None


def read_labels(path: Path) -> Labels:
    """Read and validate a labels CSV; errors name the file and the line.

    Accepted: UTF-8 with or without a BOM, LF or CRLF line ends, quoted fields with commas
    and newlines (a label's whitespace, newlines included, becomes single spaces), extra
    columns (ignored unless named ``*_label``), empty trailing fields, blank lines. IDs are
    taken as written (surrounding spaces aside): ``88`` and ``00088`` are different IDs.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"labels file {path} does not exist")
    text = _decode(path, path.read_bytes())
    if "\x00" in text:
        line = text[: text.index("\x00")].count("\n") + 1
        raise InputError(f"{path}, line {line}: NUL character; is this really a CSV file?")
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    try:
        return _parse(path, reader)
    except csv.Error as err:
        raise InputError(f"{path}, line {reader.line_num}: malformed CSV: {err}") from None


def _parse(path: Path, reader: Iterator[list[str]]) -> Labels:
    header = next(reader, None)
    if header is None:
        raise InputError(f"{path} is empty; expected the header ID,short_label,long_label")
    header = [h.strip() for h in header]
    if "ID" not in header:
        raise InputError(f"{path}, line 1: no ID column in the header {header}")
    label_cols = [h for h in header if h.endswith(LABEL_SUFFIX)]
    if not label_cols:
        raise InputError(f"{path}, line 1: no *_label column in the header {header}")
    for name in [*label_cols, "ID"]:
        if header.count(name) > 1:
            raise InputError(f"{path}, line 1: column {name!r} appears twice in the header")
    id_col = header.index("ID")
    cols = {name: header.index(name) for name in label_cols}
    ids: list[str] = []
    lines: list[int] = []
    texts: dict[str, list[str]] = {name.removesuffix(LABEL_SUFFIX): [] for name in label_cols}
    first_line: dict[str, int] = {}
    start = reader.line_num + 1  # type: ignore[attr-defined]
    for row in reader:
        line = start
        start = reader.line_num + 1  # type: ignore[attr-defined]
        if not any(cell.strip() for cell in row):
            continue
        if len(row) < len(header):
            raise InputError(f"{path}, line {line}: {len(row)} fields, expected {len(header)}")
        if any(cell.strip() for cell in row[len(header) :]):
            raise InputError(
                f"{path}, line {line}: {len(row)} fields, expected {len(header)}; a label "
                'that contains a comma must be in double quotes ("like, this")'
            )
        image_id = row[id_col].strip()
        if not image_id:
            raise InputError(f"{path}, line {line}: empty ID")
        if image_id in first_line:
            raise InputError(
                f"{path}, line {line}: duplicate ID {image_id!r} "
                f"(first on line {first_line[image_id]})"
            )
        first_line[image_id] = line
        row_labels = {name: " ".join(row[col].split()) for name, col in cols.items()}
        if not any(row_labels.values()):
            raise InputError(
                f"{path}, line {line}: no label for ID {image_id!r} "
                f"(every {', '.join(label_cols)} is empty)"
            )
        for name, label in row_labels.items():
            texts[name.removesuffix(LABEL_SUFFIX)].append(label)
        ids.append(image_id)
        lines.append(line)
    if not ids:
        raise InputError(f"{path} has a header but no labels")
    # A labelset may be partial, not empty: an empty one would be embedded, ranked and
    # evaluated as zero queries, which no metric is defined for.
    empty = [name for name in label_cols if not any(texts[name.removesuffix(LABEL_SUFFIX)])]
    if empty:
        raise InputError(
            f"{path}: column {empty[0]!r} has no label in any row; fill in at least one, or "
            "remove the column"
        )
    return Labels(path=path, ids=ids, texts=texts, lines=lines)


def _suggestion(image_id: str, known: set[str], unpadded: dict[str, str]) -> str:
    """A hint for a labelled ID that is not an image id, when one is near."""
    stem, dot, suffix = image_id.rpartition(".")
    if dot and f".{suffix.lower()}" in IMAGE_SUFFIXES and stem in known:
        return f" (did you mean {stem!r}? IDs have no file extension)"
    if image_id.isdigit() and image_id.lstrip("0") in unpadded:
        match = unpadded[image_id.lstrip("0")]
        return f" (did you mean {match!r}? IDs must match the file name exactly, leading zeros too)"
    return ""


def check_targets(labels: Labels, image_ids: list[str], skipped: Collection[str] = ()) -> list[str]:
    """Every labelled id must be an image of the collection, or one the embed stage skipped
    as unreadable; returns the labelled ids that were skipped (their queries can never find
    their target). IDs match exactly; the error suggests the likely intended id."""
    known = set(image_ids)
    skipped = set(skipped)
    missing = [
        (i, line)
        for i, line in zip(labels.ids, labels.lines or [0] * len(labels.ids), strict=True)
        if i not in known and i not in skipped
    ]
    if missing:
        unpadded = {k.lstrip("0"): k for k in known if k.isdigit()}
        shown = [
            (f"line {line}: " if line else "") + repr(i) + _suggestion(i, known, unpadded)
            for i, line in missing[:10]
        ]
        more = f"\n  ... and {len(missing) - 10} more" if len(missing) > 10 else ""
        raise InputError(
            f"{labels.path}: {len(missing)} labelled ID(s) are not images of the collection:\n  "
            + "\n  ".join(shown)
            + more
        )
    return [i for i in labels.ids if i in skipped]
