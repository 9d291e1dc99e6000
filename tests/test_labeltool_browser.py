"""End to end in a real headless browser: label two images, skip one, check the files.

Needs Debian's chromium (``make setup`` installs it when run as root). Without it this
test fails, on purpose: a browser test that skips would let a broken page through CI.
"""

from __future__ import annotations

import csv
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from werkzeug.serving import make_server

from kisbench.data.collections import read_labels
from kisbench.labeltool.files import LabelFiles, skipped_path
from kisbench.labeltool.server import Session, create_app
from tests.browser import HEADLESS_ARGS, chromium
from tests.labeltool_helpers import make_collection

pytestmark = pytest.mark.slow

TIMEOUT_MS = 30_000


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    images = make_collection(tmp_path / "col", n=5)
    labels = tmp_path / "labels" / "col.csv"
    session = Session("col", "tester", images, LabelFiles(labels), target=3, seed=1)
    httpd = make_server("127.0.0.1", 0, create_app(session), threaded=True)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.port}/", labels
    finally:
        httpd.shutdown()
        thread.join(timeout=10)
        httpd.server_close()


def test_label_two_skip_one(server: tuple[str, Path], tmp_path: Path) -> None:
    from playwright.sync_api import expect, sync_playwright

    url, labels = server
    with sync_playwright() as p:
        browser = p.chromium.launch_persistent_context(
            str(tmp_path / "profile"),  # a fresh, empty profile
            executable_path=chromium("the labelling tool's browser test cannot run"),
            args=HEADLESS_ARGS,
            headless=True,
            viewport={"width": 1280, "height": 800},
        )
        try:
            page = browser.pages[0] if browser.pages else browser.new_page()
            page.set_default_timeout(TIMEOUT_MS)
            page.goto(url)
            shown = page.locator("#image-id")
            expect(shown).not_to_have_text("")
            expect(page.locator("#progress-text")).to_contain_text("0 / 3 labelled")

            # 1: keyboard only: the short field has the focus, Enter moves on, Enter saves.
            first = shown.inner_text()
            expect(page.locator("#short")).to_be_focused()
            page.keyboard.type("green square")
            page.keyboard.press("Enter")
            expect(page.locator("#long")).to_be_focused()
            page.keyboard.type("A flat green square filling the whole picture.")
            page.keyboard.press("Enter")
            expect(page.locator("#message")).to_have_text(f"saved {first}")
            expect(shown).not_to_have_text(first)
            # The image really loaded (a broken <img> has naturalWidth 0).
            page.wait_for_function("document.getElementById('image').naturalWidth === 64")

            # 2: the mouse: fill the fields, click Save.
            second = shown.inner_text()
            page.fill("#short", "red square")
            page.fill("#long", "A red square, nothing else.")
            page.click("#save")
            expect(page.locator("#message")).to_have_text(f"saved {second}")
            expect(page.locator("#progress-text")).to_contain_text("2 / 3 labelled")

            # 3: skip: Esc goes to the reason, Enter skips.
            third = shown.inner_text()
            assert third not in (first, second)
            page.keyboard.press("Escape")
            expect(page.locator("#reason")).to_be_focused()
            page.keyboard.type("just a colour")
            page.keyboard.press("Enter")
            expect(page.locator("#message")).to_have_text(f"skipped {third}")
            expect(page.locator("#progress-text")).to_contain_text("1 skipped")
            page.screenshot(path=str(tmp_path / "after.png"))
        finally:
            browser.close()

    read = read_labels(labels)
    assert read.ids == [first, second]
    assert read.texts == {
        "short": ["green square", "red square"],
        "long": ["A flat green square filling the whole picture.", "A red square, nothing else."],
    }
    with open(labels, newline="", encoding="utf-8") as f:
        assert [row["annotator"] for row in csv.DictReader(f)] == ["tester", "tester"]
    with open(skipped_path(labels), newline="", encoding="utf-8") as f:
        assert list(csv.DictReader(f)) == [
            {"ID": third, "annotator": "tester", "reason": "just a colour"}
        ]
