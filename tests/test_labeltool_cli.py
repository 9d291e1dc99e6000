"""``python -m kisbench.labeltool serve`` as a user starts it: a real process and socket."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow


def start(repo: Path, labels: Path, port: int) -> subprocess.Popen[str]:
    command = [sys.executable, "-m", "kisbench.labeltool", "serve", "--collection", "demo"]
    command += ["--annotator", "cli", "--labels", str(labels), "--port", str(port)]
    return subprocess.Popen(
        command,
        cwd=repo,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        # A shell's background job ignores SIGINT; a user's Ctrl+C does not.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )


def test_serve_listens_on_loopback_and_stops_on_ctrl_c(repo_root: Path, tmp_path: Path) -> None:
    labels = tmp_path / "demo.csv"
    server = start(repo_root, labels, 0)  # port 0: any free port
    try:
        assert server.stdout is not None
        lines = [server.stdout.readline(), server.stdout.readline()]
        found = re.search(r"open http://127\.0\.0\.1:(\d+)/", "".join(lines))
        assert found, lines
        port = int(found.group(1))
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/next?client=t", timeout=30) as r:
            data = json.load(r)
        assert data["collection"] == "demo" and data["annotator"] == "cli"
        assert data["progress"]["images"] == 252

        busy = start(repo_root, labels, port)
        _, err = busy.communicate(timeout=120)
        assert busy.returncode == 1
        assert f"Port {port} is in use" in err  # werkzeug says so, and exits with 1

        server.send_signal(signal.SIGINT)
        out, _ = server.communicate(timeout=30)
        assert server.returncode == 0
        assert f"stopped; every saved label is in {labels}" in out
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
