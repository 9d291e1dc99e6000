"""The rank -> evaluate -> fusion -> render stages on a small made-up project (no DVC)."""

import json

import numpy as np
import pandas as pd
import pytest
import yaml
from PIL import Image
from typer.testing import CliRunner

from kisbench import layout
from kisbench.data import store
from kisbench.errors import InputError
from kisbench.evaluation.evaluate import CHANCE_COLUMN, RankSet
from kisbench.evaluation.evaluate import evaluate as evaluate_sets
from kisbench.evaluation.layout import CURVES, curve_name, fusion_path, ranks_dir
from kisbench.evaluation.metrics import chance_curve
from kisbench.report.layout import FIGURES, REPORT
from stages import evaluate, fusion, rank, render

N_IMAGES = 30
MODELS = ["good", "fair", "weak"]
runner = CliRunner()


def unit(a):
    return (a / np.linalg.norm(a, axis=-1, keepdims=True)).astype(np.float32)


@pytest.fixture
def project(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    params = {
        "run": {"models": MODELS, "collections": ["toy"]},
        "models": {m: {"family": "open_clip", "model": "x"} for m in ["other", *MODELS]},
        "collections": {"toy": {"xmax": 20}},
        "rank": {"device": "cpu", "top_k": 10},
        "evaluate": {"headline": "mrr", "bootstrap": 200, "seed": 0, "top_models": 2},
        "fusion": {"methods": ["rrf", "zscore"], "device": "cpu"},
        "render": {"examples": 2, "top_images": 3},
    }
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    rng = np.random.default_rng(0)
    ids = [f"{i:03d}" for i in range(N_IMAGES)]
    images = tmp_path / layout.images_dir("toy")
    images.mkdir(parents=True)
    for i, image_id in enumerate(ids):
        Image.new("RGB", (20, 16), (8 * i, 90, 200 - 5 * i)).save(images / f"{image_id}.png")
    targets = ids[:12]
    (tmp_path / "labels").mkdir()
    pd.DataFrame(
        {
            "ID": targets,
            "short_label": [f"thing {t}" for t in targets],
            "long_label": [f"a long text about thing {t}" for t in targets],
        }
    ).to_csv(tmp_path / layout.labels_path("toy"), index=False)
    base = rng.normal(size=(N_IMAGES, 16))
    for strength, model in zip([3.0, 1.0, 0.2], MODELS, strict=True):
        feats = unit(base + 0.3 * rng.normal(size=base.shape))
        store.save(layout.features_dir(model, "toy"), ids, feats, {})
        for labelset in ("short", "long"):
            q = unit(strength * base[:12] + rng.normal(size=(12, 16)))
            store.save(layout.queries_dir(model, "toy") / labelset, targets, q, {})
    return tmp_path


def invoke(app, *args):
    result = runner.invoke(app, list(args))
    assert result.exit_code == 0, result.output + repr(result.exception)
    return result


def test_stages_end_to_end(project):
    for model in MODELS:
        invoke(rank.app, "--model", model, "--collection", "toy")
    invoke(evaluate.app)
    invoke(fusion.app)
    invoke(render.app)

    # Independent MRR from the ranks tables.
    mrr = {
        (m, ls): float(np.mean(1 / pd.read_csv(ranks_dir(m, "toy") / f"{ls}.csv")["rank"]))
        for m in MODELS
        for ls in ("short", "long")
    }
    head = json.loads((project / "metrics/kis.json").read_text())
    assert list(head["mrr"]["toy"]) == ["short", "long"]  # labels-file order
    for (m, ls), value in mrr.items():
        assert head["mrr"]["toy"][ls][m] == pytest.approx(value, abs=1e-6)

    pairs = pd.read_csv(project / "metrics/pairs.csv")
    for ls in ("short", "long"):
        best = sorted(MODELS, key=lambda m, ls=ls: -mrr[(m, ls)])[:2]
        row = pairs[pairs.labelset == ls]
        assert len(row) == 1  # top 2 models: one pair
        assert [row.model_a.iloc[0], row.model_b.iloc[0]] == best
    gains = pd.read_csv(project / "metrics/gains.csv")
    for m in MODELS:
        gain = gains[gains.model == m].gain.iloc[0]
        assert gain == pytest.approx(mrr[(m, "long")] - mrr[(m, "short")], abs=1e-5)

    fused = json.loads((project / "metrics/fusion.json").read_text())["mrr"]["toy"]["short"]
    assert set(fused) == {"best_model", "oracle_all", "rrf_all", "zscore_all"}
    assert fused["best_model"] == pytest.approx(max(mrr[(m, "short")] for m in MODELS), abs=1e-6)
    table = pd.read_csv(fusion_path("toy", "short"), dtype={"query_id": str})
    assert set(table.members) == {*MODELS, "good+fair", "good+weak", "fair+weak", "good+fair+weak"}

    root = project / FIGURES
    figures = sorted(p.relative_to(root).as_posix() for p in root.rglob("*.png"))
    assert figures == [
        "cumulative.png",
        "examples/toy-long.png",
        "examples/toy-short.png",
        "pairs/toy-long.png",
        "pairs/toy-short.png",
    ]
    report = (project / REPORT).read_text()
    chance = np.mean(1 / np.arange(1, N_IMAGES + 1))
    assert f"random ranking of {N_IMAGES} images): MRR {chance:.3g}" in report
    short = report[report.index("short labels (12 queries)") :]
    order = [short.index(f"| {m}") for m in sorted(MODELS, key=lambda m: -mrr[(m, "short")])]
    assert order == sorted(order)  # models listed best first
    assert "](../plots/figures/pairs/toy-short.png)" in report
    assert "long over short labels" in report

    # The curve tables: k, the models, then chance, k / N of the 30 images.
    for ls in ("short", "long"):
        curve = pd.read_csv(project / CURVES / curve_name("toy", ls))
        assert list(curve.columns) == ["k", *MODELS, "chance"]
        assert curve["k"].tolist() == list(range(1, N_IMAGES + 1))
        assert curve["chance"].to_numpy() == pytest.approx(curve["k"] / N_IMAGES, rel=1e-5)
    assert "| chance" not in report  # the column is no model of the report's tables


def rank_set(model, ranks, n_images, labelset="short"):
    return RankSet(model, "toy", labelset, np.array(ranks), n_images, None)


def test_curve_tables_by_hand():
    """N = 3 images: a found at ranks 1 and 3, b at 2 and never (rank 4 > N); chance is
    1/3, 2/3, 1 (a random ranking's target is uniform over the 3 ranks)."""
    _, _, tables = evaluate_sets([rank_set("a", [1, 3], 3), rank_set("b", [2, 4], 3)], n_boot=20)
    table = tables[("toy", "short")]
    assert list(table.columns) == ["k", "a", "b", CHANCE_COLUMN]
    assert table["k"].tolist() == [1, 2, 3]
    assert table["a"].tolist() == pytest.approx([0.5, 0.5, 1.0])
    assert table["b"].tolist() == pytest.approx([0.0, 0.5, 0.5])
    assert table[CHANCE_COLUMN].tolist() == pytest.approx([1 / 3, 2 / 3, 1.0])
    # beyond N a random ranking has found every target: capped at 1
    assert chance_curve(np.arange(1, 7), 3).tolist() == pytest.approx([1 / 3, 2 / 3, 1, 1, 1, 1])


def test_curve_tables_refuse_a_model_named_chance_and_mixed_sizes():
    with pytest.raises(InputError, match="named 'chance'"):
        evaluate_sets([rank_set("chance", [1, 2], 3)], n_boot=20)
    with pytest.raises(InputError, match="different numbers of images"):
        evaluate_sets([rank_set("a", [1, 2], 3), rank_set("b", [1, 2], 4)], n_boot=20)


def test_evaluate_names_the_missing_ranks(project):
    result = runner.invoke(evaluate.app, [])
    assert result.exit_code == 1
    assert "data/ranks/good/toy" in result.output and "rank stages" in result.output


def test_one_model_experiment(project):
    params = yaml.safe_load((project / "params.yaml").read_text())
    params["run"]["models"] = ["fair"]
    params["render"]["workers"] = 1  # the serial path (the other test draws in processes)
    (project / "params.yaml").write_text(yaml.safe_dump(params))
    invoke(rank.app, "--model", "fair", "--collection", "toy")
    for app in (evaluate.app, fusion.app, render.app):
        invoke(app)
    assert pd.read_csv(project / "metrics/pairs.csv").empty
    assert list((project / FIGURES / "pairs").iterdir()) == []  # nothing to pair
    # examples fall back to the queries the model ranks worst
    assert (project / FIGURES / "examples" / "toy-short.png").is_file()
    report = (project / REPORT).read_text()
    assert "Pairs of the top" not in report and "| 1 | fair" in report


def test_equivalents_duplicates_and_skipped_targets_through_the_stages(project):
    """Image 012 is a byte copy of target 000, declared equivalent; target 011 was skipped
    by the embed stage (its file is empty): the rank stage does not count 012 ahead of 000
    (checked against a count written here), the report lists all three facts, and the
    examples figure never shows 011, even when params ask for it."""
    from kisbench.data.checks import check_collection, report_path

    images = layout.images_dir("toy")
    (images / "012.png").write_bytes((images / "000.png").read_bytes())
    (images / "011.png").write_bytes(b"")
    (images.parent / "equivalents.csv").write_text("id,same_as\n012,000\n")
    for model in MODELS:
        feats = store.load(layout.features_dir(model, "toy"))
        vectors = np.array(feats.vectors)
        vectors[12] = vectors[0]  # the same picture, the same vector
        keep = [i for i, image_id in enumerate(feats.ids) if image_id != "011"]
        folder = layout.features_dir(model, "toy")
        store.save(folder, [feats.ids[i] for i in keep], vectors[keep], {})
        store.write_skipped(folder / store.SKIPPED, [("011", "x/011.png", "empty file")])
    # Exact duplicates only: the toy images are flat colours, alike to a perceptual hash.
    found = check_collection(
        "toy", images, layout.labels_path("toy"), skip_unreadable=True, near=False
    )
    report_path("toy").parent.mkdir(parents=True)
    report_path("toy").write_text(json.dumps(found.summary()))
    params = yaml.safe_load((project / "params.yaml").read_text())
    params["render"]["example_ids"] = ["011", "000", "003"]
    (project / "params.yaml").write_text(yaml.safe_dump(params))

    for model in MODELS:
        invoke(rank.app, "--model", model, "--collection", "toy")
    feats = store.load(layout.features_dir("good", "toy"))
    queries = store.load(layout.queries_dir("good", "toy") / "short")
    q = np.asarray(queries.vectors[queries.ids.index("000")], np.float64)
    rows = zip(feats.ids, np.asarray(feats.vectors, np.float64), strict=True)
    scores = {i: float(v @ q) for i, v in rows}
    ahead = sum(
        1 for i, s in scores.items() if i not in ("000", "012") and s >= scores["000"] - 1e-6
    )
    table = pd.read_csv(ranks_dir("good", "toy") / "short.csv", dtype={"query_id": str})
    got = dict(zip(table["query_id"], table["rank"], strict=True))
    assert got["000"] == ahead + 1
    assert got["011"] == N_IMAGES - 1 + 1  # skipped: never found (29 images embedded)
    info = json.loads((ranks_dir("good", "toy") / "info.json").read_text())
    assert info["equivalents"] == [["000", "012"]]
    assert info["skipped_images"] == {"011": "empty file"}

    invoke(evaluate.app)
    invoke(fusion.app)
    invoke(render.app)
    fused = pd.read_csv(fusion_path("toy", "short"), dtype={"query_id": str})
    alone = fused[(fused.method == "single") & (fused.members == "good")]
    assert dict(zip(alone.query_id, alone["rank"], strict=True)) == got  # equivalents too
    report = (project / REPORT).read_text()
    assert "**Skipped images** (1; `embed.on_unreadable: skip`): `011` (empty file)." in report
    assert "short: `011`; long: `011`." in report
    flagged = report.split("**Targets with a duplicate** ")[1].split("\n")[0]
    assert flagged.startswith("(1, exact;")
    assert flagged.endswith("`000` (012; declared equivalent: not counted ahead).")
    assert (project / FIGURES / "examples" / "toy-short.png").is_file()


def test_a_partial_labelset_through_the_stages(project):
    """Long labels for 5 of the 12 targets: each labelset is ranked and evaluated on its own
    queries, the long-vs-short gain pairs the 5 targets that have both, and the report and
    the figures state the query counts."""
    labels = pd.read_csv(layout.labels_path("toy"), dtype=str)
    labels.loc[5:, "long_label"] = ""
    labels.to_csv(layout.labels_path("toy"), index=False)
    with_long = list(labels["ID"][:5])
    for model in MODELS:
        folder = layout.queries_dir(model, "toy") / "long"
        full = store.load(folder)
        store.save(folder, with_long, np.asarray(full.vectors)[:5], {})
        invoke(rank.app, "--model", model, "--collection", "toy")
    invoke(evaluate.app)
    invoke(fusion.app)
    invoke(render.app)
    details = json.loads((project / "metrics/kis_details.json").read_text())
    assert details["toy"]["short"]["good"]["queries"] == 12
    assert details["toy"]["long"]["good"]["queries"] == 5
    gains = pd.read_csv(project / "metrics/gains.csv")
    for m in MODELS:
        row = gains[gains.model == m].iloc[0]
        ranks = {
            ls: pd.read_csv(ranks_dir(m, "toy") / f"{ls}.csv", dtype={"query_id": str})
            .set_index("query_id")["rank"]
            .loc[with_long]
            for ls in ("short", "long")
        }
        assert row.queries == 5
        assert row.value_base == pytest.approx(float(np.mean(1 / ranks["short"])), abs=1e-5)
        assert row.gain == pytest.approx(
            float(np.mean(1 / ranks["long"]) - np.mean(1 / ranks["short"])), abs=1e-5
        )
    report = (project / REPORT).read_text()
    assert "### `toy`, short labels (12 queries)" in report
    assert "### `toy`, long labels (5 queries)" in report
    assert "### `toy`: long over short labels (5 queries)" in report
