"""The labels file and skip sidecar: format, conflicts, atomic and concurrent writes."""

from __future__ import annotations

import csv
import multiprocessing
import os
import signal
import subprocess
import sys
import time
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from pathlib import Path

import pytest

from kisbench import files as atomic_files
from kisbench.data.collections import read_labels
from kisbench.errors import InputError
from kisbench.labeltool.files import LabelFiles, Taken, skipped_path

THESIS = (
    "ID,short_label,long_label\n"
    'a1,red apple,"A red apple, shiny, on a table."\n'
    "a2,blue car,A small blue car parked on a street.\n"
)


def rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def test_new_file_has_the_annotator_column(tmp_path: Path) -> None:
    path = tmp_path / "labels" / "c.csv"
    LabelFiles(path).add_label("x1", "  a  dog ", "A dog\n on grass.", "ann")
    assert path.read_text(encoding="utf-8") == (
        "ID,short_label,long_label,annotator\nx1,a dog,A dog on grass.,ann\n"
    )
    labels = read_labels(path)
    assert labels.ids == ["x1"]
    assert labels.texts == {"short": ["a dog"], "long": ["A dog on grass."]}


def test_thesis_file_gains_the_column_and_keeps_its_rows(tmp_path: Path) -> None:
    path = tmp_path / "c.csv"
    path.write_text(THESIS, encoding="utf-8")
    before = read_labels(path)
    LabelFiles(path).add_label("a3", "green leaf", "A green leaf with drops.", "bob")
    after = read_labels(path)
    assert after.ids == [*before.ids, "a3"]
    assert after.texts["short"] == [*before.texts["short"], "green leaf"]
    assert after.texts["long"] == [*before.texts["long"], "A green leaf with drops."]
    assert [r["annotator"] for r in rows(path)] == ["", "", "bob"]


def test_a_partial_labelset_keeps_its_empty_labels(tmp_path: Path) -> None:
    """Long labels for some targets only (empty = no long query): the tool reads such a
    file, counts its rows as labelled and appends without filling or dropping them."""
    path = tmp_path / "c.csv"
    path.write_text(THESIS + "a4,green leaf,\n", encoding="utf-8")
    store = LabelFiles(path)
    assert set(store.state().labelled) == {"a1", "a2", "a4"}
    store.add_label("a5", "yellow cup", "A yellow cup on a saucer.", "bob")
    after = read_labels(path)
    assert after.ids == ["a1", "a2", "a4", "a5"]
    assert after.counts() == {"short": 4, "long": 3}
    assert "a4" not in after.queries("long")
    assert rows(path)[2] == {
        "ID": "a4",
        "short_label": "green leaf",
        "long_label": "",
        "annotator": "",
    }


def test_a_taken_image_is_refused_and_the_files_stay_as_they_were(tmp_path: Path) -> None:
    path = tmp_path / "c.csv"
    path.write_text(THESIS, encoding="utf-8")
    store = LabelFiles(path)
    store.add_skip("s1", "too dark", "ann")
    labels_before = path.read_bytes()
    skips_before = skipped_path(path).read_bytes()
    with pytest.raises(Taken, match="a1 was already labelled"):
        store.add_label("a1", "x", "y", "bob")
    with pytest.raises(Taken, match="a2 was already labelled"):
        store.add_skip("a2", "dull", "bob")
    with pytest.raises(Taken, match="s1 was already skipped by ann"):
        store.add_label("s1", "x", "y", "bob")
    with pytest.raises(Taken, match="s1 was already skipped"):
        store.add_skip("s1", "again", "bob")
    assert path.read_bytes() == labels_before
    assert skipped_path(path).read_bytes() == skips_before


def test_skips_go_to_the_sidecar(tmp_path: Path) -> None:
    path = tmp_path / "c.csv"
    store = LabelFiles(path)
    store.add_skip("p1", "blurry, and dark", "ann")
    store.add_skip("p2", "duplicate", "bob")
    assert skipped_path(path) == tmp_path / "c.skipped.csv"
    assert rows(skipped_path(path)) == [
        {"ID": "p1", "annotator": "ann", "reason": "blurry, and dark"},
        {"ID": "p2", "annotator": "bob", "reason": "duplicate"},
    ]
    assert not path.exists()
    state = store.state()
    assert state.skipped == {"p1": "ann", "p2": "bob"}
    assert state.taken() == {"p1", "p2"}


@pytest.mark.parametrize(
    ("short", "long", "annotator", "what"),
    [(" ", "y", "ann", "short label"), ("x", "\n", "ann", "long label"), ("x", "y", "", "annot")],
)
def test_empty_fields_are_refused(
    tmp_path: Path, short: str, long: str, annotator: str, what: str
) -> None:
    path = tmp_path / "c.csv"
    with pytest.raises(InputError, match=what):
        LabelFiles(path).add_label("x1", short, long, annotator)
    assert not path.exists()


def test_unfillable_label_columns_are_an_error(tmp_path: Path) -> None:
    path = tmp_path / "c.csv"
    path.write_text("ID,short_label,long_label,medium_label\nq,a,b,c\n", encoding="utf-8")
    with pytest.raises(InputError, match="medium_label"):
        LabelFiles(path).state()


def test_a_ragged_row_names_its_line(tmp_path: Path) -> None:
    path = tmp_path / "c.csv"
    path.write_text("ID,short_label,long_label\nq,a,b\nr,only\n", encoding="utf-8")
    with pytest.raises(InputError, match="line 3"):
        LabelFiles(path).state()


def test_a_failed_write_leaves_the_old_file_and_no_temp(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "c.csv"
    path.write_text(THESIS, encoding="utf-8")
    before = path.read_bytes()

    def crash(*args: object) -> None:
        raise OSError("disk pulled out")

    monkeypatch.setattr(atomic_files.os, "replace", crash)
    with pytest.raises(OSError, match="disk pulled out"):
        LabelFiles(path).add_label("a3", "x", "y", "ann")
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.endswith(".lock")) == ["c.csv"]


WRITER = """
import sys
from kisbench.labeltool.files import LabelFiles
store = LabelFiles(sys.argv[1])
for i in range(100000):
    store.add_label(f"id{i:06d}", f"short {i}", "a long label " * 20, "ann")
"""


def test_readers_and_a_killed_writer_only_see_whole_files(tmp_path: Path) -> None:
    """Reads during a stream of writes, then SIGKILL at an arbitrary moment: every read
    and the final file parse, and hold rows 0..k-1 each once, k never going down."""
    path = tmp_path / "c.csv"
    child = subprocess.Popen([sys.executable, "-c", WRITER, str(path)], cwd=Path.cwd())
    seen = [0]
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and child.poll() is None and seen[-1] < 150:
            if path.exists():
                ids = read_labels(path).ids
                assert ids == [f"id{i:06d}" for i in range(len(ids))]
                assert len(ids) >= seen[-1]
                seen.append(len(ids))
        assert child.poll() is None, "the writer stopped by itself"
    finally:
        if child.poll() is None:
            os.kill(child.pid, signal.SIGKILL)
        child.wait()
    assert len(set(seen)) > 20  # the reads did overlap many writes
    labels = read_labels(path)
    k = len(labels.ids)
    assert k >= seen[-1]
    assert labels.ids == [f"id{i:06d}" for i in range(k)]
    assert labels.texts["short"] == [f"short {i}" for i in range(k)]


def _label_all(path: str, ids: list[str], who: str) -> list[str]:
    store = LabelFiles(Path(path))
    won = []
    for image_id in ids:
        try:
            store.add_label(image_id, f"s {image_id}", f"l {image_id} by {who}", who)
            won.append(image_id)
        except Taken:
            pass
    return won


@pytest.mark.parametrize("pool", ["processes", "threads"])
def test_concurrent_writers_lose_and_double_nothing(tmp_path: Path, pool: str) -> None:
    """Four writers (processes, or threads as in the server) race to label the same 40
    images, each in its own order."""
    path = tmp_path / "c.csv"
    ids = [f"im{i:02d}" for i in range(40)]
    orders = [ids, ids[::-1], ids[::2] + ids[1::2], ids[20:] + ids[:20]]
    executor = (
        ProcessPoolExecutor(4, mp_context=multiprocessing.get_context("fork"))
        if pool == "processes"
        else ThreadPoolExecutor(4)
    )
    with executor:
        won = list(executor.map(_label_all, [str(path)] * 4, orders, [f"w{n}" for n in range(4)]))
    saved = rows(path)
    assert sorted(r["ID"] for r in saved) == ids  # every image once: none lost, none doubled
    assert sum(len(w) for w in won) == len(ids)  # each writer was told the truth
    for n, w in enumerate(won):
        assert {r["ID"] for r in saved if r["annotator"] == f"w{n}"} == set(w)
