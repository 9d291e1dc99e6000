"""Figures: the right panels and lines, inspected as matplotlib objects (not pixels)."""

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from matplotlib.collections import PathCollection
from matplotlib.patches import Rectangle
from PIL import Image

from kisbench.report.figures import cumulative_grid, model_colors, pairwise_grid
from kisbench.report.qualitative import Example, disagreements, examples_figure


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def test_model_colors_fixed_by_params_order_and_distinct():
    every = [f"m{i}" for i in range(18)]
    colors = model_colors(every)
    assert len(set(colors.values())) == 18
    assert colors["m3"] == model_colors(every)["m3"]
    # no model is grey: grey and black are the oracle's and the fusion curves'
    assert all(not (c[0] == c[1] == c[2]) for c in colors.values())


def curve_table(models, n):
    k = np.arange(1, n + 1)
    return pd.DataFrame(
        {"k": k, **{m: k / n * (i + 1) / len(models) for i, m in enumerate(models)}}
    )


def test_cumulative_grid_panels_order_cut_and_colours():
    models = ["a", "b"]
    curves = {
        ("demo", "short"): curve_table(models, 255),
        ("demo", "long"): curve_table(models, 255),
        ("mvk", "short"): curve_table(models, 1000),
        ("mvk", "long"): curve_table(models, 1000),
    }
    colors = model_colors(["x", "a", "b"])  # the params order, not the experiment's subset
    fig = cumulative_grid(curves, {"demo": 50, "mvk": 500}, colors)
    titles = [ax.get_title() for ax in fig.axes]
    assert titles == [
        "demo: short labels",
        "demo: long labels",
        "mvk: short labels",
        "mvk: long labels",
    ]
    for ax, limit in zip(fig.axes, [50, 50, 500, 500], strict=True):
        assert ax.get_xlim() == (1, limit)
        lines = {line.get_label(): line for line in ax.get_lines()}
        assert set(lines) == {"a", "b"}
        assert lines["b"].get_color() == colors["b"]
        assert max(lines["a"].get_xdata()) == limit  # cut at xmax, not drawn beyond


def test_pairwise_grid_panels_and_lines():
    a = np.array([1, 4, 2, 10, 50])
    b = np.array([3, 1, 2, 40, 5])
    c = np.array([7, 7, 7, 7, 7])
    fused = {("a", "b"): {"rrf": np.array([1, 1, 2, 9, 5]), "zscore": np.array([2, 2, 2, 2, 2])}}
    colors = model_colors(["a", "b", "c"])
    fig = pairwise_grid(
        {"a": a, "b": b, "c": c}, 100, 20, colors, fused=fused, values={"a": 1, "b": 2, "c": 3}
    )
    axes = np.array(fig.axes).reshape(3, 3)
    for i in range(3):
        assert not axes[i, i].axison
        assert axes[i, i].texts[0].get_text().startswith("abc"[i])
    # above the diagonal, panel (0, 1): x = ranks of b (column), y = ranks of a (row)
    upper = axes[0, 1]
    assert upper.get_xscale() == upper.get_yscale() == "log"
    points = [c for c in upper.collections if isinstance(c, PathCollection)][0].get_offsets()
    assert np.array_equal(np.asarray(points), np.column_stack([b, a]))
    diagonal = upper.get_lines()[0]
    assert np.array_equal(diagonal.get_xdata(), diagonal.get_ydata())
    # below the diagonal, panel (1, 0): a, b, their oracle and the two fusion curves
    lower = axes[1, 0]
    lines = {line.get_label(): line for line in lower.get_lines()}
    assert set(lines) == {"a", "b", "complementary (oracle)", "rrf fusion", "zscore fusion"}
    # per-query best of a and b: 1, 1, 2, 10, 5 -> found within k = 1, 2, 5, 10 by hand
    oracle = lines["complementary (oracle)"].get_ydata()
    assert oracle[[0, 1, 4, 9, 19]].tolist() == [0.4, 0.6, 0.8, 1.0, 1.0]
    assert len(oracle) == 20  # cut at xmax
    assert lines["a"].get_color() == colors["a"]
    # pair (a, c) has no fusion: only its models and the oracle
    assert {line.get_label() for line in axes[2, 0].get_lines()} == {
        "a",
        "c",
        "complementary (oracle)",
    }


def test_disagreements_by_hand():
    ranks = pd.DataFrame(
        {"a": [1, 5, 100, 3], "b": [2, 5, 1, 3], "c": [1, 80, 50, 3]},
        index=["q1", "q2", "q3", "q4"],
    )
    chosen = disagreements(ranks, 2)
    # q3: a=100 vs b=1 (log2 ratio 6.64); q2: b=5 vs c=80 (4.0); q1: 1 vs 2 (1.0)
    assert chosen["query_id"].tolist() == ["q3", "q2"]
    first = chosen.iloc[0]
    assert (first.model_a, first.model_b, first.rank_a, first.rank_b) == ("b", "a", 1, 100)
    assert first.log2_ratio == pytest.approx(np.log2(100))


def test_examples_figure_rows_and_target_frames(tmp_path):
    paths = {}
    for i, name in enumerate(["t1", "t2", "x", "y", "z"]):
        paths[name] = tmp_path / f"{name}.png"
        Image.new("RGB", (40 + 10 * i, 30), (50 * i, 100, 150)).save(paths[name])
    examples = [
        Example("t1", "a query", "t1", {"a": 2, "b": 9}, {"a": ["x", "t1", "y"], "b": ["y", "z"]}),
        Example("t2", "another", "t2", {"a": 1, "b": 3}, {"a": ["t2"], "b": ["x", "y", "t2"]}),
    ]
    fig = examples_figure(examples, paths, model_colors(["a", "b"]), top=3)
    # per example: the target panel, then one row per model
    assert len(fig.axes) == 2 * (1 + 2)
    rows = [ax for ax in fig.axes if ax.get_ylabel()]
    assert [ax.get_ylabel() for ax in rows] == ["a\nrank 2", "b\nrank 9", "a\nrank 1", "b\nrank 3"]
    frames = [
        [p for p in ax.patches if isinstance(p, Rectangle) and p.get_label() == "target"]
        for ax in rows
    ]
    assert [len(f) for f in frames] == [1, 0, 1, 1]  # b's top 2 for t1 miss the target
    texts = [t.get_text() for t in fig.texts]
    assert any("a query" in t for t in texts) and any("another" in t for t in texts)
