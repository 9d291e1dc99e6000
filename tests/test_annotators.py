"""Metrics per annotator, against hand-worked values."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from kisbench.errors import InputError
from kisbench.evaluation.annotators import (
    EVERYONE,
    UNATTRIBUTED,
    annotator_report,
    metrics_by_annotator,
    read_annotators,
)
from kisbench.labeltool.__main__ import app

LABELS = (
    "ID,short_label,long_label,annotator\n"
    "a1,s,l,ann\n"
    "a2,s,l,ann\n"
    "a3,s,l,ann\n"
    "b1,s,l,bob\n"
    "b2,s,l,bob\n"
    "c1,s,l,\n"
)
# query -> rank of its target
RANKS = {"a1": 1, "a2": 2, "a3": 10, "b1": 1, "b2": 1, "c1": 4}


def ranks_table(ranks: dict[str, int], labelset: str = "short") -> pd.DataFrame:
    return pd.DataFrame(
        {
            "query_id": list(ranks),
            "target_id": list(ranks),
            "labelset": labelset,
            "rank": list(ranks.values()),
            "score": 0.5,
            "top_ids": "x",
        }
    )


def value(table: pd.DataFrame, annotator: str, metric: str) -> float:
    row = table[(table["annotator"] == annotator) & (table["metric"] == metric)]
    assert len(row) == 1
    return float(row["value"].iloc[0])


@pytest.fixture
def labels(tmp_path: Path) -> Path:
    path = tmp_path / "labels.csv"
    path.write_text(LABELS, encoding="utf-8")
    return path


def test_read_annotators(labels: Path, tmp_path: Path) -> None:
    assert read_annotators(labels) == {
        "a1": "ann",
        "a2": "ann",
        "a3": "ann",
        "b1": "bob",
        "b2": "bob",
        "c1": UNATTRIBUTED,
    }
    thesis = tmp_path / "thesis.csv"
    thesis.write_text("ID,short_label,long_label\n007,s,l\n", encoding="utf-8")
    assert read_annotators(thesis) == {"007": UNATTRIBUTED}  # "007" stays a string


def test_metrics_by_annotator_match_hand_worked_values(labels: Path) -> None:
    table = metrics_by_annotator(
        ranks_table(RANKS), read_annotators(labels), n_images=20, n_boot=50
    )
    assert list(table["annotator"].unique()) == [EVERYONE, UNATTRIBUTED, "ann", "bob"]
    queries = table.drop_duplicates("annotator").set_index("annotator")["queries"]
    assert queries.to_dict() == {EVERYONE: 6, UNATTRIBUTED: 1, "ann": 3, "bob": 2}
    # ann: ranks 1, 2, 10
    assert value(table, "ann", "mrr") == pytest.approx((1 + 1 / 2 + 1 / 10) / 3)
    assert value(table, "ann", "r@1") == pytest.approx(1 / 3)
    assert value(table, "ann", "r@5") == pytest.approx(2 / 3)
    assert value(table, "ann", "r@10") == pytest.approx(1.0)
    assert value(table, "ann", "median_rank") == 2
    # bob: ranks 1, 1
    assert value(table, "bob", "mrr") == 1.0
    assert value(table, "bob", "mean_rank") == 1.0
    # no annotator: rank 4
    assert value(table, UNATTRIBUTED, "mrr") == 0.25
    assert value(table, UNATTRIBUTED, "r@1") == 0.0
    # everyone: ranks 1, 2, 10, 1, 1, 4
    assert value(table, EVERYONE, "mrr") == pytest.approx((3 + 1 / 2 + 1 / 10 + 1 / 4) / 6)
    assert value(table, EVERYONE, "mean_rank") == pytest.approx(19 / 6)
    ci = table[table["metric"] == "mrr"]
    assert (ci["low"] <= ci["value"]).all() and (ci["value"] <= ci["high"]).all()


def test_queries_missing_from_the_labels_are_an_error(labels: Path) -> None:
    with pytest.raises(InputError, match="'z9'"):
        metrics_by_annotator(
            ranks_table({**RANKS, "z9": 3}), read_annotators(labels), n_images=20, n_boot=5
        )


def write_ranks(root: Path, model: str) -> None:
    folder = root / "data" / "ranks" / model / "col"
    folder.mkdir(parents=True)
    ranks_table(RANKS, "short").to_csv(folder / "short.csv", index=False)
    ranks_table({k: 1 for k in RANKS}, "long").to_csv(folder / "long.csv", index=False)
    (folder / "info.json").write_text('{"images": 20, "truncated": {}}', encoding="utf-8")


def test_report_covers_every_model_and_labelset(
    labels: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    write_ranks(tmp_path, "m1")
    write_ranks(tmp_path, "m2")
    table = annotator_report(["m1", "m2"], "col", labels, n_boot=20)
    assert set(zip(table["model"], table["labelset"], strict=True)) == {
        (m, s) for m in ("m1", "m2") for s in ("short", "long")
    }
    long = table[(table["model"] == "m2") & (table["labelset"] == "long")]
    assert value(long, "bob", "mrr") == 1.0
    assert value(long, "ann", "r@1") == 1.0


def test_report_cli(labels: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    write_ranks(tmp_path, "m1")
    out = tmp_path / "out" / "by_annotator.csv"
    args = ["report", "--collection", "col", "--model", "m1", "--labels", str(labels)]
    result = CliRunner().invoke(app, [*args, "--bootstrap", "20", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "bob" in result.output and "ann" in result.output
    written = pd.read_csv(out)
    assert value(written[written["labelset"] == "short"], "bob", "mrr") == 1.0

    missing = CliRunner().invoke(
        app, ["report", "--collection", "col", "--model", "nope", "--labels", str(labels)]
    )
    assert missing.exit_code == 1
    assert "no ranks tables in data/ranks/nope/col" in missing.output
