"""Headless Chromium for the browser tests: Debian's package, flags for running it as root
with no network, and a failure that says how to install it (never a silent skip)."""

from __future__ import annotations

import os
import shutil

import pytest

# As this machine's notes prescribe for a headless Chromium as root with no network.
HEADLESS_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def chromium(purpose: str) -> str:
    """The Chromium binary: KISBENCH_CHROMIUM, else Debian's ``chromium`` on PATH; missing,
    the calling test fails, naming ``purpose`` (what cannot be checked without it)."""
    found = os.environ.get("KISBENCH_CHROMIUM") or shutil.which("chromium")
    if not found:
        pytest.fail(
            f"Debian's chromium is not installed, so {purpose}: `make setup` as root installs "
            "it (apt-get install chromium), or set KISBENCH_CHROMIUM to a Chromium binary"
        )
    return found
