"""docs/collections.md "Your own collection", word for word: its bash block run as written
(only the two placeholder paths replaced) on a generated collection with no params entry,
in a copy of the smoke run, to the report."""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from PIL import Image

from kisbench.tools.smoke import dvc_env
from tests.imagefiles import jpeg_bytes, picture

REPO = Path(__file__).resolve().parents[1]
MARKER = "<!-- own-collection recipe: tests/test_own_collection.py runs this block -->"


def recipe() -> str:
    text = (REPO / "docs" / "collections.md").read_text(encoding="utf-8")
    after = text.split(MARKER, 1)[1]
    match = re.match(r"\s*```bash\n(.*?)```", after, re.S)
    assert match, "the recipe's bash block must follow its marker"
    return match.group(1)


def make_source(root: Path) -> tuple[Path, Path]:
    """12 images (JPEGs, two in a subfolder, one transparent PNG) and labels for 4."""
    images = root / "images"
    (images / "sub").mkdir(parents=True)
    for i in range(1, 11):
        (images / f"{i:05d}.jpg").write_bytes(jpeg_bytes(picture(80, 60, seed=100 + i)))
    (images / "sub" / "a.jpg").write_bytes(jpeg_bytes(picture(80, 60, seed=200)))
    rgba = picture(64, 64, seed=300).convert("RGBA")
    rgba.putalpha(Image.new("L", rgba.size, 128))
    rgba.save(images / "sub" / "b.png")
    labels = root / "labels.csv"
    labels.write_text(
        "ID,short_label,long_label\n00001,a,first\n00007,b,seventh\nsub/a,c,the first "
        'in the subfolder\nsub/b,d,"a transparent one, composited on white"\n',
        encoding="utf-8",
    )
    return images, labels


@pytest.mark.slow
def test_the_own_collection_recipe_word_for_word(
    smoke_copy: Callable[[str], Path], tmp_path: Path
) -> None:
    ws = smoke_copy("own_collection")
    images, labels = make_source(tmp_path / "src")
    script = recipe()
    assert "/path/to/your/images" in script and "/path/to/your/labels.csv" in script
    script = script.replace("/path/to/your/images", str(images))
    script = script.replace("/path/to/your/labels.csv", str(labels))
    proc = subprocess.run(
        ["bash", "-e", "-c", script],
        cwd=ws,
        env=dvc_env(),
        text=True,
        capture_output=True,
        timeout=1500,
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    assert "0 error(s)" in proc.stdout  # kisbench check --collection mine

    # DVC tracks the images, git would take the .dvc file and the labels, not the images
    # (the workspace experiment leaves the index as DVC wants it: the files are checked)
    assert (ws / "data" / "collections" / "mine" / "images.dvc").is_file()
    assert (ws / "labels" / "mine.csv").read_bytes() == labels.read_bytes()
    ignored = subprocess.run(
        ["git", "check-ignore", "-q", "data/collections/mine/images/00001.jpg"], cwd=ws
    )
    assert ignored.returncode == 0

    facts = json.loads((ws / "data" / "checks" / "mine.report.json").read_text())
    assert facts["images"] == 12 and facts["labelsets"] == {"short": 4, "long": 4}
    kis = json.loads((ws / "metrics" / "kis.json").read_text())
    assert "mine" in json.dumps(kis), kis
    assert "mine" in (ws / "reports" / "report.md").read_text(encoding="utf-8")
