"""Duplicate images and declared equivalents (kisbench.data.duplicates)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from kisbench.data.duplicates import (
    duplicate_partners,
    equivalents_text,
    exact_groups,
    hamming,
    near_groups,
    read_equivalents,
)
from kisbench.errors import InputError


def write(tmp_path, text):
    path = tmp_path / "equivalents.csv"
    path.write_text(text, encoding="utf-8")
    return path


def test_equivalents_form_transitive_groups_and_round_trip(tmp_path):
    path = write(tmp_path, "id,same_as\nb,a\nc,b\n\nx,y\n")
    groups = read_equivalents(path, ["a", "b", "c", "x", "y", "z"])
    assert groups == [["a", "b", "c"], ["x", "y"]]
    text = equivalents_text(groups)
    assert text == "id,same_as\na,b\na,c\nx,y\n"
    assert read_equivalents(write(tmp_path, text)) == groups
    assert equivalents_text([]) == "id,same_as\n"


def test_a_missing_file_declares_nothing(tmp_path):
    assert read_equivalents(tmp_path / "none.csv") == []


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("ID,same\na,b\n", r"line 1: expected the header id,same_as"),
        ("id,same_as\na,b\nc\n", r"line 3: expected two ids"),
        ("id,same_as\na,a\n", r"line 2: 'a' is declared the same as itself"),
        ("id,same_as\na,b\nb,q\n", r"1 id\(s\) are not images of the collection:\n  line 3: 'q'"),
    ],
)
def test_bad_equivalents_name_the_line(tmp_path, text, message):
    with pytest.raises(InputError, match=message):
        read_equivalents(write(tmp_path, text), ["a", "b", "c"])


def test_near_groups_match_all_pairs_by_hand():
    rng = np.random.default_rng(4)
    hashes = [int(h) for h in rng.integers(0, 2**62, size=60)]
    hashes[10] = hashes[3] ^ 0b101  # 2 bits apart
    hashes[40] = hashes[10] ^ (1 << 50)  # 1 bit from hashes[10], 3 from hashes[3]
    hashes[50] = hashes[20] ^ 0b1111111  # 7 bits: not near at 6
    ids = [f"i{k:02d}" for k in range(60)]
    pairs = [
        (a, b)
        for a, b in itertools.combinations(range(60), 2)
        if hamming(hashes[a], hashes[b]) <= 6
    ]
    assert pairs == [(3, 10), (3, 40), (10, 40)]  # the brute force: 2, 3 and 1 bits
    assert near_groups(ids, hashes) == [["i03", "i10", "i40"]]
    assert near_groups(ids, hashes, max_bits=7) == [["i03", "i10", "i40"], ["i20", "i50"]]


def test_exact_groups_and_partners():
    groups = exact_groups(["a", "b", "c", "d"], ["h1", "h2", "h1", "h1"])
    assert groups == [["a", "c", "d"]]
    assert duplicate_partners([*groups, ["b", "e"]]) == {
        "a": ["c", "d"],
        "b": ["e"],
        "c": ["a", "d"],
        "d": ["a", "c"],
        "e": ["b"],
    }


def test_the_check_reads_and_validates_the_equivalents(tmp_path):
    from kisbench.data.checks import ERROR, check_collection
    from tests import imagefiles

    images = tmp_path / "c" / "images"
    imagefiles.write_photos(images, 3)
    ids = sorted(p.stem for p in images.iterdir())
    (images.parent / "equivalents.csv").write_text(f"id,same_as\n{ids[1]},{ids[0]}\n")
    report = check_collection("c", images, None, skip_unreadable=False, near=False)
    assert report.equivalents == [[ids[0], ids[1]]]
    assert report.summary()["equivalents"] == [[ids[0], ids[1]]]
    (images.parent / "equivalents.csv").write_text(f"id,same_as\n{ids[1]},nope\n")
    report = check_collection("c", images, None, skip_unreadable=False, near=False)
    errors = [p for p in report.problems if p.level == ERROR]
    assert len(errors) == 1 and "line 2: 'nope'" in errors[0].message
    assert errors[0].where.endswith("equivalents.csv")
