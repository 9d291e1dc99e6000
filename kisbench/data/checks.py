"""The checks of a collection that need no model: its folder, its images' headers, exact and
near-duplicate images, its labels file and every labelled ID against the image IDs, its
optional frames.csv and the syntax of its temporal labels (``a >> b``).

Every problem is collected, none stops the others (`kisbench check` reports them all at
once). A problem is an ``error`` when a stage would fail on it (or, worse, compute a wrong
result) and a ``warning`` when the pipeline runs but the user should know (duplicates, images
the embed stage will skip). The texts are the ones the stages themselves raise
(`kisbench.data.collections`), so that a message reads the same before and during a run.

Cost: every file is read once (its header parsed without decoding the pixels, its bytes
hashed for exact duplicates); the optional near-duplicate pass decodes a small greyscale
thumbnail of each image (`kisbench.data.duplicates`; JPEGs in Pillow's draft mode).
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tqdm import tqdm

from kisbench.data import duplicates
from kisbench.data.collections import Labels, check_targets, list_images, read_labels
from kisbench.data.frames import FRAMES_FILE, read_frames
from kisbench.data.images import DEFAULT_MAX_PIXELS, UnreadableImage, probe, scan_jpeg
from kisbench.data.sentences import is_temporal, split_temporal
from kisbench.errors import InputError

ERROR = "error"
WARNING = "warning"

# The check stage's outputs. The gate, which the embed stages depend on, holds only the
# collection's name: the same bytes whenever the check passes (and no file when it fails),
# so that no edit that leaves the check passing can re-run an embed stage. The facts go to
# the report beside it, which no embed stage depends on.
CHECKS = Path("data") / "checks"


def gate_path(collection: str) -> Path:
    return CHECKS / f"{collection}.json"


def report_path(collection: str) -> Path:
    return CHECKS / f"{collection}.report.json"


def gate(collection: str) -> dict[str, Any]:
    return {"collection": collection, "check": "passed"}


@dataclass(frozen=True)
class Problem:
    """One finding: its level, what it concerns (a file, a params key) and the message."""

    level: str  # ERROR or WARNING
    where: str
    message: str

    def __str__(self) -> str:
        return f"{self.level}: {self.where}: {self.message}"


@dataclass
class ImageScan:
    """What the headers and bytes of a collection's images say."""

    ids: list[str]
    unreadable: dict[str, str]  # id -> reason (empty file, not an image, too large, ...)
    exact: list[list[str]]  # groups of ids with the same bytes
    near: list[list[str]] | None  # groups that look the same (None: not looked for)


@dataclass
class CollectionReport:
    """Everything `check` found about one collection."""

    name: str
    problems: list[Problem] = field(default_factory=list)
    images: ImageScan | None = None
    labels: Labels | None = None
    skipped_targets: list[str] = field(default_factory=list)
    # groups of images the collection declares equivalent (its equivalents.csv)
    equivalents: list[list[str]] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        """JSON-able facts, with no path, time or machine in them: they change only when
        the collection or its labels change."""
        scan = self.images
        return {
            "collection": self.name,
            "images": len(scan.ids) if scan else None,
            "unreadable": dict(sorted(scan.unreadable.items())) if scan else {},
            "exact_duplicates": scan.exact if scan else [],
            "near_duplicates": scan.near if scan else None,
            "labelsets": (
                self.labels.counts() if self.labels else {}  # partial labelsets: fewer
            ),
            "skipped_targets": self.skipped_targets,
            "equivalents": self.equivalents,
            "errors": [str(p) for p in self.problems if p.level == ERROR],
            "warnings": [str(p) for p in self.problems if p.level == WARNING],
        }


def header_of(data: bytes, max_pixels: int = DEFAULT_MAX_PIXELS) -> tuple[int, int]:
    """(width, height) from the header alone; raises UnreadableImage as the embed stage
    would refuse the file (empty, not an image, too large)."""
    if not data:
        raise UnreadableImage("empty file (0 bytes)")
    fast = scan_jpeg(data)
    if fast is not None:
        if fast.width * fast.height > max_pixels:
            raise UnreadableImage(
                f"too large: {fast.width} x {fast.height} pixels, more than max_pixels "
                f"{max_pixels:,}"
            )
        return fast.width, fast.height
    head = probe(data, max_pixels)
    return head.width, head.height


def scan_images(
    ids: list[str],
    paths: list[Path],
    *,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    near: bool = True,
    progress: bool = False,
) -> ImageScan:
    """Read every file once: its header (no pixel decoding) and the sha256 of its bytes;
    with ``near``, also a perceptual hash of the readable ones (a thumbnail decode each)."""
    unreadable: dict[str, str] = {}
    hashes: list[str] = []
    for image_id, path in tqdm(
        list(zip(ids, paths, strict=True)), desc="headers", unit="img", disable=not progress
    ):
        try:
            data = path.read_bytes()
        except OSError as err:
            unreadable[image_id] = f"cannot read the file: {err.strerror or err}"
            hashes.append(f"unreadable:{image_id}")
            continue
        hashes.append(hashlib.sha256(data).hexdigest())
        try:
            header_of(data, max_pixels)
        except UnreadableImage as err:
            unreadable[image_id] = err.reason
    exact = duplicates.exact_groups(ids, hashes)
    near_groups = None
    if near:
        readable = [(i, p) for i, p in zip(ids, paths, strict=True) if i not in unreadable]
        phashes, kept = [], []
        for image_id, path in tqdm(readable, desc="near-duplicate hashes", disable=not progress):
            try:
                phashes.append(duplicates.perceptual_hash(path))
                kept.append(image_id)
            except Exception as err:  # noqa: BLE001 - a decoder error: the image is unreadable
                unreadable[image_id] = f"truncated or corrupt data: {type(err).__name__}: {err}"
        near_groups = duplicates.near_groups(kept, phashes)
    return ImageScan(ids=ids, unreadable=unreadable, exact=exact, near=near_groups)


def check_labels(
    path: Path, image_ids: list[str], skipped: Collection[str] = ()
) -> tuple[Labels | None, list[str], list[Problem]]:
    """The labels file read and every ID checked against the images; (labels or None, the
    labelled ids that are skipped images, problems). The messages are the labels reader's."""
    where = str(path)
    try:
        labels = read_labels(path)
    except InputError as err:
        return None, [], [Problem(ERROR, where, _strip(str(err), where))]
    try:
        skipped_targets = check_targets(labels, image_ids, skipped)
    except InputError as err:
        return labels, [], [Problem(ERROR, where, _strip(str(err), where))]
    problems = []
    if skipped_targets:
        shown = ", ".join(repr(i) for i in skipped_targets[:10])
        more = f" and {len(skipped_targets) - 10} more" if len(skipped_targets) > 10 else ""
        problems.append(
            Problem(
                WARNING,
                where,
                f"{len(skipped_targets)} target(s) are images the embed stage skips as "
                f"unreadable: {shown}{more}; their queries rank 'never found'",
            )
        )
    problems += _temporal_problems(path, labels)
    return labels, skipped_targets, problems


def _frames_problems(path: Path, ids: set[str]) -> list[Problem]:
    """The collection's optional frames.csv (kisbench.data.frames), read strictly."""
    if not path.is_file():
        return []
    try:
        read_frames(path, ids)
    except InputError as err:
        return [Problem(ERROR, str(path), _strip(str(err), str(path)))]
    return []


def _temporal_problems(path: Path, labels: Labels) -> list[Problem]:
    """Temporal labels (``a >> b``) whose sub-queries are not all there."""
    problems = []
    for labelset in labels.labelsets:
        for query, text in labels.queries(labelset).items():
            if is_temporal(text):
                try:
                    split_temporal(text, f"query {query} ({labelset})")
                except InputError as err:
                    problems.append(Problem(ERROR, str(path), str(err)))
    return problems


def _strip(message: str, where: str) -> str:
    """The reader's message without the file name it starts with (the Problem names it)."""
    for sep in (": ", ", "):
        if message.startswith(where + sep):
            return message[len(where) + len(sep) :]
    return message


def check_collection(
    name: str,
    images_folder: Path,
    labels_path: Path | None,
    *,
    skip_unreadable: bool,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    near: bool = True,
    progress: bool = False,
) -> CollectionReport:
    """Every check of one collection (module docstring). ``labels_path`` None: a collection
    without labels (RESET's keyframes). ``skip_unreadable``: params ``embed.on_unreadable``
    is ``skip`` (an unreadable image is then a warning, not an error)."""
    report = CollectionReport(name)
    try:
        ids, paths = list_images(images_folder)
    except InputError as err:
        report.problems.append(Problem(ERROR, str(images_folder), str(err)))
        ids, paths = [], []
    if ids:
        scan = scan_images(ids, paths, max_pixels=max_pixels, near=near, progress=progress)
        report.images = scan
        report.problems += _image_problems(images_folder, scan, skip_unreadable)
        source = Path(images_folder).parent / duplicates.EQUIVALENTS_FILE
        try:
            report.equivalents = duplicates.read_equivalents(source, ids)
        except InputError as err:
            report.problems.append(Problem(ERROR, str(source), _strip(str(err), str(source))))
        report.problems += _frames_problems(Path(images_folder).parent / FRAMES_FILE, set(ids))
    if labels_path is not None:
        if not ids:  # the file can still be read, its IDs not checked
            try:
                report.labels = read_labels(labels_path)
            except InputError as err:
                where = str(labels_path)
                report.problems.append(Problem(ERROR, where, _strip(str(err), where)))
            return report
        unreadable = report.images.unreadable if report.images else {}
        readable = [i for i in ids if i not in unreadable]
        labels, skipped, problems = check_labels(labels_path, readable, unreadable)
        report.labels, report.skipped_targets = labels, skipped
        report.problems += problems
        if labels is not None and report.images is not None:
            report.problems += _target_duplicates(labels_path, labels, report.images)
    return report


def _image_problems(folder: Path, scan: ImageScan, skip: bool) -> list[Problem]:
    out = []
    if scan.unreadable:
        level = WARNING if skip else ERROR
        what = (
            "the embed stage will skip them (embed.on_unreadable: skip)"
            if skip
            else "the embed stage stops on them (embed.on_unreadable: fail); fix or remove "
            "them, or set embed.on_unreadable: skip"
        )
        lines = [f"{i}: {reason}" for i, reason in sorted(scan.unreadable.items())]
        more = f"\n  ... and {len(lines) - 20} more" if len(lines) > 20 else ""
        out.append(
            Problem(
                level,
                str(folder),
                f"{len(lines)} image(s) cannot be read; {what}:\n  "
                + "\n  ".join(lines[:20])
                + more,
            )
        )
    for kind, groups in (
        ("exact duplicates (same bytes)", scan.exact),
        ("near duplicates", scan.near),
    ):
        if groups:
            shown = "; ".join(", ".join(g) for g in groups[:20])
            more = f"; ... and {len(groups) - 20} more" if len(groups) > 20 else ""
            out.append(
                Problem(WARNING, str(folder), f"{len(groups)} group(s) of {kind}: {shown}{more}")
            )
    return out


def _target_duplicates(path: Path, labels: Labels, scan: ImageScan) -> list[Problem]:
    """Targets that have a duplicate: a model cannot tell them apart, so under the
    pessimistic tie policy it cannot rank such a target first."""
    partners = duplicates.duplicate_partners([*scan.exact, *(scan.near or [])])
    hit = [f"{i} ({', '.join(partners[i])})" for i in labels.ids if i in partners]
    if not hit:
        return []
    return [
        Problem(
            WARNING,
            str(path),
            f"{len(hit)} target(s) have a duplicate in the collection: {'; '.join(hit[:20])}"
            + (f"; ... and {len(hit) - 20} more" if len(hit) > 20 else ""),
        )
    ]
