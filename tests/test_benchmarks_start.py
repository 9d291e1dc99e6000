"""Every benchmark script still starts: benchmarks run rarely and by hand, so an import that
no longer matches the library would otherwise go unseen until someone has a GPU booked."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest
from typer.testing import CliRunner

SCRIPTS = sorted(
    p.stem
    for p in (Path(__file__).resolve().parents[1] / "benchmarks").glob("*.py")
    if p.stem not in {"__init__", "machine"}
)


def test_the_benchmarks_are_found() -> None:
    assert {"bench_embed", "bench_rank", "bench_memory"} <= set(SCRIPTS)


@pytest.mark.parametrize("name", SCRIPTS)
def test_benchmark_answers_help(name: str) -> None:
    module = importlib.import_module(f"benchmarks.{name}")
    result = CliRunner().invoke(module.app, ["--help"])
    assert result.exit_code == 0, result.output
    assert "Usage" in result.output
