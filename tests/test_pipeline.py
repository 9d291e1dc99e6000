"""The real `dvc repro` of the smoke configuration, in a temporary copy of the repository."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from kisbench import layout
from kisbench.data import store
from kisbench.data.collections import list_images, read_labels
from kisbench.evaluation.layout import ranks_dir
from kisbench.tools.smoke import dvc, git

pytestmark = pytest.mark.slow


def ran(proc) -> set[str]:
    return set(re.findall(r"Running stage '([^']+)'", proc.stdout + proc.stderr))


@pytest.fixture(scope="module")
def workspace(smoke_copy) -> Path:
    """The session's smoke run (conftest), copied: these tests edit labels."""
    return smoke_copy("pipeline")


def test_every_expected_output(workspace):
    params = yaml.safe_load((workspace / "params.yaml").read_text())
    models, collections = params["run"]["models"], params["run"]["collections"]
    for c in collections:
        image_ids, _ = list_images(workspace / layout.images_dir(c))
        labels = read_labels(workspace / layout.labels_path(c))
        for m in models:
            images = store.load(workspace / layout.features_dir(m, c))
            assert images.ids == image_ids
            norms = np.linalg.norm(np.asarray(images.vectors, dtype=np.float64), axis=-1)
            np.testing.assert_allclose(norms, 1.0, atol=1e-3)
            assert images.meta["count"] == len(image_ids) and images.meta["key"] == m
            for labelset in labels.labelsets:
                queries = store.load(workspace / layout.queries_dir(m, c) / labelset)
                own = list(labels.queries(labelset))  # a partial labelset: its own targets
                assert queries.ids == own
                assert queries.vectors.shape[-1] == images.vectors.shape[-1]
                table = pd.read_csv(
                    workspace / ranks_dir(m, c) / f"{labelset}.csv",
                    dtype={"query_id": str, "target_id": str},
                )
                assert table["target_id"].tolist() == own
                assert table["rank"].between(1, len(image_ids)).all()
            curve = pd.read_csv(workspace / "plots" / "cumulative" / f"{c}-short.csv")
            assert curve["k"].tolist() == list(range(1, len(image_ids) + 1))
            assert curve[m].is_monotonic_increasing and curve[m].iloc[-1] == 1.0
    assert (workspace / "plots" / "figures" / "cumulative.png").stat().st_size > 10_000


def test_metrics_in_range_and_listed_by_exp_show(workspace):
    head = json.loads((workspace / "metrics" / "kis.json").read_text())
    values = [
        v for per_c in head["mrr"].values() for per_l in per_c.values() for v in per_l.values()
    ]
    assert values and all(0 < v <= 1 for v in values)
    details = json.loads((workspace / "metrics" / "kis_details.json").read_text())
    d = details["demo"]["short"]["tiny_clip"]
    assert d["queries"] == 100 and d["images"] == 252
    assert d["mrr"]["low"] <= d["mrr"]["value"] <= d["mrr"]["high"]
    shown = json.loads(dvc(workspace, "exp", "show", "--json").stdout)
    text = json.dumps(shown)
    assert "metrics/kis.json" in text and str(values[0]) in text


def test_simulation_outputs_and_their_display_0_is_the_rank_stage_r_at_64(workspace):
    params = yaml.safe_load((workspace / "params.yaml").read_text())
    sim = params.get("simulate", {})
    n, rounds = sim.get("display", 64), sim.get("displays", 10)
    summary = json.loads((workspace / "metrics" / "simulation.json").read_text())
    for m in params["run"]["models"]:
        runs = pd.read_csv(
            workspace / "data" / "simulation" / "demo" / "short.csv", dtype={"query_id": str}
        )
        runs = runs[runs["model"] == m]
        ranks = pd.read_csv(workspace / ranks_dir(m, "demo") / "short.csv", dtype={"query_id": str})
        at_0 = ranks.set_index("query_id")["rank"] <= n  # the rank stage's R@n, per query
        for user, part in runs.groupby("user"):
            found_0 = (part.groupby("query_id")["found_at"].first() == 0).reindex(at_0.index)
            assert (found_0 == at_0).all(), (m, user)
            assert part["found_at"].between(-1, rounds).all()
            entry = summary["demo"]["short"][m][user]
            assert entry["within_0"]["value"] == pytest.approx(at_0.mean())
            shares = [entry[f"within_{i}"]["value"] for i in range(rounds + 1)]
            assert shares == sorted(shares)
    curve = pd.read_csv(workspace / "plots" / "simulation" / "demo-short-ideal.csv")
    assert curve["n"].tolist() == list(range(rounds + 1))
    assert (
        workspace / "plots" / "figures" / "simulation" / "demo-short.png"
    ).stat().st_size > 10_000
    assert "Interactive search, simulated" in (workspace / "reports" / "report.md").read_text()


def test_length_study_outputs_and_its_full_budget_is_the_rank_stage(workspace):
    """The query-length study: every model's budgets end at its context, and the full
    budget (the queries cut by the budget path at the context) ranks as the plain queries
    of the rank stage do (the evaluate stage's MRR, computed from those ranks)."""
    params = yaml.safe_load((workspace / "params.yaml").read_text())
    summary = json.loads((workspace / "metrics" / "length.json").read_text())
    details = json.loads((workspace / "metrics" / "kis_details.json").read_text())
    per_query = pd.read_csv(workspace / "metrics" / "length_queries.csv", dtype={"query_id": str})
    for labelset, by_model in summary["collections"]["demo"]["labelsets"].items():
        assert set(by_model) == set(params["run"]["models"])
        for m, e in by_model.items():
            meta = store.load(workspace / layout.queries_dir(m, "demo") / labelset).meta
            budgets = [p["budget"] for p in e["budgets"]]
            assert budgets == sorted(budgets) and budgets[-1] == e["context"]
            assert e["context"] == meta["context_tokens"] and max(budgets) <= e["context"]
            assert e["effective"] in budgets
            plain = details["demo"][labelset][m]["mrr"]["value"]
            assert e["budgets"][-1]["mrr"] == pytest.approx(plain, rel=1e-5)  # 6 digits
            split = e["split"]
            assert split["truncated"]["queries"] == meta["truncated"] == e["truncated"]
            parts = split["truncated"]["queries"] + split["untruncated"]["queries"]
            assert parts == e["queries"] == len(meta["token_counts"]) == meta["count"]
            rows = per_query[(per_query["model"] == m) & (per_query["labelset"] == labelset)]
            assert dict(zip(rows["query_id"], rows["tokens"], strict=True)) == meta["token_counts"]
            assert (rows["truncated"] == (rows["tokens"] > e["context"])).all() or m == "tiny_blip2"
    figures = workspace / "plots" / "figures" / "length"
    for kind in ("tokens", "budgets"):
        assert (figures / f"{kind}-demo-short.png").stat().st_size > 10_000
    report = (workspace / "reports" / "report.md").read_text()
    assert "Query length: what truncation costs" in report


def test_sentence_and_temporal_outputs_against_the_rank_stage(workspace):
    """The smoke copy's demo labels have a temporal labelset (kisbench.tools.temporal_demo):
    the long labels get every strategy, the short ones (one sentence each) none, the
    temporal ones both aggregations; truncate's value on the temporal queries is the
    evaluate stage's for the whole labelset (the same queries)."""
    params = yaml.safe_load((workspace / "params.yaml").read_text())
    labels = read_labels(workspace / layout.labels_path("demo"))
    temporal = labels.queries("temporal")
    assert temporal and all(">>" in t for t in temporal.values())
    summary = json.loads((workspace / "metrics" / "sentences.json").read_text())
    details = json.loads((workspace / "metrics" / "kis_details.json").read_text())
    results = summary["results"]["demo"]
    assert set(results) == {"long", "temporal"}
    for m in params["run"]["models"]:
        assert set(results["long"][m]) == {"mean", "score_mean", "score_min", "score_product"}
        assert set(results["temporal"][m]) == {"viret", "somhunter"}
        for e in results["temporal"][m].values():
            assert e["queries"] == len(temporal)
            assert e["truncate"] == pytest.approx(
                details["demo"]["temporal"][m]["mrr"]["value"], rel=1e-5
            )
        for e in results["long"][m].values():
            assert e["queries"] == len(labels.queries("long"))
    pairs = pd.read_csv(workspace / "metrics" / "sentences_pairs.csv")
    assert len(pairs) == len(params["run"]["models"]) * 6
    figures = workspace / "plots" / "figures" / "sentences"
    for labelset in ("long", "temporal"):
        assert (figures / f"demo-{labelset}.png").stat().st_size > 10_000
    report = (workspace / "reports" / "report.md").read_text()
    assert "## Multi-sentence and temporal queries" in report


def test_second_repro_runs_nothing(workspace):
    proc = dvc(workspace, "repro")
    assert ran(proc) == set(), proc.stdout


def test_changing_one_label_reruns_only_the_query_side(workspace):
    path = workspace / "labels" / "demo.csv"
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    row = lines[1].split(",", 2)
    lines[1] = f"{row[0]},a completely different short query,{row[2]}"
    path.write_text("".join(lines), encoding="utf-8")
    proc = dvc(workspace, "repro")
    stages = ran(proc)
    assert "embed-queries@tiny_clip-demo" in stages
    assert "rank@tiny_clip-demo" in stages and "evaluate" in stages
    assert "simulate" in stages
    assert not any(s.startswith("embed-images") for s in stages), stages
    git(workspace, "checkout", "--", "labels/demo.csv")
