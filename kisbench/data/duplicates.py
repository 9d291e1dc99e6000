"""Exact and near-duplicate images of a collection, and the equivalents a collection declares.

- **Exact duplicates**: the same bytes (sha256 of the file).
- **Near duplicates**: the same picture at another size, quality or format. Found with a
  perceptual hash (pHash: the signs of the 8 x 8 lowest frequencies of the 2-D DCT of a
  32 x 32 greyscale thumbnail, against their median, DC term left out: 63 bits) and a
  Hamming distance of at most ``NEAR_BITS``. The hash ignores scale and JPEG re-encoding;
  a crop, a mirror or another shot of the same scene are different pictures to it, and
  images of one flat colour (or black frames) all look alike to it, as greyscale is all
  it sees.
- **Equivalents**: ``data/collections/<name>/equivalents.csv``, images the collection's
  owner declares interchangeable as answers (docs/collections.md, "Duplicates and
  equivalent images"). The rank and fusion stages do not count an image equivalent to the
  target as ranked ahead of it.
"""

from __future__ import annotations

import csv
import hashlib
import io
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
from PIL import Image
from scipy.fft import dctn

from kisbench import files
from kisbench.errors import InputError
from kisbench.layout import DATA, images_dir

HASH_SIDE = 32  # thumbnail side of the perceptual hash
LOW = 8  # lowest LOW x LOW frequencies kept
# Hamming distance (of 63 bits) at or below which two images are near duplicates. Measured
# on the demo collection before its three same-photo pairs were removed: those pairs were at
# distance 0-2; the closest two different photographs at 12 (docs/collections.md).
NEAR_BITS = 6
EQUIVALENTS_HEADER = ["id", "same_as"]
EQUIVALENTS_FILE = "equivalents.csv"


def equivalents_source(collection: str) -> Path:
    """The collection owner's declaration, beside its images; optional."""
    return images_dir(collection).parent / EQUIVALENTS_FILE


def equivalents_path(collection: str) -> Path:
    """The check stage's normalised copy of :func:`equivalents_source`, written (a header
    alone when nothing is declared) whenever the check passes. The rank stage reads it and
    depends on it: a DVC dep must exist, and the source is optional."""
    return DATA / "checks" / f"{collection}.equivalents.csv"


def perceptual_hash(path: Path) -> int:
    """The image's 63-bit pHash (module docstring). A JPEG is decoded at reduced size
    (Pillow's draft mode), which is what makes hashing a large collection fast."""
    with Image.open(path) as im:
        im.draft("L", (HASH_SIDE * 4, HASH_SIDE * 4))
        if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
            # Transparent pixels as the models see them: composited on white.
            rgba = im.convert("RGBA")
            white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
            im = Image.alpha_composite(white, rgba)
        grey = im.convert("L").resize((HASH_SIDE, HASH_SIDE), Image.Resampling.LANCZOS)
    freq = dctn(np.asarray(grey, dtype=np.float64), norm="ortho")[:LOW, :LOW].ravel()[1:]
    bits = freq > np.median(freq)
    return int("".join("1" if b else "0" for b in bits), 2)


def hamming(a: int, b: int) -> int:
    return (a ^ b).bit_count()


def _groups(pairs: Iterable[tuple[int, int]], n: int) -> list[list[int]]:
    """Connected components (of more than one member) of the graph with these edges."""
    parent = list(range(n))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for a, b in pairs:
        ra, rb = root(a), root(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)
    members: dict[int, list[int]] = {}
    for i in range(n):
        members.setdefault(root(i), []).append(i)
    return sorted((g for g in members.values() if len(g) > 1), key=lambda g: g[0])


def exact_groups(ids: Sequence[str], hashes: Sequence[str]) -> list[list[str]]:
    """Groups of ids whose files have the same content hash, each sorted, sorted by first id."""
    by_hash: dict[str, list[str]] = {}
    for i, h in zip(ids, hashes, strict=True):
        by_hash.setdefault(h, []).append(i)
    return sorted((sorted(g) for g in by_hash.values() if len(g) > 1), key=lambda g: g[0])


def near_groups(
    ids: Sequence[str], hashes: Sequence[int], max_bits: int = NEAR_BITS
) -> list[list[str]]:
    """Groups of ids linked by perceptual hashes at most ``max_bits`` apart (transitively).

    All pairs are compared, as one bit matrix: 10,000 images are 5e7 pairs, under a second.
    """
    n = len(ids)
    if n < 2:
        return []
    bits = np.array([[(h >> k) & 1 for k in range(63)] for h in hashes], dtype=np.uint8)
    packed = np.packbits(bits, axis=1)  # (n, 8) bytes
    pairs: list[tuple[int, int]] = []
    step = max(1, 2**22 // (n * 8))
    for start in range(0, n, step):
        block = packed[start : start + step]
        dist = np.unpackbits(block[:, None, :] ^ packed[None, :, :], axis=2).sum(axis=2)
        a, b = np.nonzero(dist <= max_bits)
        a = a + start
        keep = a < b
        pairs.extend(zip(a[keep].tolist(), b[keep].tolist(), strict=True))
    groups = _groups(pairs, n)
    return sorted((sorted(ids[i] for i in g) for g in groups), key=lambda g: g[0])


def find_duplicates(
    ids: Sequence[str], paths: Sequence[Path], max_bits: int = NEAR_BITS
) -> dict[str, list[list[str]]]:
    """``{"exact": groups, "near": groups}`` of a collection's images (module docstring).
    A near group may contain exact duplicates too: it is every picture that looks the same."""
    exact = exact_groups(ids, [files.sha256(p) for p in paths])
    near = near_groups(ids, [perceptual_hash(p) for p in paths], max_bits)
    return {"exact": exact, "near": near}


def duplicate_partners(groups: Iterable[Sequence[str]]) -> dict[str, list[str]]:
    """For every id in a group, the other ids of its groups, sorted."""
    out: dict[str, set[str]] = {}
    for group in groups:
        for i in group:
            out.setdefault(i, set()).update(j for j in group if j != i)
    return {i: sorted(others) for i, others in sorted(out.items())}


def read_equivalents(path: Path, image_ids: Iterable[str] | None = None) -> list[list[str]]:
    """The groups of equivalent images a collection declares (docs/collections.md).

    ``path``: a CSV with the header ``id,same_as``; each row says the two images are
    equivalent answers; equivalence is transitive, so rows that share an id form one group.
    A missing file declares nothing. With ``image_ids``, every id must be an image of the
    collection. Errors name the file and the line.
    """
    path = Path(path)
    if not path.is_file():
        return []
    text = path.read_bytes().decode("utf-8-sig", errors="strict")
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    header = [h.strip() for h in next(reader, [])]
    if header != EQUIVALENTS_HEADER:
        raise InputError(f"{path}, line 1: expected the header id,same_as, found {header}")
    pairs: list[tuple[str, str]] = []
    lines: dict[str, int] = {}
    try:
        for row in reader:
            line = reader.line_num
            if not any(cell.strip() for cell in row):
                continue
            if len(row) != 2 or not row[0].strip() or not row[1].strip():
                raise InputError(f"{path}, line {line}: expected two ids, id,same_as: {row}")
            a, b = row[0].strip(), row[1].strip()
            if a == b:
                raise InputError(f"{path}, line {line}: {a!r} is declared the same as itself")
            pairs.append((a, b))
            lines.setdefault(a, line)
            lines.setdefault(b, line)
    except csv.Error as err:
        raise InputError(f"{path}, line {reader.line_num}: malformed CSV: {err}") from None
    if image_ids is not None:
        known = set(image_ids)
        unknown = [f"line {line}: {i!r}" for i, line in lines.items() if i not in known]
        if unknown:
            raise InputError(
                f"{path}: {len(unknown)} id(s) are not images of the collection:\n  "
                + "\n  ".join(unknown[:10])
            )
    names = sorted(lines)
    index = {n: k for k, n in enumerate(names)}
    groups = _groups(((index[a], index[b]) for a, b in pairs), len(names))
    return [sorted(names[i] for i in g) for g in groups]


def equivalents_text(groups: Iterable[Sequence[str]]) -> str:
    """The normalised CSV of ``groups``: the header, then per group (sorted) the rows
    ``first,other``; read back by :func:`read_equivalents` as the same groups."""
    rows = [EQUIVALENTS_HEADER]
    for group in sorted(sorted(g) for g in groups):
        rows.extend([group[0], other] for other in group[1:])
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows(rows)
    return buf.getvalue()


def load_equivalents(collection: str) -> tuple[list[list[str]], Path]:
    """The collection's groups of equivalent images and the file they were read from: the
    check stage's normalised copy, or, when that stage has not run (a stage script run by
    hand), the source itself (validated against nothing: the check does that)."""
    normalised = equivalents_path(collection)
    path = normalised if normalised.is_file() else equivalents_source(collection)
    return read_equivalents(path), path
