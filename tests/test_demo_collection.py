"""The demo collection ships complete: labels by the recorded protocol, attribution for all."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from PIL import Image

from kisbench import files
from kisbench.data.collections import list_images, read_labels
from kisbench.data.duplicates import (
    NEAR_BITS,
    find_duplicates,
    hamming,
    perceptual_hash,
)
from kisbench.data.sampling import sample_ids
from kisbench.layout import images_dir, labels_path
from kisbench.tools.attribution import read_manifest, render

DEMO_SEED = 2024  # recorded in labels/README.md
REPLACED: list[str] = []  # labels/README.md: no image was replaced


def demo(repo: Path):
    ids, paths = list_images(repo / images_dir("demo"))
    return ids, paths, read_labels(repo / labels_path("demo"))


def test_every_label_id_is_an_image_and_unique(repo_root):
    ids, _, labels = demo(repo_root)
    assert len(ids) == 252  # docs/collections.md
    assert len(labels.ids) == 100 == len(set(labels.ids))
    assert set(labels.ids) <= set(ids)


def test_labels_are_the_recorded_seeded_sample(repo_root):
    ids, _, labels = demo(repo_root)
    assert sorted(labels.ids) == sorted(sample_ids(ids, 100, DEMO_SEED, REPLACED))


def test_labels_are_non_empty_and_long_is_longer(repo_root):
    _, _, labels = demo(repo_root)
    assert labels.labelsets == ["short", "long"]
    for i, short, long in zip(labels.ids, labels.texts["short"], labels.texts["long"], strict=True):
        assert short.strip() and long.strip(), i
        assert len(long) > len(short), i
        assert len(long.split()) >= 2 * len(short.split()) or len(long) > 2 * len(short), i
        assert long.count(".") >= 1, i  # sentences, not keywords


def test_attribution_covers_every_image_and_is_current(repo_root):
    folder = repo_root / "data" / "collections" / "demo"
    ids, _, _ = demo(repo_root)
    manifest = read_manifest(folder)
    assert sorted(manifest["id"]) == ids
    # Every image names its author and licence; two (00093, 00233) have no source page.
    assert (manifest[["author", "licence"]] != "").all().all()
    attribution = (folder / "ATTRIBUTION.md").read_text(encoding="utf-8")
    assert attribution == render(manifest, "demo", "data/collections/demo")
    for i in ids:
        assert f"images/{i}.jpg" in attribution


def test_labels_file_is_plain_thesis_format(repo_root):
    df = pd.read_csv(repo_root / labels_path("demo"), dtype=str)
    assert list(df.columns) == ["ID", "short_label", "long_label"]
    assert df["ID"].str.fullmatch(r"\d{5}").all()


def test_demo_collection_has_no_duplicates(repo_root):
    """No two demo images are the same file, nor the same picture at another size: pHash
    Hamming distance above NEAR_BITS (6 of 63 bits) for every pair. The three same-photo
    pairs it once held (labels/README.md) were at distance 0-2; the closest two different
    photographs are at 12."""
    ids, paths, _ = demo(repo_root)
    assert len({files.sha256(p) for p in paths}) == len(paths)
    hashes = [perceptual_hash(p) for p in paths]
    closest = min(
        (hamming(hashes[a], hashes[b]), ids[a], ids[b])
        for a in range(len(ids))
        for b in range(a + 1, len(ids))
    )
    assert closest[0] > NEAR_BITS, closest
    assert find_duplicates(ids, paths) == {"exact": [], "near": []}


def test_the_hash_finds_a_rescaled_demo_image(repo_root, tmp_path):
    """The no-duplicates test can fail: a demo photograph saved at half size and lower JPEG
    quality is found as a near duplicate of the original (and only of it)."""
    ids, paths, _ = demo(repo_root)
    with Image.open(paths[0]) as im:
        im.convert("RGB").resize((im.width // 2, im.height // 2)).save(
            tmp_path / "copy.jpg", quality=60
        )
    found = find_duplicates([*ids, "zcopy"], [*paths, tmp_path / "copy.jpg"])
    assert found == {"exact": [], "near": [[ids[0], "zcopy"]]}
