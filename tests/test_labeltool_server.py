"""The labelling server's page and JSON API, through Flask's test client."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import pytest
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from kisbench import layout
from kisbench.data.collections import list_images, read_labels
from kisbench.data.sampling import sample_ids
from kisbench.labeltool.files import LabelFiles, skipped_path
from kisbench.labeltool.server import Session, create_app
from tests.labeltool_helpers import make_collection


@pytest.fixture
def collection(tmp_path: Path) -> dict[str, Path]:
    return make_collection(tmp_path / "col", n=6)


def session(tmp_path: Path, images: dict[str, Path], annotator: str = "ann") -> Session:
    files = LabelFiles(tmp_path / "labels" / "col.csv")
    return Session("col", annotator, images, files, target=4, seed=7)


@pytest.fixture
def client(tmp_path: Path, collection: dict[str, Path]) -> FlaskClient:
    return create_app(session(tmp_path, collection)).test_client()


def next_id(client: FlaskClient, tab: str = "t1") -> str | None:
    response = client.get(f"/api/next?client={tab}")
    assert response.status_code == 200
    return response.get_json()["id"]


def post(client: FlaskClient, url: str, **payload: str) -> TestResponse:
    return client.post(url, json=payload)


def test_the_page_is_served(client: FlaskClient) -> None:
    page = client.get("/").get_data(as_text=True)
    for element in ('id="short"', 'id="long"', 'id="reason"', 'id="save"', 'id="skip"'):
        assert element in page
    assert client.get("/static/app.js").status_code == 200


def test_next_names_an_image_whose_bytes_are_served(
    client: FlaskClient, collection: dict[str, Path]
) -> None:
    data = client.get("/api/next?client=t1").get_json()
    assert data["id"] in collection
    assert data["collection"] == "col"
    assert data["annotator"] == "ann"
    assert data["progress"] == {
        "labelled": 0,
        "skipped": 0,
        "mine": 0,
        "target": 4,
        "images": 6,
        "remaining": 6,
    }
    image = client.get(data["image"])
    assert image.status_code == 200
    assert image.data == collection[data["id"]].read_bytes()


def test_save_writes_a_row_with_the_annotator(tmp_path: Path, client: FlaskClient) -> None:
    image_id = next_id(client)
    response = post(client, "/api/label", id=image_id, short_label="a cat", long_label="A cat.")
    assert response.status_code == 200
    assert response.get_json()["progress"]["labelled"] == 1
    assert response.get_json()["progress"]["mine"] == 1
    assert response.get_json()["progress"]["remaining"] == 5
    path = tmp_path / "labels" / "col.csv"
    with open(path, newline="", encoding="utf-8") as f:
        assert list(csv.DictReader(f)) == [
            {"ID": image_id, "short_label": "a cat", "long_label": "A cat.", "annotator": "ann"}
        ]
    assert next_id(client) != image_id


def test_a_second_save_of_the_same_image_is_a_conflict(tmp_path: Path, client: FlaskClient) -> None:
    image_id = next_id(client)
    assert (
        post(client, "/api/label", id=image_id, short_label="a", long_label="b").status_code == 200
    )
    again = post(client, "/api/label", id=image_id, short_label="c", long_label="d")
    assert again.status_code == 409
    assert "already labelled by ann" in again.get_json()["error"]
    assert read_labels(tmp_path / "labels" / "col.csv").texts["short"] == ["a"]


def test_another_annotator_sees_the_conflict_too(
    tmp_path: Path, client: FlaskClient, collection: dict[str, Path]
) -> None:
    """Two servers (two annotators) on the same files."""
    other = create_app(session(tmp_path, collection, annotator="bob")).test_client()
    image_id = next_id(client)
    assert (
        post(other, "/api/label", id=image_id, short_label="a", long_label="b").status_code == 200
    )
    late = post(client, "/api/label", id=image_id, short_label="c", long_label="d")
    assert late.status_code == 409
    assert "by bob" in late.get_json()["error"]
    assert next_id(client) != image_id


@pytest.mark.parametrize(
    ("payload", "status"),
    [
        ({"short_label": " ", "long_label": "x"}, 400),
        ({"short_label": "x", "long_label": ""}, 400),
        ({"short_label": "x"}, 400),
        ({"id": "no-such-image", "short_label": "x", "long_label": "y"}, 400),
        ({"id": "../col/images/img00", "short_label": "x", "long_label": "y"}, 400),
    ],
)
def test_bad_labels_are_refused_and_write_nothing(
    tmp_path: Path, client: FlaskClient, payload: dict[str, str], status: int
) -> None:
    response = client.post("/api/label", json={"id": next_id(client), **payload})
    assert response.status_code == status
    assert response.get_json()["error"]
    assert not (tmp_path / "labels" / "col.csv").exists()


def test_a_form_post_is_refused(tmp_path: Path, client: FlaskClient) -> None:
    """What a cross-site form could send: not JSON, so nothing is written."""
    image_id = next_id(client)
    response = client.post(
        "/api/label", data={"id": image_id, "short_label": "x", "long_label": "y"}
    )
    assert response.status_code == 415
    assert not (tmp_path / "labels" / "col.csv").exists()


def test_skip_records_the_reason_and_the_image_never_returns(
    tmp_path: Path, client: FlaskClient, collection: dict[str, Path]
) -> None:
    skipped = next_id(client)
    assert post(client, "/api/skip", id=skipped, reason="").status_code == 400
    response = post(client, "/api/skip", id=skipped, reason="too dark")
    assert response.status_code == 200
    assert response.get_json()["progress"]["skipped"] == 1
    with open(skipped_path(tmp_path / "labels" / "col.csv"), newline="") as f:
        assert list(csv.DictReader(f)) == [
            {"ID": skipped, "annotator": "ann", "reason": "too dark"}
        ]
    labelled = []
    while (image_id := next_id(client)) is not None:
        assert (
            post(client, "/api/label", id=image_id, short_label="s", long_label="l").status_code
            == 200
        )
        labelled.append(image_id)
    assert sorted(labelled) == sorted(set(collection) - {skipped})
    done = client.get("/api/next?client=t1").get_json()
    assert done["id"] is None
    assert done["progress"]["remaining"] == 0


def test_two_tabs_get_two_images(client: FlaskClient) -> None:
    assert next_id(client, "tab-a") != next_id(client, "tab-b")


def test_two_annotators_servers_get_two_images(
    tmp_path: Path, client: FlaskClient, collection: dict[str, Path]
) -> None:
    """The holds are in a file beside the labels, so a second server sees them too."""
    other = create_app(session(tmp_path, collection, annotator="bob")).test_client()
    mine = next_id(client, "tab-a")
    theirs = next_id(other, "tab-b")
    assert mine != theirs
    assert next_id(client, "tab-a") == mine


def test_an_unreadable_holds_file_is_no_error(tmp_path: Path, client: FlaskClient) -> None:
    first = next_id(client, "tab-a")
    (tmp_path / "labels" / ".col.csv.holds.json").write_text("{not json", encoding="utf-8")
    assert next_id(client, "tab-b") == first  # the hold is forgotten, nothing fails


def test_a_restarted_server_resumes(
    tmp_path: Path, client: FlaskClient, collection: dict[str, Path]
) -> None:
    for _ in range(3):
        image_id = next_id(client)
        assert (
            post(client, "/api/label", id=image_id, short_label="s", long_label="l").status_code
            == 200
        )
    would_come = next_id(client)
    restarted = create_app(session(tmp_path, collection)).test_client()
    assert next_id(restarted) == would_come
    assert restarted.get("/api/next").get_json()["progress"]["labelled"] == 3


def test_unknown_images_are_not_found(client: FlaskClient) -> None:
    assert client.get("/images/nothing").status_code == 404
    assert client.get("/images/../../etc/passwd").status_code == 404


def test_the_demo_collection_continues_its_recorded_sample(tmp_path: Path, repo_root: Path) -> None:
    """labels/demo.csv is the first 100 draws of seed 2024 (labels/README.md): the tool's
    default seed offers the 101st next, and a skip is replaced by the draw after it."""
    ids, paths = list_images(repo_root / layout.images_dir("demo"))
    labels = tmp_path / "demo.csv"
    shutil.copy(repo_root / layout.labels_path("demo"), labels)
    files = LabelFiles(labels)
    app = create_app(Session("demo", "ann", dict(zip(ids, paths, strict=True)), files, 600))
    client = app.test_client()
    (first,) = set(sample_ids(ids, 101, 2024)) - set(sample_ids(ids, 100, 2024))
    assert next_id(client) == first
    assert post(client, "/api/skip", id=first, reason="test").status_code == 200
    second = next_id(client)
    assert post(client, "/api/label", id=second, short_label="s", long_label="l").status_code == 200
    assert sorted(read_labels(labels).ids) == sorted(sample_ids(ids, 101, 2024, [first]))
