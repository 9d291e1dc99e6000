"""The demo collection ships complete: labels by the recorded protocol, attribution for all."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from kisbench.data.collections import list_images, read_labels
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
    assert len(ids) == 255
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
