"""`kisbench check` on a generated project with a known set of mistakes: every one reported
at once, with the project's message, in one run, and the exit status by the worst level."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from kisbench.data.checks import check_collection, gate, gate_path, report_path
from kisbench.tools.check import run_checks
from kisbench.tools.main import app
from stages import check as check_stage
from tests.imagefiles import jpeg_bytes, picture

REPO = Path(__file__).resolve().parents[1]

GOOD = {
    "run": {"models": ["m"], "collections": ["c"]},
    "models": {"m": {"family": "open_clip", "model": "x"}},
    "collections": {"c": {"xmax": 20}},
}


def make_collection(root: Path, name: str = "c", n: int = 6) -> Path:
    """n distinct pictures 00001..n as JPEG, no duplicates; labels for the first three."""
    folder = root / "data" / "collections" / name / "images"
    folder.mkdir(parents=True)
    for i in range(1, n + 1):
        (folder / f"{i:05d}.jpg").write_bytes(jpeg_bytes(picture(96, 64, seed=i)))
    labels = root / "labels" / f"{name}.csv"
    labels.parent.mkdir(exist_ok=True)
    labels.write_text(
        "ID,short_label,long_label\n" + "".join(f"{i:05d},s{i},l{i}\n" for i in (1, 2, 3)),
        encoding="utf-8",
    )
    return folder


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    make_collection(tmp_path)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(GOOD), encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def cli(*args: str):  # noqa: ANN201 - a click Result
    return CliRunner().invoke(app, ["check", *args])


def test_a_clean_project_passes(project: Path) -> None:
    result = cli()
    assert result.exit_code == 0, result.output
    assert "0 error(s), 0 warning(s)" in result.output
    assert "c: 6 images (0 unreadable)" in result.output
    assert "short 3 queries, long 3 queries" in result.output


def test_every_mistake_at_once(project: Path) -> None:
    folder = project / "data" / "collections" / "c" / "images"
    (folder / "00007.jpg").write_bytes(b"")  # empty file
    (folder / "00008.jpg").write_bytes(b"not an image at all")
    shutil.copy(folder / "00001.jpg", folder / "00009.jpg")  # same bytes
    (folder / "00010.jpg").write_bytes(jpeg_bytes(picture(192, 128, seed=2)))  # 00002, larger
    (project / "labels" / "c.csv").write_text(
        "ID,short_label,long_label\n00001,a,b\n5,c,d\n00002.jpg,e,f\nzzz,g,h\n",
        encoding="utf-8",
    )
    params = {
        "run": {"models": ["m", "clip"], "collections": ["c", "gone", "nofolder"]},
        "models": {
            "m": {"family": "open_clip", "model": "x"},
            "bad": {"family": "open_clipp", "model": "x"},
            "worse": {"family": "align", "sorce": "y"},
        },
        "collections": {"c": {"xmax": 20}, "gone": {}},
        "embed": {"batchsize": 8},
        "reset": {"models": ["nope"]},
    }
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False), encoding="utf-8")
    result = cli("--no-near")
    out = result.output
    assert result.exit_code == 1, out
    expected = [
        # params: misspelt key, unknown model keys (the valid ones listed), bad entries
        "unknown key 'embed.batchsize' (did you mean 'batch_size'?)",
        "run.models: unknown model key 'clip'",
        "`models` defines: m, bad, worse",
        "reset.models: unknown model key 'nope'",
        "unknown family 'open_clipp' (did you mean 'open_clip'?)",
        "align entries take no 'sorce' (did you mean 'source'?)",
        # collections: an entry without a folder, a name with neither
        "collection folder data/collections/gone/images does not exist",
        "unknown collection 'nofolder'",
        # images: headers, exact duplicates
        "2 image(s) cannot be read",
        "00007: empty file (0 bytes)",
        "00008: not an image",
        "1 group(s) of exact duplicates (same bytes): 00001, 00009",
        # labels: every ID, with today's hints
        "3 labelled ID(s) are not images of the collection",
        "line 3: '5' (did you mean '00005'?",
        "line 4: '00002.jpg' (did you mean '00002'? IDs have no file extension)",
        "line 5: 'zzz'",
        "1 target(s) have a duplicate in the collection: 00001 (00009)",
    ]
    for text in expected:
        assert text in out, f"{text!r} missing from:\n{out}"
    assert "near duplicates not looked for" in out


def test_simulation_pairs_are_checked_before_anything_is_embedded(project: Path) -> None:
    params = {**GOOD, "simulate": {"pairs": ["m:n", "m-m", "m:m"]}}
    (project / "params.yaml").write_text(yaml.safe_dump(params), encoding="utf-8")
    result = cli("--no-near")
    assert result.exit_code == 1, result.output
    assert "simulate.pairs: 'm:n' names 'n', which is not in run.models" in result.output
    assert "simulate.pairs: 'm-m' is not TEXT:FEEDBACK" in result.output
    assert "'m:m'" not in result.output  # a valid pair


def test_near_duplicates_are_the_same_picture_at_another_size(project: Path) -> None:
    folder = project / "data" / "collections" / "c" / "images"
    (folder / "00010.jpg").write_bytes(jpeg_bytes(picture(300, 200, seed=2)))
    report = check_collection(
        "c", folder, project / "labels" / "c.csv", skip_unreadable=False, near=True
    )
    assert report.images is not None
    assert report.images.near == [["00002", "00010"]]
    assert report.images.exact == []
    assert [p.level for p in report.problems] == ["warning", "warning"]


def test_unreadable_images_are_warnings_when_skipped(project: Path) -> None:
    folder = project / "data" / "collections" / "c" / "images"
    (folder / "00002.jpg").write_bytes(b"")
    (project / "params.yaml").write_text(
        yaml.safe_dump({**GOOD, "embed": {"on_unreadable": "skip"}}), encoding="utf-8"
    )
    report = run_checks(Path("params.yaml"), near=False)
    assert report.errors == 0 and report.warnings == 2, [str(p) for p in report.problems]
    assert report.collections[0].skipped_targets == ["00002"]
    assert cli("--no-near").exit_code == 0


def test_missing_labels_and_parse_errors_by_line(project: Path) -> None:
    (project / "labels" / "c.csv").unlink()
    assert "labels file labels/c.csv does not exist" in cli("--no-near").output
    (project / "labels" / "c.csv").write_text(
        "ID,short_label,long_label\n00001,a,b\n00002,a,b,c\n", encoding="utf-8"
    )
    out = cli("--no-near").output
    assert "labels/c.csv: line 3: 4 fields, expected 3" in out


def test_the_stage_writes_a_gate_that_changes_only_with_the_result(project: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(check_stage.app, ["--collection", "c"])
    assert result.exit_code == 0, result.output
    first = gate_path("c").read_bytes()
    assert json.loads(first) == gate("c")
    summary = json.loads(report_path("c").read_text())
    assert summary["images"] == 6 and summary["labelsets"] == {"short": 3, "long": 3}
    assert str(project) not in report_path("c").read_text()  # no absolute path, no time
    # a new duplicate changes the report but not the gate, which the embed stages depend on
    folder = project / "data" / "collections" / "c" / "images"
    shutil.copy(folder / "00001.jpg", folder / "00009.jpg")
    assert runner.invoke(check_stage.app, ["--collection", "c"]).exit_code == 0
    assert gate_path("c").read_bytes() == first
    assert json.loads(report_path("c").read_text())["exact_duplicates"] == [["00001", "00009"]]
    # a failing check exits 1 with the problems and leaves no new gate
    gate_path("c").unlink()
    (project / "labels" / "c.csv").write_text("ID,short_label\n42,x\n", encoding="utf-8")
    result = runner.invoke(check_stage.app, ["--collection", "c"])
    assert result.exit_code == 1
    assert not gate_path("c").exists()
