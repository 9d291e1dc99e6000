"""The labels file and its skip sidecar, written so that no row is ever lost or doubled.

Every change takes an exclusive lock (a hidden ``.<labels>.lock`` file beside the labels),
re-reads both files, checks under the lock that the image is still free, and rewrites the
changed file whole: a temp file in the same folder, fsync, ``os.replace``. Readers and a
crash therefore see the old file or the new one, never half of one, and two writers (two
tabs, or two annotators' servers on the same files) take turns, the second one finding the
first one's row.

Labels: ``ID,short_label,long_label,annotator``; a thesis-format file without the
``annotator`` column gains it (empty for its old rows) on the first save. Skips:
``ID,annotator,reason`` in ``<labels stem>.skipped.csv``. Holds (which tab is shown which
image, see ``sampler``) live in a hidden ``.<labels>.holds.json`` under the same lock.
"""

from __future__ import annotations

import csv
import io
import json
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO, TypeVar

from filelock import FileLock, Timeout

from kisbench.data.collections import LABEL_SUFFIX
from kisbench.errors import InputError
from kisbench.files import replace_file
from kisbench.labeltool.sampler import Hold

ID = "ID"
ANNOTATOR = "annotator"
SHORT = "short_label"
LONG = "long_label"
LABEL_COLUMNS = (ID, SHORT, LONG, ANNOTATOR)
SKIP_COLUMNS = (ID, ANNOTATOR, "reason")
LOCK_TIMEOUT_S = 30.0
T = TypeVar("T")


class Taken(Exception):
    """The image was labelled or skipped meanwhile (another tab, another annotator)."""


def skipped_path(labels_path: Path) -> Path:
    """``labels/demo.csv`` -> ``labels/demo.skipped.csv``."""
    labels_path = Path(labels_path)
    return labels_path.with_name(f"{labels_path.stem}.skipped.csv")


def clean_text(text: str, what: str) -> str:
    """One line, single spaces: what ``read_labels`` would make of it anyway."""
    cleaned = " ".join(str(text).split())
    if not cleaned:
        raise InputError(f"the {what} is empty")
    return cleaned


@dataclass
class Table:
    header: list[str]
    rows: list[dict[str, str]] = field(default_factory=list)


def read_table(path: Path, columns: tuple[str, ...], required: tuple[str, ...]) -> Table:
    """A CSV as header + rows of strings; a missing file is an empty table of ``columns``."""
    path = Path(path)
    if not path.exists():
        return Table(list(columns))
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as err:
        raise InputError(f"{path}: not valid UTF-8 ({err.reason}); save it as UTF-8") from None
    reader = csv.DictReader(io.StringIO(text, newline=""))
    header = [h.strip() for h in reader.fieldnames or []]
    if not header:
        return Table(list(columns))
    reader.fieldnames = header
    missing = [c for c in required if c not in header]
    if missing:
        raise InputError(f"{path}, line 1: missing column(s) {', '.join(missing)}")
    rows = []
    for row in reader:
        if None in row or None in row.values():
            raise InputError(f"{path}, line {reader.line_num}: expected {len(header)} fields")
        if any(v.strip() for v in row.values()):
            rows.append({k: v.strip() if k in (ID, ANNOTATOR) else v for k, v in row.items()})
    return Table(header, rows)


def write_table(path: Path, table: Table) -> None:
    """Replace ``path`` atomically and durably with ``table``."""

    def write(f: TextIO) -> None:
        writer = csv.DictWriter(f, fieldnames=table.header, lineterminator="\n")
        writer.writeheader()
        writer.writerows(table.rows)

    replace_file(path, write)


@dataclass(frozen=True)
class State:
    """Who labelled and who skipped which image, as the files say now."""

    labelled: dict[str, str]  # image id -> annotator ("" for rows without one)
    skipped: dict[str, str]  # image id -> annotator

    def taken(self) -> set[str]:
        return set(self.labelled) | set(self.skipped)

    def labels_by(self) -> Counter[str]:
        return Counter(self.labelled.values())


class LabelFiles:
    """The labels CSV and skip sidecar of one collection."""

    def __init__(self, labels_path: Path, *, lock_timeout: float = LOCK_TIMEOUT_S) -> None:
        self.labels_path = Path(labels_path)
        self.skipped_path = skipped_path(self.labels_path)
        self.lock_path = self.labels_path.with_name(f".{self.labels_path.name}.lock")
        self.holds_path = self.labels_path.with_name(f".{self.labels_path.name}.holds.json")
        self.lock_timeout = lock_timeout

    def _read_labels(self) -> Table:
        table = read_table(self.labels_path, LABEL_COLUMNS, (ID, SHORT, LONG))
        others = [h for h in table.header if h.endswith(LABEL_SUFFIX) and h not in (SHORT, LONG)]
        if others:
            raise InputError(
                f"{self.labels_path} has label column(s) {', '.join(others)} that the "
                f"labelling tool does not fill; it writes only {SHORT} and {LONG}"
            )
        return table

    def _read_skips(self) -> Table:
        return read_table(self.skipped_path, SKIP_COLUMNS, SKIP_COLUMNS)

    def state(self) -> State:
        """Both files as they are; no lock needed, since writers replace files whole."""
        labels, skips = self._read_labels(), self._read_skips()
        return State(
            labelled={r[ID]: r.get(ANNOTATOR, "") for r in labels.rows},
            skipped={r[ID]: r.get(ANNOTATOR, "") for r in skips.rows},
        )

    def _check_free(self, image_id: str, labels: Table, skips: Table) -> None:
        for table, what in ((labels, "labelled"), (skips, "skipped")):
            for row in table.rows:
                if row[ID] == image_id:
                    who = row.get(ANNOTATOR) or "someone"
                    raise Taken(f"image {image_id} was already {what} by {who}")

    def add_label(self, image_id: str, short: str, long: str, annotator: str) -> State:
        """Append one label row; :class:`Taken` if the image is no longer free."""
        row = {
            ID: clean_text(image_id, "image id"),
            SHORT: clean_text(short, "short label"),
            LONG: clean_text(long, "long label"),
            ANNOTATOR: clean_text(annotator, "annotator name"),
        }
        with self._exclusive():
            labels, skips = self._read_labels(), self._read_skips()
            self._check_free(row[ID], labels, skips)
            if ANNOTATOR not in labels.header:
                labels.header.append(ANNOTATOR)
                for old in labels.rows:
                    old[ANNOTATOR] = ""
            labels.rows.append({h: row.get(h, "") for h in labels.header})
            write_table(self.labels_path, labels)
        return self.state()

    def add_skip(self, image_id: str, reason: str, annotator: str) -> State:
        """Record that an image should not be labelled, and why."""
        row = {
            ID: clean_text(image_id, "image id"),
            ANNOTATOR: clean_text(annotator, "annotator name"),
            "reason": clean_text(reason, "skip reason"),
        }
        with self._exclusive():
            labels, skips = self._read_labels(), self._read_skips()
            self._check_free(row[ID], labels, skips)
            skips.rows.append({h: row.get(h, "") for h in skips.header})
            write_table(self.skipped_path, skips)
        return self.state()

    def claim(
        self, choose: Callable[[State, dict[str, Hold]], tuple[T, dict[str, Hold]]]
    ) -> tuple[T, State]:
        """Run ``choose`` on the files' state and the holds under the lock, keep the holds it
        returns, and return its choice with the state it saw."""
        with self._exclusive():
            state = self.state()
            holds = self._read_holds()
            choice, new = choose(state, holds)
            if new != holds:
                replace_file(
                    self.holds_path,
                    lambda f: json.dump({i: [h.client, h.until] for i, h in new.items()}, f),
                )
        return choice, state

    def _read_holds(self) -> dict[str, Hold]:
        # Holds only steer tabs apart; an unreadable file just means none.
        try:
            raw = json.loads(self.holds_path.read_text(encoding="utf-8"))
            return {str(i): Hold(str(c), float(u)) for i, (c, u) in raw.items()}
        except (OSError, ValueError, TypeError, AttributeError):
            return {}

    @contextmanager
    def _exclusive(self) -> Iterator[None]:
        # A fresh lock object per change: each opens its own descriptor, so the flock
        # excludes other threads of this process as well as other processes.
        lock = FileLock(self.lock_path, timeout=self.lock_timeout)
        try:
            lock.acquire()
        except Timeout:
            raise InputError(
                f"could not lock {self.labels_path} within {self.lock_timeout:.0f} s: another "
                f"process holds {self.lock_path}; retry, or stop that process"
            ) from None
        try:
            yield
        finally:
            lock.release()
